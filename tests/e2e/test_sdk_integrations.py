"""SDK integrations on the real broker: hooks, WSGI, OpenTelemetry ids, breadcrumbs; read back from `errors`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

from errstream_core.settings import Settings
from producers.integrations import ErrstreamWSGIMiddleware, install_asyncio_handler, install_excepthooks
from producers.scope import isolated_scope, set_tag
from producers.sdk import Client
from schemas.events import ErrorEvent
from tests.support.kafka import read_topic
from tests.support.services import settings_env

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    c = Client("hooks", settings=settings, server_name="h-1")
    yield c
    c.close()


def published(client: Client, settings: Settings, n: int) -> list[dict[str, Any]]:
    assert client.flush(30), client.stats
    events = read_topic(settings, settings.topic_errors, expect=n, timeout=30)
    for e in events:
        ErrorEvent.model_validate(e)  # what the SDK sends is always valid for the worker
    return events


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # it is re-raised on purpose
def test_thread_and_asyncio_hooks_report_uncaught_errors(client: Client, settings: Settings) -> None:
    saved = sys.excepthook, threading.excepthook
    try:
        install_excepthooks(client)

        def job() -> None:
            raise LookupError("no such warehouse")

        t = threading.Thread(target=job, name="sync-job")
        t.start()
        t.join()
    finally:
        sys.excepthook, threading.excepthook = saved

    async def main() -> None:
        install_asyncio_handler(client)
        asyncio.get_running_loop().call_soon(lambda: 1 / 0)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    events = {e["exceptions"][-1]["type"]: e for e in published(client, settings, 2)}
    thread_event = events["LookupError"]
    assert thread_event["exceptions"][-1]["mechanism"] == {"type": "threading", "handled": False}
    assert thread_event["context"]["extra"] == {"thread": "sync-job"}
    assert thread_event["exceptions"][-1]["stacktrace"][-1]["function"].endswith("job")
    loop_event = events["ZeroDivisionError"]
    assert loop_event["exceptions"][-1]["mechanism"]["type"] == "asyncio"


def test_uncaught_exception_in_main_is_sent_before_the_process_exits(settings: Settings) -> None:
    code = (
        "import errstream\n"
        "errstream.init(service='cron', release='3.0')\n"
        "def nightly():\n"
        "    raise PermissionError('backup dir not writable')\n"
        "nightly()\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env={**settings_env(settings), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1 and "PermissionError: backup dir not writable" in run.stderr  # still printed
    [event] = read_topic(settings, settings.topic_errors, expect=1, timeout=30)
    assert event["service"] == "cron" and event["release"] == "3.0" and event["level"] == "critical"
    assert event["exceptions"][-1]["mechanism"] == {"type": "excepthook", "handled": False}
    assert [f["function"] for f in event["exceptions"][-1]["stacktrace"]] == ["<module>", "nightly"]


def test_wsgi_middleware_otel_ids_and_bounded_breadcrumbs(client: Client, settings: Settings) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise TimeoutError("payment provider timed out")

    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/pay", "QUERY_STRING": "order=9",
                               "HTTP_X_CORRELATION_ID": "corr-1", "HTTP_COOKIE": "session=secret"}
    setup_testing_defaults(environ)
    with pytest.raises(TimeoutError):
        ErrstreamWSGIMiddleware(app, client)(environ, lambda *a: None)

    for i in range(150):
        client.add_breadcrumb(f"step {i}", category="job")
    span = NonRecordingSpan(SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331,
                                        is_remote=False))
    with trace.use_span(span), isolated_scope():
        set_tag("phase", "otel")
        client.capture_message("inside a span", level="warning")
    client.capture_message("outside, with the process-wide breadcrumbs")

    events = {e["message"] or e["exceptions"][-1]["type"]: e for e in published(client, settings, 3)}
    web = events["TimeoutError"]
    assert web["request"]["method"] == "POST" and web["request"]["url"] == "http://127.0.0.1/pay"
    assert web["request"]["query_string"] == "order=9" and web["request"]["headers"]["cookie"] == "[Filtered]"
    assert web["correlation_id"] == "corr-1"
    assert web["exceptions"][-1]["mechanism"] == {"type": "wsgi", "handled": False}

    in_span = events["inside a span"]
    assert (in_span["trace_id"], in_span["span_id"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert in_span["tags"] == {"phase": "otel"} and in_span["breadcrumbs"] == []  # its own scope and buffer

    outside = events["outside, with the process-wide breadcrumbs"]
    assert outside["trace_id"] is None and outside["tags"] == {}
    assert [b["message"] for b in outside["breadcrumbs"]] == [f"step {i}" for i in range(50, 150)]
