"""The SDK scrubs on the sender thread before an event leaves the process (no broker needed to see it)."""

from __future__ import annotations

import orjson

from errstream_core.settings import Settings
from producers.sdk import Client

REFUSED = "redis://:hunter22@cache:6379/0 refused for ada@example.com"


class _Config:
    def __str__(self) -> str:  # not JSON: the SDK sends str() of it, and that must be scrubbed too
        return "config with password=hunter2"


def _serialised(scrub: bool) -> dict:
    client = Client("svc", settings=Settings(kafka_bootstrap="127.0.0.1:1"), scrub=scrub)
    sent: list[bytes] = []
    client.transport.submit = lambda p: sent.append(client._serialise(p)[1])  # type: ignore[method-assign,assignment]
    try:
        try:
            raise ConnectionError(REFUSED)  # a literal here would be in the frame's source line, which is code
        except ConnectionError:
            client.capture_exception(user={"id": "u-1", "email": "ada@example.com"},
                                     extra={"cfg": _Config(), "dsn": "postgres://a:s3cretpw@db.example.com:5432/x"})
    finally:
        client.close(0.1)
    [raw] = sent
    return orjson.loads(raw)


def test_events_are_scrubbed_before_they_leave_unless_opted_out() -> None:
    event = _serialised(scrub=True)
    text = orjson.dumps(event).decode()
    for secret in ("hunter22", "hunter2", "s3cretpw", "ada@example.com"):
        assert secret not in text, secret
    assert event["exceptions"][0]["value"] == "redis://:[Filtered]@cache:6379/0 refused for <email>"
    assert event["context"]["extra"]["cfg"] == "config with password=<secret>"
    assert event["user"]["email"].startswith("email:")
    raw = orjson.dumps(_serialised(scrub=False)).decode()
    assert "hunter22" in raw and "ada@example.com" in raw  # scrub=False: the worker scrubs instead
