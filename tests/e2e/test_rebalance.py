"""Exact under rebalances: workers and sinks join and leave (SIGTERM, SIGKILL) every second or two while
events flow, and afterwards every count, row and alert is exactly what the events make.

One scenario per module run (``churned``); each check is its own test so that detection's exactness
(state, new-issue and threshold alerts) is judged apart from the sink's (ClickHouse rows and counts).

Short form (CI): ``pytest tests/e2e/test_rebalance.py``. Long form, 50 membership changes::

    ERRSTREAM_REBALANCE_ROUNDS=50 .venv/bin/python -m pytest tests/e2e/test_rebalance.py -q
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest

from errstream.local.servers import isolated_settings
from tests.support.rebalance import MARKS, Outcome, churn

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def churned(kafka_bootstrap: str, clickhouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """Two workers, two sinks and a notifier; ``ROUNDS`` membership changes 0.5–2 s apart while events flow."""
    yield churn(isolated_settings(kafka_bootstrap, clickhouse_url), tmp_path_factory.mktemp("rebalance"))


def test_no_worker_or_sink_ends_on_its_own(churned: Outcome) -> None:
    assert not churned.exited, churned.exited


# --- detection ---------------------------------------------------------------------------------------------


def test_the_worker_processed_every_event(churned: Outcome) -> None:
    missing = [e.event_id for e in churned.sent if str(e.event_id) not in churned.fingerprint_of]
    assert not missing, f"{len(missing)} of {len(churned.sent)} events never reached the processed topic"


def test_detection_counts_each_event_of_an_issue_exactly_once(churned: Outcome) -> None:
    truth = churned.true_counts()
    wrong = {fp: (churned.detection_counts.get(fp), n) for fp, n in truth.items()
             if churned.detection_counts.get(fp) != n}
    assert not wrong, (f"(counted, true) for {len(wrong)} of {len(truth)} issues after {churned.actions}: "
                       f"{dict(list(wrong.items())[:10])}; counted {sum(churned.detection_counts.values())} "
                       f"of {len(churned.sent)}" + "".join(churned.trace(fp) for fp in list(wrong)[:2]))


def test_detection_counts_each_event_of_a_service_minute_exactly_once(churned: Outcome) -> None:
    truth = Counter((e.service, int(e.timestamp.timestamp() // 60) * 60) for e in churned.sent)
    assert churned.service_minutes == dict(truth), (
        f"counted {sum(churned.service_minutes.values())} of {len(churned.sent)} after {churned.actions}")


def test_each_new_issue_is_alerted_once_by_alert_id(churned: Outcome) -> None:
    truth = churned.true_counts()
    new = churned.of_kind("new_issue")
    ids_per_issue: dict[str, set[str]] = defaultdict(set)
    for a in new:
        ids_per_issue[a["fingerprint"]].add(a["alert_id"])
    assert set(ids_per_issue) == set(truth), (sorted(set(truth) - set(ids_per_issue)), churned.actions)
    assert all(len(ids) == 1 for ids in ids_per_issue.values()), ids_per_issue
    stored = Counter(alert_id for alert_id, kind, _ in churned.stored_alerts if kind == "new_issue")
    assert set(stored) == {next(iter(ids)) for ids in ids_per_issue.values()}
    assert set(stored.values()) == {1}


def test_threshold_alerts_name_exactly_the_marks_each_issue_reached(churned: Outcome) -> None:
    truth = churned.true_counts()
    marks_alerted: dict[str, Counter[int]] = defaultdict(Counter)
    for a in {a["alert_id"]: a for a in churned.of_kind("threshold")}.values():
        marks_alerted[a["fingerprint"]][a["details"]["threshold"]] += 1
    expected = {fp: {m for m in MARKS if m <= n} for fp, n in truth.items() if n >= MARKS[0]}
    got = {fp: set(c) for fp, c in marks_alerted.items()}
    assert got == expected, {fp: (sorted(got.get(fp, ())), truth[fp]) for fp in set(got) | set(expected)
                             if got.get(fp) != expected.get(fp)}
    assert all(n == 1 for c in marks_alerted.values() for n in c.values())  # one alert_id per mark
    stored = Counter(d for _, kind, d in churned.stored_alerts if kind == "threshold")
    assert set(stored) == {f"threshold:{fp}:{m}" for fp, ms in expected.items() for m in ms}
    assert set(stored.values()) == {1}


# --- sink (ClickHouse) -------------------------------------------------------------------------------------


def test_clickhouse_counts_every_event_once_per_service_and_minute(churned: Outcome) -> None:
    expected = Counter((e.service, e.timestamp.strftime("%Y-%m-%d %H:%M:00")) for e in churned.sent)
    assert churned.minute_counts == dict(expected), (
        f"stored {sum(churned.minute_counts.values())} of {len(churned.sent)} after {churned.actions}")


def test_clickhouse_holds_one_error_events_row_per_event(churned: Outcome) -> None:
    assert churned.rows == (len(churned.sent), len(churned.sent)), churned.actions
