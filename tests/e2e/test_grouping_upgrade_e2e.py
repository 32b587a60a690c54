"""A grouping upgrade on the real stack: worker, sink and notify processes, the real broker and ClickHouse.

Issues opened under grouping version 1 keep their identity and counts when the worker restarts with version
2 (whose fingerprints differ for every event): during the transition each event carries its version-1
fingerprint, detection counts it as the existing issue, raises no new-issue alert, and merges the new
fingerprint into the issue once, so the views show one row per bug with all its events. A bug first seen
after the upgrade is a new issue, alerted once; the next deploy of the app (its build b: code moved,
lambdas renumbered, so another version-1 fingerprint) stays in the upgraded issue. The events are real
SDK payloads (sentry-java), through the gateway's conversion.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from clickhouse_connect.driver.client import Client

from errstream.local.process import free_port
from errstream_core.settings import Settings
from errstream_core.topics import by_fingerprint_topic
from producers.gateway.sentry_typed import convert_sentry_payload
from schemas.events import ErrorEvent
from schemas.fast import encode
from tests.support.alerts import query_rows
from tests.support.detection import alerts, of_kind, publish, wait_alerts
from tests.support.kafka import group_lag
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "data" / "grouping_corpus" / "java.jsonl"


def sdk_events(label: str, build: str = "a") -> list[ErrorEvent]:
    """The recorded sentry-java events of one bug, converted by the gateway, with fresh ids and times."""
    out: list[ErrorEvent] = []
    for line in CORPUS.read_text().splitlines()[1:]:
        record = json.loads(line)
        if record["label"] == label and record["build"] == build:
            event = ErrorEvent.model_validate_json(encode(convert_sentry_payload(
                json.dumps(record["payload"]).encode(), service=record["service"])))
            out.append(event.model_copy(update={"event_id": uuid.uuid4(),
                                                "timestamp": datetime.now(UTC) - timedelta(seconds=len(out))}))
    assert out, label
    return out


def groups(ch: Client, settings: Settings) -> dict[str, tuple[int, list[str]]]:
    """v_error_groups: issue → (events, member fingerprints)."""
    return {fp: (int(n), sorted(m)) for fp, n, m in query_rows(
        ch, f"SELECT fingerprint, events, members FROM {settings.clickhouse_database}.v_error_groups")}


def caught_up(settings: Settings, what: str) -> None:
    """Until the processing stage, then detection, have committed everything they were given."""
    wait_for(lambda: group_lag(settings, f"{settings.app_id}-process", [settings.topic_errors]), lambda n: n == 0, 90,
             f"the processing stage to take {what}")
    wait_for(lambda: group_lag(settings, settings.app_id, [by_fingerprint_topic(settings)]), lambda n: n == 0, 90,
             f"detection to take {what}")


def transition_groupings(port: int) -> dict[str, float]:
    """The worker's errstream_worker_transition_groupings_total, by outcome."""
    text = wait_for(lambda: _metrics(port), lambda t: "errstream_worker_transition_groupings_total" in t, 30,
                    "the worker's metrics")
    found = re.findall(r'^errstream_worker_transition_groupings_total\{outcome="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {"computed": 0.0, "settled": 0.0, **{k: float(v) for k, v in found}}


def _metrics(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return ""


def test_an_upgrade_keeps_existing_issues_and_their_counts_and_raises_no_new_issue_alert(
    settings: Settings, ch: Client, tmp_path: Path,
) -> None:
    lambda_npe, anonymous, stack_overflow = ("java-npe-in-stream-lambda", "java-anonymous-runnable",
                                             "java-stack-overflow")
    v1 = Service("worker", settings, tmp_path / "v1", extra_env={"ERRSTREAM_GROUPING_VERSION": "1"}).start()
    services = [v1, Service("sink", settings, tmp_path).start(), Service("notify", settings, tmp_path).start()]
    logs: Callable[[], str] = lambda: "\n".join(s.output()[-2000:] for s in services)  # noqa: E731
    try:
        publish(settings, sdk_events(lambda_npe) + sdk_events(anonymous))  # 3 + 3 events, grouping version 1
        got = wait_alerts(settings, lambda a: len(of_kind(a, "new_issue")) >= 2, what="two version-1 issues",
                          diagnostics=logs)
        old = {a["title"].split(": ")[1]: a["fingerprint"] for a in of_kind(got, "new_issue")}
        npe, ise = old["NullPointerException"], old["IllegalStateException"]
        wait_for(lambda: groups(ch, settings), lambda g: g == {npe: (3, [npe]), ise: (3, [ise])}, 90,
                 "both version-1 issues in v_error_groups", diagnostics=logs)

        v1.stop()  # the upgrade: the same worker, now with the defaults (version 2, transition from version 1)
        port = free_port()
        services[0] = Service("worker", settings, tmp_path / "v2", extra_env={"ERRSTREAM_METRICS_PORT": str(port)}).start()
        publish(settings, sdk_events(lambda_npe) + sdk_events(anonymous) + sdk_events(stack_overflow))

        got = wait_alerts(settings, lambda a: len(of_kind(a, "new_issue")) >= 3, what="the new bug's issue",
                          diagnostics=logs)
        # the merges made by the upgrade reach the views: one row per bug, with every event of it
        final = wait_for(lambda: groups(ch, settings),
                         lambda g: g.get(npe, (0,))[0] == 6 and g.get(ise, (0,))[0] == 6 and len(g) == 3, 120,
                         "the upgraded issues with all their events", diagnostics=logs)
        assert len(final[npe][1]) == 2 and len(final[ise][1]) == 2, final  # the issue and its version-2 fingerprint
        new_bug = next(fp for fp in final if fp not in (npe, ise))
        assert final[new_bug] == (3, [new_bug])
        got = alerts(settings)
        assert sorted(a["fingerprint"] for a in of_kind(got, "new_issue")) == sorted([npe, ise, new_bug]), got
        merges = query_rows(ch, f"SELECT fingerprint, primary_fingerprint, changed_by FROM {settings.clickhouse_database}"
                                ".issue_merges FINAL WHERE primary_fingerprint != ''")
        assert sorted(primary for _, primary, _ in merges) == sorted([npe, ise])
        assert {by for _, _, by in merges} == {"grouping-upgrade"}

        # the next deploy (build b: code moved, lambdas renumbered) is the same issue: no new one
        publish(settings, sdk_events(lambda_npe, build="b"))
        wait_for(lambda: groups(ch, settings), lambda g: g.get(npe, (0,))[0] == 9 and len(g) == 3, 120,
                 "build b's events in the upgraded issue", diagnostics=logs)
        caught_up(settings, "build b's events")
        assert len(of_kind(alerts(settings), "new_issue")) == 3

        # detection has decided all three bugs: their next events skip the second grouping
        before = transition_groupings(port)
        publish(settings, sdk_events(lambda_npe) + sdk_events(stack_overflow))
        caught_up(settings, "known bugs' events")
        after = transition_groupings(port)
        assert after["settled"] - before["settled"] == 6 and after["computed"] == before["computed"], (before, after)
        wait_for(lambda: groups(ch, settings), lambda g: g.get(npe, (0,))[0] == 12 and g[new_bug][0] == 6, 120,
                 "the known bugs' events in their issues", diagnostics=logs)
    finally:
        for s in services:
            s.stop()
