"""Record the OTLP/HTTP requests the real OpenTelemetry Node.js SDK sends, as test data for the gateway.

Installs ``@opentelemetry/sdk-node`` (with the OTLP/HTTP trace and log exporters it depends on; JSON
encoding, their default) into a throwaway folder with npm, runs a small app that records a thrown error on a span and
emits an error log record carrying it, receives the exports on a local HTTP server, and writes
``tests/data/otlp/node-<sdk-node version>.jsonl``: one request per line (path, content type, body in
base64), with the app's folder replaced by ``/app`` so the file does not depend on where it was recorded.
The tests read the file and need no Node.js:

    python scripts/record_otlp_node_payloads.py            # the newest sdk-node
    python scripts/record_otlp_node_payloads.py 0.203.0    # a given version
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "otlp"

APP = r"""
const api = require('@opentelemetry/api');
// The logs API: its own package until @opentelemetry/api took it in (api 1.10 with sdk-node 0.301).
const logsApi = api.logs ? api : require('@opentelemetry/api-logs');
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { SimpleLogRecordProcessor } = require('@opentelemetry/sdk-logs');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-http');

// SimpleLogRecordProcessor took the exporter itself before sdk-logs 0.300, an options object since.
const logExporter = new OTLPLogExporter();
const processor = SimpleLogRecordProcessor.length === 1 && /options/.test(SimpleLogRecordProcessor.toString())
  ? new SimpleLogRecordProcessor({ exporter: logExporter }) : new SimpleLogRecordProcessor(logExporter);
const sdk = new NodeSDK({ traceExporter: new OTLPTraceExporter(), logRecordProcessors: [processor] });
sdk.start();

function checkout(order) {
  if (order.qty > order.stock) {
    throw new TypeError(`order ${order.id} wants ${order.qty}, ${order.stock} in stock`);
  }
}

function pay(order) {
  checkout(order);
}

const tracer = api.trace.getTracer('shop.checkout');
const logger = logsApi.logs.getLogger('shop.payments');
tracer.startActiveSpan('GET /cart', (parent) => {
  tracer.startActiveSpan('pay', (span) => {
    try {
      pay({ id: 1, qty: 3, stock: 1 });
    } catch (err) {
      span.recordException(err);
      span.setStatus({ code: api.SpanStatusCode.ERROR });
      logger.emit({
        severityNumber: logsApi.SeverityNumber.ERROR, severityText: 'ERROR', body: 'payment failed',
        attributes: { 'exception.type': err.name, 'exception.message': err.message, 'exception.stacktrace': err.stack },
      });
    }
    span.end();
  });
  parent.end();
});
sdk.shutdown().then(() => process.exit(0));
"""


def record(version: str) -> Path:
    requests: list[dict[str, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server interface
            body = self._body()
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            requests.append({"path": self.path, "content_type": self.headers.get("Content-Type", ""),
                             "body": body.decode()})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="otel-node-") as tmp:
        app = Path(tmp)
        subprocess.run(["npm", "init", "-y"], cwd=app, check=True, capture_output=True)
        # sdk-node brings the OTLP/HTTP exporters and sdk-logs; npm installs its peer @opentelemetry/api
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", f"@opentelemetry/sdk-node@{version}"],
                       cwd=app, check=True, capture_output=True)
        installed = json.loads((app / "node_modules/@opentelemetry/sdk-node/package.json").read_text())["version"]
        (app / "app.js").write_text(APP)
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
               "OTEL_SERVICE_NAME": "shop-node", "OTEL_TRACES_EXPORTER": "otlp",
               "OTEL_METRICS_EXPORTER": "none", "OTEL_NODE_RESOURCE_DETECTORS": "env",
               "OTEL_RESOURCE_ATTRIBUTES": "service.version=shop@2.0.1,deployment.environment.name=test"}
        subprocess.run(["node", "app.js"], cwd=app, env=env, check=True, timeout=120)
        root = str(app.resolve())
    server.shutdown()
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"node-{installed}.jsonl"
    with out.open("w") as f:
        for r in sorted(requests, key=lambda r: r["path"]):
            body = r["body"].replace(root, "/app")
            f.write(json.dumps({"path": r["path"], "content_type": r["content_type"],
                                "body": base64.b64encode(body.encode()).decode()}) + "\n")
    return out


if __name__ == "__main__":
    for v in sys.argv[1:] or ["latest"]:
        print(record(v))
