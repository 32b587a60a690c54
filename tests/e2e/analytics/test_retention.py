"""Retention follows ERRSTREAM_EVENTS_TTL_DAYS, also when it changes after the schema exists."""

from __future__ import annotations

import uuid

from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.retention import ttl_days_in_force


def test_ttl_is_set_at_creation_and_follows_the_setting(clickhouse_url: str) -> None:
    db = f"errstream_r{uuid.uuid4().hex[:10]}"
    client: Client = connect(Settings(clickhouse_url=clickhouse_url))
    try:
        migrate(Settings(clickhouse_url=clickhouse_url, clickhouse_database=db, events_ttl_days=90), client)
        assert ttl_days_in_force(client, db, "error_events") == 90
        assert ttl_days_in_force(client, db, "error_counts_1m") == 400
        assert migrate(Settings(clickhouse_url=clickhouse_url, clickhouse_database=db, events_ttl_days=30), client) == []
        assert ttl_days_in_force(client, db, "error_events") == 30
        assert ttl_days_in_force(client, db, "error_tag_counts") == 30  # counts of stored events go with them
        assert ttl_days_in_force(client, db, "error_groups") == 400  # counts keep at least 400 days
        migrate(Settings(clickhouse_url=clickhouse_url, clickhouse_database=db, events_ttl_days=730), client)
        assert [ttl_days_in_force(client, db, t) for t in ("error_events", "error_counts_1m", "error_groups")] == [
            730, 730, 730]
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
        client.close()
