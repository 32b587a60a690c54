"""Thread pools for queries that run at once, one per kind of caller, each started on first use.

Independent queries of one request (the issue page's, the report's sections) are submitted together: a
ClickHouse server serves them in parallel, and even a serialised one (embedded chDB) overlaps their round
trips. A caller whose tasks wait on another pool's queries (a page's parts wait on the issue's) has a pool of
its own, so a busy pool never waits on itself.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache


@cache
def pool(name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix=name)
