// The corpus app for @sentry/node: each bug raised a few times, in the build named by the first argument.
// Labels travel in the tag "bug"; the recorder moves them out of the payload.
/*EXTRA*/
const Sentry = require("@sentry/node");
const { total, loadConfig, parseRefund } = require("./lib/orders");

const build = process.argv[2];
Sentry.init({ dsn: process.env.SENTRY_DSN, release: build === "a" ? "shop-node@5.0.0" : "shop-node@5.1.0",
  defaultIntegrations: false, integrations: [Sentry.linkedErrorsIntegration(), Sentry.contextLinesIntegration()] });

function capture(bug, err) {
  Sentry.withScope((scope) => {
    scope.setTag("bug", bug);
    Sentry.captureException(err);
  });
}

async function main() {
  for (let i = 0; i < 3; i++) {
    try { total({ lines: [{ product: { price: 3 }, qty: 1 }, { qty: i + 1 }] }); } catch (e) { capture("node-type-error-line-total", e); }
    try { loadConfig(`tenant-${i}`); } catch (e) { capture("node-enoent-config", e); }
    try { parseRefund(`{"amount": ${i}0,`); } catch (e) { capture("node-json-refund", e); }
    await new Promise((resolve) => setTimeout(() => {
      try { null.id; } catch (e) { capture("node-timer-null", e); }
      resolve();
    }, 1));
    await Promise.resolve().then(async () => {
      try { await Promise.reject(new RangeError(`page ${i + 11} out of range (max 10)`)); } catch (e) { capture("node-async-range", e); }
    });
    Sentry.withScope((scope) => {
      scope.setTag("bug", "node-message-queue-lag");
      Sentry.captureMessage(`queue lag 1${i}.5s on consumer c-${i} since 2026-12-07 10:0${i}:11,123 (fe80::1%eth${i})`);
    });
  }
  await Sentry.flush(10000);
}

main();
