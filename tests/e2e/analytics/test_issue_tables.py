"""What the issue page reads from tables kept at insert: the title and the tag counts.

An issue's title is its first event's title, whatever order its events arrive in and however the parts merge
(titles carry the message, so the events of one fingerprint have several; error_groups kept anyLast(title),
and the issue's title changed between reloads: issue 26, item 5). Its top tag values come from
error_tag_counts, which must count what the events hold, including the events stored before it existed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from reports.issue_queries.models import IssueFilter
from reports.issue_queries.queries import IssueQueries
from schemas.events import ErrorEvent, ExceptionInfo
from schemas.processed import ProcessedEvent
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from tests.e2e.analytics.data import build, fp, insert_batch

pytestmark = pytest.mark.e2e
FP, MERGED_FP = fp("titles"), fp("titles-member")


@pytest.fixture()
def settings(clickhouse_url: str) -> Settings:
    return Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"errstream_t{uuid.uuid4().hex[:10]}")


@pytest.fixture()
def db(settings: Settings) -> Iterator[tuple[Client, str]]:
    migrate(settings)
    client = connect(settings, database=settings.clickhouse_database)
    yield client, settings.clickhouse_database
    client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    client.close()


def _backfill_twice(client: Client, settings: Settings, migration: str, tables: list[str],
                    check: Callable[[], None]) -> None:
    """Events stored before the tables existed: the migration fills them once, and a second run adds nothing."""
    name = settings.clickhouse_database
    for t in tables:
        client.command(f"TRUNCATE TABLE {name}.{t}")
    for _ in range(2):
        client.command(f"ALTER TABLE {name}.schema_migrations DELETE WHERE name = '{migration}'",
                       settings={"mutations_sync": 2})
        migrate(settings)
        check()


def _processed(fingerprint: str, ts: datetime, card: int) -> dict[str, Any]:
    title = f"CardError: card {card} declined"
    event = ErrorEvent(event_id=uuid.uuid4(), timestamp=ts, service="billing", level="error", message=title,
                       exceptions=[ExceptionInfo(type="CardError", value=f"card {card} declined")])
    return ProcessedEvent(event=event, fingerprint=fingerprint, title=title, culprit="billing.pay in charge",
                          exception_type="CardError", received_at=ts).model_dump(mode="json")


def _titles(client: Client, db: str) -> set[str]:
    q = IssueQueries(client, db)
    detail = q.issue(FP)
    assert detail is not None
    listed = {i.title for i in q.list_issues(IssueFilter(), "last_seen", None, 25).issues if i.fingerprint == FP}
    (view,) = client.query(f"SELECT title FROM {db}.v_error_groups WHERE fingerprint = {{f:String}}",
                           parameters={"f": FP}).result_rows[0]
    return {detail.title, view, *listed}


def test_the_title_is_the_first_events_in_every_read_and_after_merges(db: tuple[Client, str]) -> None:
    client, name = db
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    # five batches; the earliest event (card 1000) arrives in the third, late, beside later ones
    batches = [
        [_processed(FP, t0 + timedelta(minutes=30 + k), 2000 + k) for k in range(3)],
        [_processed(FP, t0 + timedelta(minutes=60 + k), 3000 + k) for k in range(3)],
        [_processed(FP, t0 + timedelta(minutes=90), 4000), _processed(FP, t0, 1000),
         _processed(FP, t0 + timedelta(minutes=91), 4001)],
        [_processed(FP, t0 + timedelta(minutes=120), 5000)],
        [_processed(FP, t0 + timedelta(minutes=150), 6000)],
    ]
    for k, batch in enumerate(batches):
        insert_batch(client, name, batch, f"titles/{k}")
    first = "CardError: card 1000 declined"
    for _ in range(5):  # reloads
        assert _titles(client, name) == {first}
    client.command(f"OPTIMIZE TABLE {name}.error_groups FINAL")
    assert _titles(client, name) == {first}
    # a later event with the same earliest time does not change it either (ties: the smallest title)
    insert_batch(client, name, [_processed(FP, t0, 9999)], "titles/tie")
    assert _titles(client, name) == {first}


# What the issue page computed before migration 0016, from the events themselves.
_FROM_EVENTS = (
    "SELECT fingerprint, k, v, count() FROM {db}.error_events"
    " ARRAY JOIN arrayConcat(['environment', 'release', 'server_name', 'service'],"
    "   arrayMap(x -> toString(x), mapKeys(tags))) AS k,"
    "   arrayConcat([toString(environment), toString(release), toString(server_name), toString(service)],"
    "   mapValues(tags)) AS v WHERE v != '' GROUP BY fingerprint, k, v ORDER BY fingerprint, k, v")
_FROM_TABLE = "SELECT fingerprint, k, v, sum(n) FROM {db}.error_tag_counts GROUP BY fingerprint, k, v ORDER BY fingerprint, k, v"


def test_tag_counts_equal_the_events_for_new_and_backfilled_events_and_a_replay_counts_once(
        db: tuple[Client, str], settings: Settings) -> None:
    client, name = db
    ds = build()
    for p in ds.processed[:200]:  # some tags beside the columns
        p["event"]["tags"] = {"region": "eu" if p["event"]["service"] == "checkout" else "us", "shard": "7"}
    for k in range(0, len(ds.processed), 100):
        insert_batch(client, name, ds.processed[k:k + 100], f"tags/{k}")
    insert_batch(client, name, ds.processed[:100], "tags/0")  # a replayed sink batch: the same token
    expected = client.query(_FROM_EVENTS.replace("{db}", name)).result_rows
    assert expected and any(k == "region" for _, k, _, _ in expected)
    assert client.query(_FROM_TABLE.replace("{db}", name)).result_rows == expected
    q = IssueQueries(client, name)
    assert {t.value: t.count for t in q.top_tags(fp("A"))["release"]} == {"1.0.0": 75, "0.9.0": 40}
    # events stored before the table existed: the migration counts them once, and a second run adds nothing
    client.command(f"TRUNCATE TABLE {name}.error_tag_counts")
    client.command(f"ALTER TABLE {name}.schema_migrations DELETE WHERE name = '0016_issue_tag_counts.sql'",
                   settings={"mutations_sync": 2})
    migrate(settings)
    assert client.query(_FROM_TABLE.replace("{db}", name)).result_rows == expected
    client.command(f"ALTER TABLE {name}.schema_migrations DELETE WHERE name = '0016_issue_tag_counts.sql'",
                   settings={"mutations_sync": 2})
    migrate(settings)
    assert client.query(_FROM_TABLE.replace("{db}", name)).result_rows == expected


# What similar issues read before migration 0018: each issue's latest stored event, found among its events.
_LATEST_FROM_EVENTS = ("SELECT fingerprint, argMax(exceptions, (timestamp, event_id)) FROM {db}.error_events"
                       " GROUP BY fingerprint ORDER BY fingerprint")
_LATEST_FROM_TABLE = ("SELECT fingerprint, argMaxMerge(exceptions) FROM {db}.error_latest_events"
                      " GROUP BY fingerprint ORDER BY fingerprint")


def test_each_issues_latest_event_is_kept_at_insert_for_new_late_and_backfilled_events(
        db: tuple[Client, str], settings: Settings) -> None:
    client, name = db
    ds = build()
    for i, p in enumerate(ds.processed):  # each event's chain says which it is
        p["event"]["exceptions"][-1]["value"] = f"event {i}"
    late = sorted(range(len(ds.processed)), key=lambda i: ds.processed[i]["event"]["timestamp"])[-1]
    order = [late, *(i for i in range(len(ds.processed)) if i != late)]  # the latest event arrives first
    for k in range(0, len(order), 100):
        insert_batch(client, name, [ds.processed[i] for i in order[k:k + 100]], f"latest/{k}")
    expected = client.query(_LATEST_FROM_EVENTS.replace("{db}", name)).result_rows
    assert len(expected) == len({p["fingerprint"] for p in ds.processed})
    assert client.query(_LATEST_FROM_TABLE.replace("{db}", name)).result_rows == expected
    latest = {str(f): str(chain) for f, chain in expected}
    assert f'"event {late}"' in latest[ds.processed[late]["fingerprint"]]
    # events stored before the table existed: the migration fills it once

    def check() -> None:
        assert client.query(_LATEST_FROM_TABLE.replace("{db}", name)).result_rows == expected

    _backfill_twice(client, settings, "0018_issue_latest_event.sql", ["error_latest_events"], check)


# The counts the web app's windows read (migration 0020), and what they roll up: the per-minute and per-hour counts.
_ROLLUPS = {
    "error_service_counts_1m": (
        "SELECT minute, service, level, sum(events), sum(stored), uniqCombinedMerge(12)(users) FROM {db}.{t}"
        " GROUP BY minute, service, level ORDER BY minute, service, level", "error_counts_1m"),
    "error_service_counts_1h": (
        "SELECT hour, service, level, sum(events), sum(stored), uniqCombinedMerge(12)(users) FROM {db}.{t}"
        " GROUP BY hour, service, level ORDER BY hour, service, level", "error_counts_1h"),
    "error_issue_counts_1h": (
        "SELECT hour, service, fingerprint, level, sum(events), sum(stored) FROM {db}.{t}"
        " GROUP BY hour, service, fingerprint, level ORDER BY hour, service, fingerprint, level", "error_counts_1h"),
    "error_issue_counts_1d": (
        "SELECT toDate(DAY) AS d, fingerprint, sum(events) FROM {db}.{t} GROUP BY d, fingerprint ORDER BY d, fingerprint",
        "error_counts_1h"),
}


def _rollup(client: Client, db: str, table: str, source: bool) -> list[Any]:
    sql, scanned = _ROLLUPS[table]
    day = "hour" if source and table == "error_issue_counts_1d" else "day"
    return list(client.query(sql.replace("DAY", day).replace("{db}", db).replace("{t}", scanned if source else table)
                             ).result_rows)


def test_window_counts_equal_the_counts_they_roll_up_for_new_late_replayed_and_backfilled_events(
        db: tuple[Client, str], settings: Settings) -> None:
    client, name = db
    ds = build()
    # the newest events first: the older ones arrive late, in later batches, into cells written before
    order = sorted(range(len(ds.processed)), key=lambda i: ds.processed[i]["event"]["timestamp"], reverse=True)
    for k in range(0, len(order), 100):
        insert_batch(client, name, [ds.processed[i] for i in order[k:k + 100]], f"windows/{k}")
    insert_batch(client, name, [ds.processed[i] for i in order[:100]], "windows/0")  # a replayed sink batch
    expected = {t: _rollup(client, name, t, source=True) for t in _ROLLUPS}
    total = sum(n for *_, n in expected["error_issue_counts_1d"])
    assert total == len(ds.processed)  # every event counted once, the replay included
    assert all(any(users for *_, users in expected[t]) for t in ("error_service_counts_1m", "error_service_counts_1h"))
    for t in _ROLLUPS:
        assert _rollup(client, name, t, source=False) == expected[t], t
    # what a page shows from them: the report's totals, users and per-service rows, the stream's sparklines
    q = IssueQueries(client, name)
    (a,) = [i for i in q.list_issues(IssueFilter(), "events", None, 25).issues if i.fingerprint == fp("A")]
    assert a.events_24h == 300 and a.events_14d == 340 and sum(a.series_24h) == 300 and sum(a.series_14d) == 340

    def check() -> None:
        for t in _ROLLUPS:
            assert _rollup(client, name, t, source=False) == expected[t], t

    _backfill_twice(client, settings, "0020_window_counts.sql", list(_ROLLUPS), check)


# What the stream's text search matched before migration 0021: the issues whose title or culprit hold the text, or
# that stored an event with it in its message in the last 14 days (every stored message scanned).
_SEARCH_BY_SCAN = (
    "SELECT fingerprint FROM {db}.v_error_groups WHERE positionCaseInsensitiveUTF8(title, {q:String}) > 0"
    " OR positionCaseInsensitiveUTF8(culprit, {q:String}) > 0 OR fingerprint IN (SELECT fingerprint FROM"
    " {db}.error_events WHERE timestamp >= now() - INTERVAL 14 DAY AND positionCaseInsensitiveUTF8(message, {q:String}) > 0)"
    " ORDER BY fingerprint")
_MESSAGES_FROM_EVENTS = ("SELECT fingerprint, message, max(timestamp) FROM {db}.error_events GROUP BY fingerprint, message"
                         " ORDER BY fingerprint, message")
_MESSAGES_FROM_TABLE = ("SELECT fingerprint, message, max(last_at) FROM {db}.error_issue_messages"
                        " GROUP BY fingerprint, message ORDER BY fingerprint, message")


def test_text_search_over_kept_messages_finds_what_the_scan_of_stored_events_found(
        db: tuple[Client, str], settings: Settings) -> None:
    client, name = db
    ds = build()
    for i, p in enumerate(ds.processed):  # messages beside the titles, with LIKE's own characters and non-ASCII text
        p["event"]["message"] = [f"Order {i} failed: 50% off_CODE", "Ünïcode Straße timeout", p["title"],
                                 "path C:\\tmp\\x not found"][i % 4]
    order = sorted(range(len(ds.processed)), key=lambda i: ds.processed[i]["event"]["timestamp"], reverse=True)
    for k in range(0, len(order), 100):  # the newest first: older events arrive late
        insert_batch(client, name, [ds.processed[i] for i in order[k:k + 100]], f"messages/{k}")
    insert_batch(client, name, [ds.processed[i] for i in order[:100]], "messages/0")  # a replayed sink batch
    expected = client.query(_MESSAGES_FROM_EVENTS.replace("{db}", name)).result_rows
    assert client.query(_MESSAGES_FROM_TABLE.replace("{db}", name)).result_rows == expected
    q = IssueQueries(client, name)
    searches = ["order 16 failed", "FAILED: 50", "50%", "0% off", "off_c", "off_x", "ÜNÏCODE", "ÜNÏCODE STRAẞE", "straße", "c:\\tmp\\x",
                "database timeout", "KeyError", "load_cart", "no such text"]

    def found() -> dict[str, list[str]]:
        return {s: sorted(i.fingerprint for i in q.list_issues(IssueFilter(q=s), "last_seen", None, 200).issues)
                for s in searches}

    by_scan = {s: [r[0] for r in client.query(_SEARCH_BY_SCAN.replace("{db}", name), parameters={"q": s}).result_rows]
               for s in searches}
    assert by_scan["FAILED: 50"] and by_scan["ÜNÏCODE"] and by_scan["off_c"] and by_scan["c:\\tmp\\x"] and not by_scan["off_x"]
    assert found() == by_scan

    def check() -> None:
        assert client.query(_MESSAGES_FROM_TABLE.replace("{db}", name)).result_rows == expected
        assert found() == by_scan

    _backfill_twice(client, settings, "0021_issue_messages.sql", ["error_issue_messages"], check)


# What the issue page read before migration 0022: the first and last release and the latest event among the stored
# events of the issue, ties at one time going to the event id.
_ENDS_FROM_EVENTS = (
    "SELECT fingerprint, argMin(toString(release), (timestamp, event_id)), argMax(toString(release), (timestamp, event_id)),"
    " toString(argMax(event_id, (timestamp, event_id))) FROM {db}.error_events GROUP BY fingerprint ORDER BY fingerprint")
_ENDS_FROM_TABLE = (
    "SELECT fingerprint, argMinMerge(first_release), argMaxMerge(last_release), toString(argMaxMerge(latest_event))"
    " FROM {db}.error_issue_event_ends GROUP BY fingerprint ORDER BY fingerprint")


def test_each_issues_first_and_last_release_and_latest_event_are_kept_for_new_late_and_backfilled_events(
        db: tuple[Client, str], settings: Settings) -> None:
    client, name = db
    ds = build()
    latest = max(range(len(ds.processed)), key=lambda i: ds.processed[i]["event"]["timestamp"])
    earliest = min(range(len(ds.processed)), key=lambda i: ds.processed[i]["event"]["timestamp"])
    ds.processed[latest]["event"]["release"] = "9.9.9"
    ds.processed[earliest]["event"]["release"] = "0.0.1"
    # the latest event arrives first and the earliest last: late events land in cells written before
    order = [latest, *(i for i in range(len(ds.processed)) if i not in (latest, earliest)), earliest]
    for k in range(0, len(order), 100):
        insert_batch(client, name, [ds.processed[i] for i in order[k:k + 100]], f"ends/{k}")
    insert_batch(client, name, [ds.processed[i] for i in order[:100]], "ends/0")  # a replayed sink batch
    expected = client.query(_ENDS_FROM_EVENTS.replace("{db}", name)).result_rows
    assert len(expected) == len({p["fingerprint"] for p in ds.processed})
    ends = {r[0]: r[1:] for r in expected}
    assert ends[ds.processed[latest]["fingerprint"]][1:] == ("9.9.9", str(ds.processed[latest]["event"]["event_id"]))
    assert ends[ds.processed[earliest]["fingerprint"]][0] == "0.0.1"

    def check() -> None:
        assert client.query(_ENDS_FROM_TABLE.replace("{db}", name)).result_rows == expected
        q = IssueQueries(client, name)
        for fingerprint, (first, last, event_id) in ends.items():  # what the issue page shows
            detail = q.issue(fingerprint)
            assert detail is not None
            assert (detail.first_release, detail.last_release, detail.latest_event_id) == (first, last, event_id)

    check()
    _backfill_twice(client, settings, "0022_issue_event_ends.sql", ["error_issue_event_ends"], check)
