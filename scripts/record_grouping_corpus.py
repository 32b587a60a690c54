"""Record the grouping corpus: events that the real Sentry SDKs build, in two builds of each app.

Each app under ``scripts/grouping_corpus_apps/<platform>/`` raises a handful of bugs a few times each,
once per build. Build ``b`` is the same program moved around: padded with lines, with extra lambdas,
closures or anonymous classes added before the ones that fail (so compilers renumber them), another
release, for JavaScript another content hash, for Go another build path (``-trimpath``). The SDK sends
to a DSN on a loopback HTTP server this script runs; every event item it receives becomes one line of
``tests/data/grouping_corpus/<platform>.jsonl``:

    {"label": "<true group>", "service": "<service>", "build": "a"|"b", "payload": {<the SDK's event>}}

The LABEL RULE (also written at the top of each file): two events belong to one issue exactly when the
app raised them at the same place in its source for the same reason — the ``bug`` tag the app set at
the raise site, which the recorder moves from the payload into ``label`` so it cannot steer grouping.
Builds, releases, values in messages, stack depth and paths do not change the label.

Payloads are trimmed of what grouping never reads and what makes the files large (``modules``,
``debug_meta``, ``breadcrumbs``, ``sdk.packages``, ``contexts`` other than ``trace``); machine paths are
replaced by ``/build/<platform>``. Needs Java 17 + Maven, Go, Node/npm and Chromium; the test suite
needs none of them (it reads the recorded files).

    python scripts/record_grouping_corpus.py [java go node browser python]
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APPS = Path(__file__).resolve().parent / "grouping_corpus_apps"
OUT = ROOT / "tests" / "data" / "grouping_corpus"
SENTRY_JAVA = "8.64.0"
SENTRY_GO = "v0.46.2"
SENTRY_JS = "8"  # @sentry/node and @sentry/browser major
SENTRY_PYTHON = "2.76.0"
LABEL_RULE = ("# label rule: two events are one issue exactly when the app raised them at the same place in its "
              "source for the same reason (the `bug` tag set at the raise site, moved out of the payload into "
              "`label`); builds, releases, values, stack depth and paths never change the label.")
_KEEP_CONTEXTS = ("trace",)
MAX_FRAMES = 60  # the gateway keeps 100 (schemas.limits.MAX_FRAMES); 60 keeps the files small


class Collector(BaseHTTPRequestHandler):
    """A loopback Sentry endpoint: keeps every event item of every envelope (or store request) it receives."""

    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_OPTIONS(self) -> None:  # noqa: N802 - the browser SDK's CORS preflight
        self.send_response(200)
        self._cors()
        self.end_headers()

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")

    def do_GET(self) -> None:  # noqa: N802 - serves the browser app's page and bundle
        path = Path(getattr(self.server, "static_dir", "/nonexistent")) / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_response(404)
            self.end_headers()
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if path.suffix == ".html" else "application/javascript")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunked(self) -> bytes:
        """A body sent with ``Transfer-Encoding: chunked`` (Node's http client does)."""
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    def do_POST(self) -> None:  # noqa: N802
        body = self._chunked() if "chunked" in (self.headers.get("Transfer-Encoding") or "") else \
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip" or body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        items = [json.loads(body)] if "/store" in self.path else _event_items(body)
        with self.lock:
            self.events.extend(items)
        self.send_response(200)
        self._cors()
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")


def _event_items(body: bytes) -> list[dict[str, Any]]:
    _, _, rest = body.partition(b"\n")
    out = []
    while rest:
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[:header["length"]], rest[header["length"]:].lstrip(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        if header.get("type") == "event":
            out.append(json.loads(payload))
    return out


def _trim(event: dict[str, Any]) -> dict[str, Any]:
    for key in ("modules", "debug_meta", "breadcrumbs", "extra", "spans", "_meta", "request"):
        event.pop(key, None)
    if isinstance(event.get("sdk"), dict):
        event["sdk"] = {k: v for k, v in event["sdk"].items() if k in ("name", "version")}
    if isinstance(event.get("contexts"), dict):
        event["contexts"] = {k: v for k, v in event["contexts"].items() if k in _KEEP_CONTEXTS}
    exceptions = event.get("exception") or []
    for exc in exceptions.get("values") or [] if isinstance(exceptions, dict) else exceptions:
        stack = exc.get("stacktrace") or {}
        if len(stack.get("frames") or []) > MAX_FRAMES:  # what the gateway keeps: where it started and raised
            stack["frames"] = stack["frames"][:MAX_FRAMES // 2] + stack["frames"][-(MAX_FRAMES // 2):]
        for frame in stack.get("frames") or []:
            for key in ("vars", "pre_context", "post_context", "addr_mode", "instruction_addr"):
                frame.pop(key, None)
    event.pop("threads", None)
    event.pop("user", None)
    return event


def _label(event: dict[str, Any]) -> str:
    tags = event.get("tags")
    if isinstance(tags, dict):
        return str(tags.pop("bug"))
    label = next(v for k, v in tags if k == "bug")
    event["tags"] = [[k, v] for k, v in tags if k != "bug"]
    return str(label)


def _write(platform: str, service: str, records: list[tuple[str, dict[str, Any]]], replace: dict[str, str]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"{platform}.jsonl"
    lines = [LABEL_RULE]
    for build, event in records:
        text = json.dumps({"label": _label(event), "service": service, "build": build, "payload": _trim(event)},
                          separators=(",", ":"), sort_keys=True)
        for old, new in sorted(replace.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(old, new)
        lines.append(text)
    target.write_text("\n".join(lines) + "\n")
    return target


def _run_builds(build: Callable[[str, Path], list[str]], env: dict[str, str], cwd: Path
                ) -> list[tuple[str, dict[str, Any]]]:
    """Run the app of each build and collect what its SDK sent."""
    records: list[tuple[str, dict[str, Any]]] = []
    for name in ("a", "b"):
        Collector.events = []
        cmd = build(name, cwd)
        subprocess.run(cmd, check=True, cwd=cwd, env=env, timeout=300)
        records.extend((name, e) for e in sorted(Collector.events, key=lambda e: str(e.get("timestamp"))))
    return records


def _pad(text: str, build: str, marker_code: dict[str, str]) -> str:
    """Build b: the code moved down and the extra code in place."""
    if build == "a":
        return text
    for marker, code in marker_code.items():
        text = text.replace(marker, code)
    return "// moved by the build\n" + "\n" * 11 + text


def record_java(dsn: str, work: Path) -> Path:
    (work / "pom.xml").write_text(
        "<project xmlns=\"http://maven.apache.org/POM/4.0.0\"><modelVersion>4.0.0</modelVersion>"
        "<groupId>com.example.shop</groupId><artifactId>shop</artifactId><version>1</version><dependencies>"
        f"<dependency><groupId>io.sentry</groupId><artifactId>sentry</artifactId><version>{SENTRY_JAVA}</version>"
        "</dependency></dependencies></project>")
    subprocess.run(["mvn", "-q", "dependency:copy-dependencies", "-DoutputDirectory=lib"], check=True, cwd=work)
    source = (APPS / "java" / "Shop.java").read_text()
    extra = {
        "/*EXTRA_LAMBDA*/": "java.util.function.IntUnaryOperator twice = x -> x * 2;\n"
                            "        int doubled(List<Integer> xs) { return xs.stream().mapToInt(x -> twice.applyAsInt(x)).sum(); }",
        "/*EXTRA_ANON*/": "Runnable noop = new Runnable() { public void run() { } };",
        "/*EXTRA_PROXY*/": "for (int k = 0; k < 3; k++) { Proxy.newProxyInstance(Shop.class.getClassLoader(), "
                           "new Class<?>[]{new Class<?>[]{Comparable.class, Runnable.class, java.util.function.Supplier.class}[k]}, "
                           "(p, m, a) -> null); }",
    }

    def build(name: str, cwd: Path) -> list[str]:
        src = cwd / name / "com" / "example" / "shop"
        src.mkdir(parents=True, exist_ok=True)
        (src / "Shop.java").write_text(_pad(source, name, extra))
        classes = cwd / name / "classes"
        subprocess.run(["javac", "-d", str(classes), "-cp", "lib/*", str(src / "Shop.java")], check=True, cwd=cwd)
        # the stack size differs per build, so a stack overflow is cut at another depth
        return ["java", "-Xss" + ("512k" if name == "a" else "1m"), "-cp", f"{classes}:lib/*", "com.example.shop.Shop",
                name]

    records = _run_builds(build, {**os.environ, "SENTRY_DSN": dsn}, work)
    return _write("java", "shop-java", records, {str(work): "/build/java"})


def record_go(dsn: str, work: Path) -> Path:
    records: list[tuple[str, dict[str, Any]]] = []
    for name in ("a", "b"):
        app = work / name / "shop"
        app.mkdir(parents=True)
        source = (APPS / "go" / "main.go").read_text()
        extra = {"/*EXTRA_CLOSURE*/": "_ = func() int { return 1 }()\n\t_ = func() int { return 2 }()"}
        (app / "main.go").write_text(_pad(source, name, extra))
        env = {**os.environ, "GOFLAGS": "-mod=mod"}
        subprocess.run(["go", "mod", "init", "example.com/shop"], check=True, cwd=app, env=env,
                       capture_output=True)
        subprocess.run(["go", "get", f"github.com/getsentry/sentry-go@{SENTRY_GO}"], check=True, cwd=app, env=env,
                       capture_output=True)
        flags = ["-trimpath"] if name == "b" else []  # stdlib paths lose GOROOT: the SDK takes them for in-app
        subprocess.run(["go", "build", *flags, "-o", "shop", "."], check=True, cwd=app, env=env)
        Collector.events = []
        subprocess.run(["./shop", name], check=True, cwd=app, env={**env, "SENTRY_DSN": dsn}, timeout=120)
        records.extend((name, e) for e in sorted(Collector.events, key=lambda e: str(e.get("timestamp"))))
    goroot = subprocess.run(["go", "env", "GOROOT"], capture_output=True, text=True, check=True).stdout.strip()
    gomodcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    return _write("go", "shop-go", records, {str(work): "/build/go", goroot: "/usr/local/go",
                                             gomodcache: "/home/ci/go/pkg/mod"})


def _npm(work: Path) -> None:
    (work / "package.json").write_text('{"name": "shop", "version": "1.0.0", "private": true}')
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", f"@sentry/node@{SENTRY_JS}",
                    f"@sentry/browser@{SENTRY_JS}", "esbuild"], check=True, cwd=work)


def record_node(dsn: str, work: Path) -> Path:
    _npm(work)
    source = (APPS / "node" / "app.js").read_text()
    extra = {"/*EXTRA*/": "const unused = [1, 2].map((x) => x * 2);"}

    def build(name: str, cwd: Path) -> list[str]:
        # build b is deployed in a release directory of its own: the paths change with the release
        target = cwd / "releases" / ("2026-11-30-a1" if name == "a" else "2026-12-07-b2") / "src"
        target.mkdir(parents=True, exist_ok=True)
        (target / "app.js").write_text(_pad(source, name, extra))
        (target / "lib").mkdir(exist_ok=True)
        (target / "lib" / "orders.js").write_text(_pad((APPS / "node" / "orders.js").read_text(), name, extra))
        link = target.parent / "node_modules"
        if not link.exists():
            link.symlink_to(cwd / "node_modules")
        return ["node", str(target / "app.js"), name]

    records = _run_builds(build, {**os.environ, "SENTRY_DSN": dsn}, work)
    return _write("node", "shop-node", records, {str(work): "/srv/shop"})


def record_browser(dsn: str, work: Path, server: ThreadingHTTPServer) -> Path:
    _npm(work)
    records: list[tuple[str, dict[str, Any]]] = []
    static = work / "static"
    static.mkdir(exist_ok=True)
    server.static_dir = str(static)  # type: ignore[attr-defined]
    source = (APPS / "browser" / "app.js").read_text()
    for name in ("a", "b"):
        src = work / f"src-{name}"
        src.mkdir(exist_ok=True)
        (src / "app.js").write_text(_pad(source, name, {"/*EXTRA*/": "export const unused = (x) => [x].map((y) => y + 1);"}))
        (src / "checkout.js").write_text(_pad((APPS / "browser" / "checkout.js").read_text(), name,
                                              {"/*EXTRA*/": "export function helper(x) { return x + 1; }"}))
        out = static / name
        shutil.rmtree(out, ignore_errors=True)
        # content-hashed entry and chunk names, minified, code split: what a production build ships
        subprocess.run([str(work / "node_modules" / ".bin" / "esbuild"), str(src / "app.js"), "--bundle", "--minify",
                        "--splitting", "--format=esm", f"--outdir={out}", "--entry-names=[name].[hash]",
                        "--chunk-names=chunk-[hash]", f"--define:RELEASE=\"shop-web@{'3.1.0' if name == 'a' else '3.2.0'}\"",
                        f"--define:DSN=\"{dsn}\"", f"--define:BUILD=\"{name}\""], check=True, cwd=work)
        entry = next(p.name for p in out.iterdir() if p.name.startswith("app."))
        (out / "index.html").write_text(f'<html><body><script type="module" src="/{name}/{entry}"></script></body></html>')
        Collector.events = []
        port = server.server_address[1]
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                        "--dump-dom", f"http://127.0.0.1:{port}/{name}/index.html"], check=True, cwd=work,
                       capture_output=True, timeout=120)
        records.extend((name, e) for e in sorted(Collector.events, key=lambda e: str(e.get("timestamp"))))
    return _write("browser", "shop-web", records, {f"127.0.0.1:{server.server_address[1]}": "shop.example.com"})


def record_python(dsn: str, work: Path) -> Path:
    import venv

    venv.create(work / "venv", with_pip=True)
    python = str(work / "venv" / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", f"sentry-sdk=={SENTRY_PYTHON}"], check=True)

    def build(name: str, cwd: Path) -> list[str]:
        target = cwd / ("srv/app/releases/411" if name == "a" else "opt/shop/releases/412") / "shop"
        target.mkdir(parents=True, exist_ok=True)
        text = (APPS / "python" / "shop.py").read_text()
        if name == "b":
            text = text.replace("# EXTRA", "def unused():\n    return [x for x in range(3)]\n")
            text = "# moved by the build\n" + "\n" * 9 + text
        (target / "shop.py").write_text(text)
        return [python, str(target / "shop.py"), name]

    records = _run_builds(build, {**os.environ, "SENTRY_DSN": dsn}, work)
    return _write("python", "shop-python", records, {str(work): "", python: "python"})


def main(argv: list[str]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dsn = f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
    wanted = argv or ["java", "go", "node", "browser", "python"]
    try:
        for platform in wanted:
            with tempfile.TemporaryDirectory(prefix=f"corpus-{platform}-") as tmp:
                work = Path(tmp)
                if platform == "browser":
                    target = record_browser(dsn, work, server)
                else:
                    target = {"java": record_java, "go": record_go, "node": record_node,
                              "python": record_python}[platform](dsn, work)
                count = len(target.read_text().splitlines()) - 1
                print(f"{target.relative_to(ROOT)}: {count} events, {target.stat().st_size // 1024} KB")
    finally:
        server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
