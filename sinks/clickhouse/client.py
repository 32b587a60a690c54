"""clickhouse-connect clients built from settings.

The sinks and the report talk to ClickHouse only through clickhouse-connect's
HTTP client, against a production server or the embedded endpoint alike.
"""

from __future__ import annotations

from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from errstream_core.settings import Settings
from sinks.clickhouse.cluster_ddl import client_settings


def connect(settings: Settings, *, database: str | None = None, **extra: Any) -> Client:
    """A client safe to share between threads.

    Our statements carry no session state (no SET, no temporary tables), and a
    session id would make clickhouse-connect refuse concurrent queries — the sink
    loads its batch log from the rebalance callback while a flush inserts.
    """
    kw = settings.clickhouse_client_kwargs()
    kw.setdefault("autogenerate_session_id", False)
    if database is not None:
        kw["database"] = database
    if cluster := client_settings(settings):  # cluster mode: synchronous inserts through Distributed tables
        kw["settings"] = {**cluster, **kw.get("settings", {})}
    kw.update(extra)  # explicit arguments win over the defaults above
    return clickhouse_connect.get_client(**kw)
