// The corpus app for @sentry/browser, bundled and minified by esbuild (content-hashed names) and run in
// headless Chromium. RELEASE, DSN and BUILD are defined at build time. Labels travel in the tag "bug".
/*EXTRA*/
import * as Sentry from "@sentry/browser";

Sentry.init({ dsn: DSN, release: RELEASE, defaultIntegrations: false,
  integrations: [Sentry.linkedErrorsIntegration(), Sentry.dedupeIntegration()] });

function capture(bug, err) {
  Sentry.withScope((scope) => {
    scope.setTag("bug", bug);
    Sentry.captureException(err);
  });
}

function cartSize(cart) {
  return cart.items.length;
}

async function run() {
  const checkout = await import("./checkout.js");
  for (let i = 0; i < 3; i++) {
    try { cartSize({ id: i }); } catch (e) { capture("browser-cart-items-undefined", e); }
    try { checkout.applyCoupon({ total: 10, coupons: [] }, `SAVE${i}`); } catch (e) { capture("browser-coupon-undefined", e); }
    try { checkout.renderPrice(100 + i); } catch (e) { capture("browser-currency-range", e); }
    try { JSON.parse(`{"cart": ${i}`); } catch (e) { capture("browser-json-cart", e); }
    try { document.querySelector(`#row-${i} >`); } catch (e) { capture("browser-bad-selector", e); }
    Sentry.withScope((scope) => {
      scope.setTag("bug", "browser-message-slow-render");
      Sentry.captureMessage(`render of /cart/${1000 + i} took ${120 + i * 7}ms at 07/12/2026 10:1${i}:00`);
    });
  }
  await Sentry.flush(5000);
  document.title = "done";
}

run();
