"""`errstream alerts tail`: its line format and the real command against the real broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from errstream.alerts_cli import SEVERITY_STYLE, format_alert
from errstream_core.settings import Settings
from errstream_core.topics import ensure_topics
from producers.synthetic import synthetic_alert
from tests.support.alerts import publish, publish_alerts
from tests.support.services import settings_env, wait_for


def _style_of(text: object, word: str) -> str:
    plain = text.plain  # type: ignore[attr-defined]
    start = plain.index(word)
    return next(str(s.style) for s in text.spans if s.start <= start < s.end)  # type: ignore[attr-defined]


def test_format_colours_by_severity_and_shows_the_essentials() -> None:
    critical = synthetic_alert(severity="critical", title="DBTimeout: pool exhausted", service="checkout")
    info = synthetic_alert(severity="info", kind="new_issue", message="")
    line = format_alert(critical)
    assert _style_of(line, "CRITICAL") == SEVERITY_STYLE["critical"] == "bold white on red"
    assert _style_of(format_alert(info), "INFO") == "cyan"
    first, second = line.plain.split("\n")
    assert "spike" in first and "checkout" in first and "DBTimeout: pool exhausted" in first
    assert critical.fingerprint is not None and f"[{critical.fingerprint[:12]}]" in first
    assert critical.message is not None and second.strip() == critical.message
    assert "\n" not in format_alert(info).plain  # no message, one line

    console = Console(force_terminal=True, color_system="standard", width=200, record=True)
    console.print(line)
    assert "\x1b[" in console.export_text(styles=True)  # rendered with colour on a terminal


def _tail(settings: Settings, *args: str, **kw: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings_env(settings), "COLUMNS": "250"}
    return subprocess.Popen([sys.executable, "-m", "errstream.cli", "alerts", "tail", *args], env=env, **kw)  # type: ignore[call-overload]


@pytest.mark.e2e
def test_tail_prints_published_alerts(settings: Settings, tmp_path: Path) -> None:
    old = [synthetic_alert(title="OldError: before the tail started"), synthetic_alert(severity="warning")]
    publish_alerts(settings, old)

    done = _tail(settings, "--from-beginning", "--json", "-n", "2", stdout=subprocess.PIPE)
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 0
    assert sorted(orjson.loads(line)["alert_id"] for line in out.splitlines()) == sorted(
        str(a.alert_id) for a in old)

    # Following from now: only what is published after the banner.
    err_file = tmp_path / "tail.err"
    with open(err_file, "wb") as err:
        follow = _tail(settings, "-n", "1", stdout=subprocess.PIPE, stderr=err)
        try:
            wait_for(lambda: err_file.read_text(), lambda t: "following" in t, 30, "the tail banner")
            new = synthetic_alert(severity="critical", title="NewError: after the banner")
            publish_alerts(settings, [new])
            out, _ = follow.communicate(timeout=60)
        finally:
            if follow.poll() is None:
                follow.kill()
    text = out.decode()
    assert "CRITICAL" in text and "NewError: after the banner" in text
    assert "OldError" not in text


@pytest.mark.e2e
def test_tail_reports_unreadable_records_and_continues(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings, [settings.topic_alerts]))
    good = synthetic_alert(title="GoodError: after garbage")
    # One partition key so the garbage is read before the good alert.
    publish(settings, settings.topic_alerts, [b"garbage", good.model_dump_json().encode()], key=b"k")
    done = _tail(settings, "--from-beginning", "-n", "2", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert "unreadable record" in err.decode() and "GoodError: after garbage" in out.decode()
