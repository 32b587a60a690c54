"""Load millions of generated error events into embedded ClickHouse and time the report.

    errstream bench clickhouse-load --events 10000000 --raw 3000000
    .venv/bin/python -m bench.clickhouse_load --events 10000000 --raw 3000000

What it does, on its own embedded ClickHouse (under ``ERRSTREAM_HOME/bench/<run>/``
on a free port; never the default 8123) and a fresh database:

1. ``errstream migrate`` into a bench database.
2. **True counts for every event**: ``--events`` rows are generated inside
   ClickHouse (``INSERT … SELECT FROM numbers()``) into ``error_occurrences_in``
   — one row per event, the worst case for the materialized views (the sink
   sends one row per batch × minute × issue) — so ``error_counts_1m`` and
   ``error_groups`` are filled by the real views. Issues follow a log-uniform
   (Zipf-like) skew: the hottest issue gets ~8 % of all events, the top 10
   ~28 %, and thousands of issues share the long tail.
3. **Raw events**: ``--raw`` rows with realistic payloads (a ~1.8 kB stack
   trace per issue with per-release line numbers, breadcrumbs with variable
   URLs, random event/trace/span ids, users, tags, request URLs) into
   ``error_events``. In production only a sample is stored; storing
   ``--raw`` of ``--events`` corresponds to a sampling rate of raw/events.
4. **The client insert path**: ``--client-events`` real processed events
   (synthetic exceptions run through the worker's ``EventProcessor``) are built
   into rows by ``sinks/clickhouse/rows.py`` and inserted with clickhouse-connect exactly
   as the sink does (batches with dedup tokens); rows/s are reported.
5. Times every report query and every view (best and worst of ``--repeat``
   runs) right after the load and again after ``OPTIMIZE … FINAL`` (the state
   background merges converge to), and reports ``system.parts`` sizes per
   table and per million events, and the server's peak memory (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from bench import harness
from errstream.local.clickhouse import LocalClickHouse
from errstream.local.process import free_port
from errstream_core.settings import Settings
from reports.report import ReportQueries, bucket_seconds, parse_since
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.rows import EVENT_COLUMNS, OCCURRENCE_COLUMNS, MinuteCounts, event_row

SERVICES = ["api", "checkout", "billing", "auth", "search", "inventory", "shipping", "notifications",
            "payments", "catalog", "gateway", "reports"]
TYPES = ["KeyError", "ValueError", "TypeError", "TimeoutError", "ConnectionError", "ZeroDivisionError",
         "AttributeError", "IndexError", "PermissionError", "RuntimeError"]

# Per-row expressions shared by both generators; {seed} keeps the two streams independent.
_COMMON = """
    toUInt32(floor(pow({groups}, (cityHash64(number, {seed}, 1) % 1000000) / 1000000.0))) - 1 AS g,
    toDateTime64({start} + (cityHash64(number, {seed}, 2) % {span}) + (cityHash64(number, {seed}, 3) % 1000) / 1000,
                 3, 'UTC') AS ts,
    arrayElement({services}, g % {n_services} + 1) AS service,
    if(cityHash64(number, {seed}, 4) % 20 = 0, 'staging', 'production') AS environment,
    lower(hex(MD5(toString(g)))) AS fingerprint,
    multiIf(g % 17 = 0, 'critical', g % 5 = 0, 'warning', 'error') AS level,
    arrayElement({types}, g % {n_types} + 1) AS exception_type,
    concat(exception_type, ': failure #', toString(g)) AS title,
    concat('app.', service, '.module', toString(g % 40), ' in handler_', toString(g % 23)) AS culprit,
    concat('1.', toString(cityHash64(number, {seed}, 5) % 4)) AS release,
    cityHash64(number, {seed}, 6) % 10 < 7 AS has_user,
    concat('user-', toString(cityHash64(number, {seed}, 7) % 200000)) AS user_key,
    if(has_user, cityHash64(user_key), 0) AS user_hash
"""

OCCURRENCES_SQL = """
INSERT INTO {db}.error_occurrences_in
    (minute, service, environment, fingerprint, level, events, stored, user_hashes,
     first_seen, last_seen, exception_type, title, culprit, releases, release)
SELECT toStartOfMinute(ts), service, environment, fingerprint, level, 1,
       cityHash64(number, 99) % 100 < if(g < 10, 5, 50), if(user_hash = 0, [], [user_hash]),
       ts, ts, exception_type, title, culprit, [release], release
FROM (SELECT number, {common} FROM numbers({offset}, {count}))
"""

EVENTS_SQL = """
INSERT INTO {db}.error_events ({columns})
SELECT
    generateUUIDv4(number) AS event_id, ts AS timestamp, ts + toIntervalMillisecond(150 + number % 200) AS received_at,
    service, environment, release, level, fingerprint, exception_type, title, culprit,
    concat(title, ' (order ', toString(cityHash64(number, 8) % 1000000), ')') AS message,
    concat('app.', service) AS logger, 'python' AS platform,
    concat(service, '-', toString(number % 8)) AS server_name,
    if(has_user, user_key, '') AS user_id, user_hash,
    map('region', arrayElement(['eu-west-1', 'us-east-1', 'ap-south-1'], number % 3 + 1),
        'http.status', arrayElement(['500', '502', '503'], g % 3 + 1)) AS tags,
    if(number % 2 = 0, concat(lower(hex(cityHash64(number, 9))), lower(hex(cityHash64(number, 10)))), '') AS trace_id,
    if(number % 2 = 0, lower(hex(cityHash64(number, 11))), '') AS span_id,
    '' AS correlation_id, 'POST' AS request_method,
    concat('https://', service, '.example.com/api/v1/orders/', toString(cityHash64(number, 12) % 1000000)) AS request_url,
    arrayMap(i -> concat('app.', service, '.module', toString((g + i) % 40), '.handler_', toString((g * 7 + i) % 23)),
             range(4)) AS in_app_frames,
    concat('[{{"type":"', exception_type, '","value":"', message, '","module":"app.', service,
           '","mechanism":{{"type":"generic","handled":false}},"stacktrace":[',
           arrayStringConcat(arrayMap(i -> concat(
               '{{"filename":"app/', service, '/module', toString((g + i) % 40), '.py","abs_path":"/srv/app/',
               service, '/module', toString((g + i) % 40), '.py","module":"app.', service, '.module',
               toString((g + i) % 40), '","function":"handler_', toString((g * 7 + i) % 23), '","lineno":',
               toString(10 + (g * 13 + i * 7) % 400 + toUInt32(substring(release, 3)) * 3),
               ',"in_app":', if(i < 10, 'true', 'false'),
               ',"context_line":"    result = handler_', toString(i), '(request, payload, retries=3)"}}'),
             range(14)), ','), ']}}]') AS exceptions,
    concat('[', arrayStringConcat(arrayMap(i -> concat(
               '{{"timestamp":"', toString(ts - toIntervalSecond(5 - i)), '","type":"http","category":"httpx",',
               '"message":"GET https://inventory.example.com/items/', toString(cityHash64(number, 13 + i) % 100000),
               '","level":"info","data":{{"status_code":200}}}}'), range(5)), ','), ']') AS breadcrumbs,
    '{{"runtime":{{"name":"CPython","version":"3.11.9"}},"os":{{"name":"Linux"}}}}' AS context,
    toFloat32(if(g < 10, 0.05, 0.5)) AS sample_rate,
    '' AS original_timestamp, '' AS grouping_rules,  -- in EVENT_COLUMNS order (sinks/clickhouse/rows.py)
    if(number % 3 = 0, 'page=2&sort=desc', '') AS request_query_string,
    map('user-agent', 'python-httpx/0.27', 'accept', 'application/json') AS request_headers,
    '' AS user_username, '' AS user_ip, '' AS recovery, '' AS resources
FROM (SELECT number, {common} FROM numbers({offset}, {count}))
"""


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def generate(client: Client, db: str, sql: str, total: int, chunk: int, seed: int, now: datetime,
             days: int, groups: int, label: str, progress: Callable[[str], None] = print) -> float:
    """Insert ``total`` generated rows in chunks (bounded memory); returns seconds."""
    start = int((now - timedelta(days=days)).timestamp())
    common = _COMMON.format(
        groups=groups, seed=seed, start=start, span=days * 86400, services=SERVICES, n_services=len(SERVICES),
        types=TYPES, n_types=len(TYPES),
    )
    elapsed = 0.0
    for offset in range(0, total, chunk):
        count = min(chunk, total - offset)
        q = sql.format(db=db, common=common, offset=offset, count=count, columns=", ".join(EVENT_COLUMNS))
        dt, _ = _timed(partial(client.command, q, settings={"max_insert_threads": 2}))
        elapsed += dt
        progress(f"  {label}: {offset + count:>11,} rows  {(offset + count) / elapsed:>12,.0f} rows/s")
    return elapsed


def client_insert_path(client: Client, db: str, n: int, batch: int) -> dict[str, float]:
    """Real processed events → sinks/clickhouse/rows.py → clickhouse-connect inserts, as the sink does."""

    from producers.synthetic import synthetic_stream
    from schemas.fast import encode
    from stream_processors.event_processor import EventProcessor

    proc = EventProcessor()
    t0 = time.perf_counter()
    records = []
    for e in synthetic_stream(n, seed=11, start=datetime.now(UTC) - timedelta(hours=2), spread=timedelta(hours=2)):
        out = proc.process(e.model_dump_json().encode())
        assert out.processed is not None
        records.append(orjson.loads(encode(out.processed)))  # what the sink reads off the processed topic
    gen = time.perf_counter() - t0
    build = insert_events = insert_counts = 0.0
    occurrence_rows = 0
    for k in range(0, n, batch):
        part = records[k:k + batch]
        t = time.perf_counter()
        rows = [event_row(r) for r in part]
        counts = MinuteCounts()
        for r in part:
            counts.add(r)
        occ = counts.rows()
        build += time.perf_counter() - t
        occurrence_rows += len(occ)
        token = f"bench/0/{k}-{k + len(part) - 1}"
        t = time.perf_counter()
        client.insert(f"{db}.error_events", rows, column_names=EVENT_COLUMNS,
                      settings={"insert_deduplication_token": token + "/events",
                                "deduplicate_blocks_in_dependent_materialized_views": 1})
        insert_events += time.perf_counter() - t
        t = time.perf_counter()
        client.insert(f"{db}.error_occurrences_in", occ, column_names=OCCURRENCE_COLUMNS,
                      settings={"insert_deduplication_token": token + "/counts",
                                "deduplicate_blocks_in_dependent_materialized_views": 1})
        insert_counts += time.perf_counter() - t
    return {
        "events": n, "batch": batch, "python_generation_s": round(gen, 2),
        "row_building_rows_per_s": round(n / build), "error_events_insert_rows_per_s": round(n / insert_events),
        "occurrence_rows": occurrence_rows, "occurrences_insert_s": round(insert_counts, 3),
        "end_to_end_events_per_s": round(n / (build + insert_events + insert_counts)),
    }


def time_queries(client: Client, db: str, repeat: int,
                 progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    now = datetime.now(UTC).replace(microsecond=0)
    results = []

    def run(name: str, fn: Callable[[], Any]) -> None:
        times = []
        for _ in range(repeat):
            dt, _ = _timed(fn)
            times.append(dt)
        results.append({"query": name, "best_s": round(min(times), 3), "worst_s": round(max(times), 3),
                        "median_s": round(statistics.median(times), 3)})
        progress(f"  {name:<42} best {min(times):7.3f}s  worst {max(times):7.3f}s")

    for since, service in (("1h", None), ("24h", None), ("7d", None), ("24h", "checkout")):
        window = parse_since(since)
        q = ReportQueries(client, db, (now - window).replace(second=0), now, service)
        tag = f"report {since}{' ' + service if service else ''}"
        run(f"{tag}: overview", q.overview)
        run(f"{tag}: top issues", partial(q.top_issues, 10))
        run(f"{tag}: timeline", partial(q.timeline, bucket_seconds(window)))
        run(f"{tag}: by service", q.by_service)
        run(f"{tag}: spikes", q.spikes)
        run(f"{tag}: chains", q.chains)
    views = [r[0] for r in client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE 'v\\_%' ORDER BY name",
        parameters={"db": db}).result_rows]
    for v in views:
        run(f"view {v} (first 100 rows)", partial(client.query, f"SELECT * FROM {db}.{v} LIMIT 100"))
    return results


def storage(client: Client, db: str) -> list[dict[str, Any]]:
    return list(client.query(
        "SELECT table, sum(rows) AS rows, count() AS parts, sum(bytes_on_disk) AS bytes_on_disk,"
        " sum(data_uncompressed_bytes) AS uncompressed FROM system.parts"
        " WHERE database = {db:String} AND active GROUP BY table ORDER BY bytes_on_disk DESC",
        parameters={"db": db}).named_results())


def column_sizes(client: Client, db: str, table: str) -> list[dict[str, Any]]:
    return list(client.query(
        "SELECT column, sum(column_data_compressed_bytes) AS compressed, sum(column_data_uncompressed_bytes) AS raw"
        " FROM system.parts_columns WHERE database = {db:String} AND table = {t:String} AND active"
        " GROUP BY column ORDER BY compressed DESC LIMIT 12",
        parameters={"db": db, "t": table}).named_results())


def run_clickhouse_load(settings: Settings, events: int = 10_000_000, raw: int = 3_000_000,
                        client_events: int = 100_000, client_batch: int = 50_000, groups: int = 5_000, days: int = 7,
                        chunk: int = 1_000_000, repeat: int = 3, url: str | None = None, keep: bool = False,
                        progress: Callable[[str], None] = print) -> dict[str, Any]:
    """The figures of one load (see the module docstring); the embedded server's store is under
    ``ERRSTREAM_HOME/bench/<run>/`` and removed afterwards unless ``keep``."""
    run = harness.new_run("chload")
    home = harness.run_dir(settings, run)
    local = None
    if url is None:
        local = LocalClickHouse(state_dir=home, port=free_port())
        local.up()
        url = local.client_url  # with the read-write login `up` created
    progress(f"ClickHouse at {url.rsplit('@', 1)[-1]} (store {home})")  # never the login
    s = Settings(clickhouse_url=url, clickhouse_database=f"errstream_{run}")
    db = s.clickhouse_database
    try:
        client = connect(s, send_receive_timeout=3600)
        migrate(s, client)
        now = datetime.now(UTC)
        progress(f"generating {events:,} counted events over {days} days, {groups:,} issues")
        occ_s = generate(client, db, OCCURRENCES_SQL, events, chunk, 1, now, days, groups,
                         "error_occurrences_in → views", progress)
        progress(f"generating {raw:,} raw events")
        raw_s = generate(client, db, EVENTS_SQL, raw, min(chunk, 500_000), 2, now, days, groups, "error_events",
                         progress) if raw else 0.0
        before = storage(client, db)
        progress(f"client insert path: {client_events:,} processed events")
        client_path = client_insert_path(client, db, client_events, client_batch) if client_events else {}
        progress(f"  {client_path}")
        progress("timing queries")
        timings = time_queries(client, db, repeat, progress)
        progress("merging (OPTIMIZE FINAL: the steady state background merges reach)")
        for table in ("error_counts_1m", "error_counts_1h", "error_groups", "error_events"):
            dt, _ = _timed(partial(client.command, f"OPTIMIZE TABLE {db}.{table} FINAL"))
            progress(f"  {table}: {dt:.1f}s")
        after = storage(client, db)
        progress("timing queries again after the merges")
        timings_merged = time_queries(client, db, repeat, progress)
        result: dict[str, Any] = {
            "insert_sql_generated": {
                "occurrences_rows_per_s": round(events / occ_s) if occ_s else None, "occurrences_s": round(occ_s, 1),
                "raw_events_rows_per_s": round(raw / raw_s) if raw_s else None, "raw_events_s": round(raw_s, 1),
            },
            "insert_client_path": client_path,
            "queries": timings,
            "queries_after_merge": timings_merged,
            "storage_before_optimize": before,
            "storage_after_optimize": after,
            "error_events_columns": column_sizes(client, db, "error_events"),
            "server_peak_rss_mb": harness.peak_rss_mb(local.process.pid() if local else None),
        }
        raw_table = next((t for t in after if t["table"] == "error_events"), None)
        total_bytes = sum(t["bytes_on_disk"] for t in after)
        agg_bytes = sum(t["bytes_on_disk"] for t in after if t["table"] != "error_events")
        result["summary"] = {
            "raw_error_events_mb_per_million_rows": round(raw_table["bytes_on_disk"] / raw_table["rows"], 1)
            if raw_table and raw_table["rows"] else None,
            "aggregates_mb_per_million_events": round(agg_bytes / events, 2) if events else None,
            "all_tables_mb_per_million_events": round(total_bytes / events, 1) if events else None,
            "slowest_query_s": max(t["worst_s"] for t in timings),
            "slowest_query_after_merge_s": max(t["worst_s"] for t in timings_merged),
        }
        if not keep:
            client.command(f"DROP DATABASE IF EXISTS {db}")
        return result
    finally:
        if local is not None:
            local.down()
            if not keep:
                shutil.rmtree(home, ignore_errors=True)


def report_lines(result: dict[str, Any]) -> list[str]:
    lines = [json.dumps(result["summary"], indent=2), "storage after OPTIMIZE:"]
    for t in result["storage_after_optimize"]:
        lines.append(f"  {t['table']:<20} {t['rows']:>12,} rows {t['bytes_on_disk'] / 1e6:>10.1f} MB on disk "
                     f"({t['uncompressed'] / 1e6:,.0f} MB raw)")
    if result["insert_client_path"]:
        c = result["insert_client_path"]
        lines.append(f"client insert path: {c['end_to_end_events_per_s']:,} events/s end to end "
                     f"({c['error_events_insert_rows_per_s']:,} error_events rows/s)")
    lines.append(f"server peak RSS: {result['server_peak_rss_mb']} MB")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000, help="events counted (error_occurrences_in)")
    ap.add_argument("--raw", type=int, default=3_000_000, help="raw events stored (error_events)")
    ap.add_argument("--client-events", type=int, default=100_000, help="events through clickhouse-connect")
    ap.add_argument("--client-batch", type=int, default=50_000)
    ap.add_argument("--groups", type=int, default=5_000, help="distinct issues")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--url", help="an existing ClickHouse (default: start an embedded one on a free port)")
    ap.add_argument("--keep", action="store_true", help="keep the database and the embedded store afterwards")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    settings = Settings()
    params = {k: v for k, v in vars(args).items() if k not in ("json", "keep")}
    result = run_clickhouse_load(settings, args.events, args.raw, args.client_events, args.client_batch,
                                 args.groups, args.days, args.chunk, args.repeat, args.url, args.keep)
    harness.emit(settings, "clickhouse-load", params, result, report_lines(result), args.json)


if __name__ == "__main__":
    main()
