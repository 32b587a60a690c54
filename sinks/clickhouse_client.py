"""clickhouse-connect clients built from settings.

The sinks and the report talk to ClickHouse only through clickhouse-connect's
HTTP client, against a production server or the embedded endpoint alike.
"""

from __future__ import annotations

from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from errstream.settings import Settings


def connect(settings: Settings, *, database: str | None = None, **extra: Any) -> Client:
    kw = settings.clickhouse_client_kwargs()
    if database is not None:
        kw["database"] = database
    return clickhouse_connect.get_client(**kw, **extra)
