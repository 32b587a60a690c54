"""What the issue page reads from tables kept at insert: the title and the tag counts.

An issue's title is its first event's title, whatever order its events arrive in and however the parts merge
(titles carry the message, so the events of one fingerprint have several; error_groups kept anyLast(title),
and the issue's title changed between reloads: issue 26, item 5). Its top tag values come from
error_tag_counts, which must count what the events hold, including the events stored before it existed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
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
    client.command(f"TRUNCATE TABLE {name}.error_latest_events")
    for _ in range(2):
        client.command(f"ALTER TABLE {name}.schema_migrations DELETE WHERE name = '0018_issue_latest_event.sql'",
                       settings={"mutations_sync": 2})
        migrate(settings)
        assert client.query(_LATEST_FROM_TABLE.replace("{db}", name)).result_rows == expected
