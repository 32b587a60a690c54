-- Counts kept at insert for the web app's windows (issue 26: every page and API call at p95 ≤ 300 ms with 10 M
-- counted events). error_counts_1m/1h hold one row per (minute or hour, service, issue, level, environment):
-- a 24-hour question reads every busy issue's cells, and the overview merged the user-count state of every
-- issue and hour in its window (its cost grew with issues × hours × environments, and with events as more
-- cells fill). The tables below hold the same true counts rolled up further, each ordered by its time first,
-- so a window reads a bounded number of rows whatever the event count:
--
-- * error_service_counts_1m / _1h: per (minute or hour, service, level), with the users' states: the
--   overview's totals, users and per-service rows, its timeline and the per-minute charts, the live pulse;
-- * error_issue_counts_1h: per (hour, service, issue, level), events and stored only (no user states):
--   the stream's "by trend" sort, the 24-hour sparklines, the overview's top issues and issue counts;
-- * error_issue_counts_1d: per (day, issue), events only: the 14-day sparklines.
--
-- Each is fed by a materialized view on error_occurrences_in, the sink's deduplicated insert (a replayed batch
-- counts once, as in error_counts_1m), and filled once from the counts tables for the events counted before
-- this migration (an empty table only: a repeated run adds nothing twice). Migrate before starting the sinks, as
-- for 0015: a batch inserted between a table's backfill and its view would be missing from it.

CREATE TABLE IF NOT EXISTS {db}.error_service_counts_1m
(
    minute  DateTime('UTC'),
    service LowCardinality(String),
    level   Enum8('debug' = 1, 'info' = 2, 'warning' = 3, 'error' = 4, 'critical' = 5),
    events  SimpleAggregateFunction(sum, UInt64),
    stored  SimpleAggregateFunction(sum, UInt64),
    users   AggregateFunction(uniqCombined(12), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, service, level)
TTL minute + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO {db}.error_service_counts_1m (minute, service, level, events, stored, users)
SELECT minute, service, level, sum(events), sum(stored), uniqCombinedMergeState(12)(users)
FROM {db}.error_counts_1m
WHERE (SELECT count() FROM {db}.error_service_counts_1m) = 0
GROUP BY minute, service, level;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_service_counts_1m_mv TO {db}.error_service_counts_1m AS
SELECT minute, service, level, sum(events) AS events, sum(stored) AS stored,
       uniqCombinedArrayState(12)(user_hashes) AS users
FROM {db}.error_occurrences_in
GROUP BY minute, service, level;

CREATE TABLE IF NOT EXISTS {db}.error_service_counts_1h
(
    hour    DateTime('UTC'),
    service LowCardinality(String),
    level   Enum8('debug' = 1, 'info' = 2, 'warning' = 3, 'error' = 4, 'critical' = 5),
    events  SimpleAggregateFunction(sum, UInt64),
    stored  SimpleAggregateFunction(sum, UInt64),
    users   AggregateFunction(uniqCombined(12), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, service, level)
TTL hour + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO {db}.error_service_counts_1h (hour, service, level, events, stored, users)
SELECT hour, service, level, sum(events), sum(stored), uniqCombinedMergeState(12)(users)
FROM {db}.error_counts_1h
WHERE (SELECT count() FROM {db}.error_service_counts_1h) = 0
GROUP BY hour, service, level;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_service_counts_1h_mv TO {db}.error_service_counts_1h AS
SELECT toStartOfHour(minute) AS hour, service, level, sum(events) AS events, sum(stored) AS stored,
       uniqCombinedArrayState(12)(user_hashes) AS users
FROM {db}.error_occurrences_in
GROUP BY hour, service, level;

CREATE TABLE IF NOT EXISTS {db}.error_issue_counts_1h
(
    hour        DateTime('UTC'),
    service     LowCardinality(String),
    fingerprint String,
    level       Enum8('debug' = 1, 'info' = 2, 'warning' = 3, 'error' = 4, 'critical' = 5),
    events      SimpleAggregateFunction(sum, UInt64),
    stored      SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, service, fingerprint, level)
TTL hour + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO {db}.error_issue_counts_1h (hour, service, fingerprint, level, events, stored)
SELECT hour, service, fingerprint, level, sum(events), sum(stored)
FROM {db}.error_counts_1h
WHERE (SELECT count() FROM {db}.error_issue_counts_1h) = 0
GROUP BY hour, service, fingerprint, level;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_issue_counts_1h_mv TO {db}.error_issue_counts_1h AS
SELECT toStartOfHour(minute) AS hour, service, fingerprint, level, sum(events) AS events, sum(stored) AS stored
FROM {db}.error_occurrences_in
GROUP BY hour, service, fingerprint, level;

CREATE TABLE IF NOT EXISTS {db}.error_issue_counts_1d
(
    day         Date,
    fingerprint String,
    events      SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, fingerprint)
TTL day + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO {db}.error_issue_counts_1d (day, fingerprint, events)
SELECT toDate(hour) AS d, fingerprint, sum(events)
FROM {db}.error_counts_1h
WHERE (SELECT count() FROM {db}.error_issue_counts_1d) = 0
GROUP BY d, fingerprint;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_issue_counts_1d_mv TO {db}.error_issue_counts_1d AS
SELECT toDate(minute) AS day, fingerprint, sum(events) AS events
FROM {db}.error_occurrences_in
GROUP BY day, fingerprint;
