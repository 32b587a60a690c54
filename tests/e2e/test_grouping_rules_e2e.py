"""A rules file applied while a worker runs regroups later events only, on the real broker and ClickHouse."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from stream_processors.grouping_rules import parse_rules
from tests.support.detection import publish
from tests.support.raising import capture, load_module
from tests.support.services import Service, settings_env, wait_for

pytestmark = pytest.mark.e2e

DATABASE = """
    def connect():
        raise ConnectionError("database unreachable")

    def checkout():
        connect()

    def refund():
        connect()
"""
RULES = "error.type:ConnectionError -> database-unavailable\n"



def _groups(ch: Client, settings: Settings) -> list[tuple[str, str, str, int]]:
    try:
        return [tuple(r) for r in ch.query(  # type: ignore[misc]
            f"SELECT correlation_id, fingerprint, grouping_rules, count() FROM {settings.clickhouse_database}"
            ".error_events FINAL GROUP BY correlation_id, fingerprint, grouping_rules ORDER BY correlation_id"
        ).result_rows]
    except Exception:
        return []


def test_a_rule_applied_while_the_worker_runs_changes_later_events_only(
    settings: Settings, ch: Client, services: dict[str, Service], tmp_path: Path
) -> None:
    mod = load_module(tmp_path, "shop.orders", DATABASE)
    before = [capture(mod.checkout, service="shop", correlation_id="before-checkout"),
              capture(mod.refund, service="shop", correlation_id="before-refund")]
    publish(settings, before)
    first = wait_for(lambda: _groups(ch, settings), lambda g: len(g) == 2, 120, "the first two events stored",
                     diagnostics=lambda: services["worker"].output()[-3000:])
    assert first[0][1] != first[1][1] and {g[2] for g in first} == {""}  # two issues, grouped without rules

    (tmp_path / "db.rules").write_text(RULES)
    env = {**settings_env(settings)}
    applied = subprocess.run([sys.executable, "-m", "errstream.cli", "rules", "apply", str(tmp_path / "db.rules"),
                              "--delay", "2"], capture_output=True, text=True, timeout=60,
                             env={**__import__("os").environ, **env})
    assert applied.returncode == 0, applied.stdout + applied.stderr
    time.sleep(settings.grouping_rules_delay_seconds + 0.5)  # the recorded switch point must be in the past

    after = [capture(mod.checkout, service="shop", correlation_id="z-after-checkout"),
             capture(mod.refund, service="shop", correlation_id="z-after-refund")]
    publish(settings, after)
    groups = wait_for(lambda: _groups(ch, settings), lambda g: len(g) == 4, 120, "all four events stored",
                      diagnostics=lambda: services["worker"].output()[-3000:])
    by_id = {g[0]: g for g in groups}
    version = parse_rules(RULES).version
    # the earlier events keep their fingerprints; the later ones share the rule's, and record its version
    assert by_id["before-checkout"][1:3] == (first[0][1], "") and by_id["before-refund"][1:3] == (first[1][1], "")
    assert by_id["z-after-checkout"][1] == by_id["z-after-refund"][1] not in {first[0][1], first[1][1]}
    assert by_id["z-after-checkout"][2] == by_id["z-after-refund"][2] == version
