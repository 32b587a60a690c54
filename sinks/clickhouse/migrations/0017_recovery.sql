-- Recovery: exact counts of failure episodes per minute, issue, service and recovery method,
-- with the automatic recovery times (first failure to successful recovery) of the episodes
-- that recovered. Fed like error_occurrences_in: the sink aggregates every processed event
-- that carries a `recovery` object (stored or sampled away) into one row per
-- (minute, service, environment, fingerprint, method) of its batch and inserts them into a
-- Null table with the batch's insert_deduplication_token, so a replayed batch is dropped here
-- exactly as in error_counts_1m. Events without `recovery` write nothing here.
CREATE TABLE IF NOT EXISTS {db}.recovery_occurrences_in
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    environment LowCardinality(String),
    fingerprint String,
    method      LowCardinality(String),
    episodes    UInt64,
    attempted   UInt64,
    successful  UInt64,
    attempts    UInt64,
    durations_ms Array(UInt32)
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS {db}.recovery_counts_1m
(
    minute          DateTime('UTC'),
    service         LowCardinality(String),
    environment     LowCardinality(String),
    fingerprint     String,
    method          LowCardinality(String),
    episodes        SimpleAggregateFunction(sum, UInt64),
    attempted       SimpleAggregateFunction(sum, UInt64),
    successful      SimpleAggregateFunction(sum, UInt64),
    attempts        SimpleAggregateFunction(sum, UInt64),
    recovery_ms_sum SimpleAggregateFunction(sum, UInt64),
    recovery_ms_n   SimpleAggregateFunction(sum, UInt64),
    recovery_ms     AggregateFunction(quantiles(0.5, 0.95), UInt32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (toStartOfHour(minute), service, fingerprint, method, environment, minute)
TTL minute + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.recovery_counts_1m_mv TO {db}.recovery_counts_1m AS
SELECT minute, service, environment, fingerprint, method,
       sum(episodes)                                  AS episodes,
       sum(attempted)                                 AS attempted,
       sum(successful)                                AS successful,
       sum(attempts)                                  AS attempts,
       sum(arraySum(durations_ms))                    AS recovery_ms_sum,
       sum(length(durations_ms))                      AS recovery_ms_n,
       quantilesArrayState(0.5, 0.95)(durations_ms)   AS recovery_ms
FROM {db}.recovery_occurrences_in
GROUP BY minute, service, environment, fingerprint, method;

-- The raw event keeps its recovery and its resource snapshot (JSON; '' when absent) for the event page.
ALTER TABLE {db}.error_events
    ADD COLUMN IF NOT EXISTS recovery  String DEFAULT '',
    ADD COLUMN IF NOT EXISTS resources String DEFAULT '';

-- Per service and recovery method over the last 24 hours: how often recovery was tried, how
-- often it worked, and how long automatic recovery took (milliseconds).
CREATE OR REPLACE VIEW {db}.v_recovery_by_method AS
SELECT
    service,
    method,
    sum(episodes)   AS episodes,
    sum(attempted)  AS attempted,
    sum(successful) AS successful,
    if(attempted = 0, NULL, round(successful * 100 / attempted, 1)) AS success_rate_pct,
    if(sum(recovery_ms_n) = 0, NULL, round(sum(recovery_ms_sum) / sum(recovery_ms_n), 1)) AS avg_recovery_ms,
    if(sum(recovery_ms_n) = 0, NULL, quantilesMerge(0.5, 0.95)(recovery_ms)[1]) AS median_recovery_ms,
    if(sum(recovery_ms_n) = 0, NULL, quantilesMerge(0.5, 0.95)(recovery_ms)[2]) AS p95_recovery_ms
FROM {db}.recovery_counts_1m
WHERE minute >= now() - INTERVAL 24 HOUR
GROUP BY service, method
ORDER BY attempted DESC;

-- Per issue over the last 24 hours: the share of its failure episodes the application absorbed.
CREATE OR REPLACE VIEW {db}.v_recovery_by_issue AS
SELECT
    fingerprint,
    groupUniqArray(toString(service)) AS services,
    groupUniqArray(toString(method))  AS methods,
    sum(episodes)   AS episodes,
    sum(attempted)  AS attempted,
    sum(successful) AS successful,
    if(attempted = 0, NULL, round(successful * 100 / attempted, 1)) AS success_rate_pct,
    if(sum(recovery_ms_n) = 0, NULL, round(sum(recovery_ms_sum) / sum(recovery_ms_n), 1)) AS avg_recovery_ms
FROM {db}.recovery_counts_1m
WHERE minute >= now() - INTERVAL 24 HOUR
GROUP BY fingerprint
ORDER BY attempted DESC;

-- Automatic recovery (the application's own: first failure to successful recovery, from the
-- events' recovery.duration_ms) beside manual recovery (an issue's first event, or its reopening,
-- to its resolution by a person: v_resolution_times) and auto-resolution (the same span, resolved
-- by errstream because the issue went quiet), last 30 days, in seconds. One row per kind that has
-- any (the automatic row always).
CREATE OR REPLACE VIEW {db}.v_recovery_times AS
SELECT
    'automatic' AS kind,
    toUInt64(sum(recovery_ms_n)) AS recoveries,
    if(recoveries = 0, NULL, round(sum(recovery_ms_sum) / recoveries / 1000, 3)) AS avg_seconds,
    if(recoveries = 0, NULL, round(quantilesMerge(0.5, 0.95)(recovery_ms)[1] / 1000, 3)) AS median_seconds,
    if(recoveries = 0, NULL, round(quantilesMerge(0.5, 0.95)(recovery_ms)[2] / 1000, 3)) AS p95_seconds
FROM {db}.recovery_counts_1m
WHERE minute >= now() - INTERVAL 30 DAY
UNION ALL
SELECT
    if(a.fingerprint = '', 'manual', 'auto_resolved') AS kind,
    toUInt64(count()) AS recoveries,
    if(recoveries = 0, NULL, round(avg(r.seconds_to_resolve), 3)) AS avg_seconds,
    if(recoveries = 0, NULL, round(toFloat64(quantileExact(0.5)(r.seconds_to_resolve)), 3)) AS median_seconds,
    if(recoveries = 0, NULL, round(toFloat64(quantileExact(0.95)(r.seconds_to_resolve)), 3)) AS p95_seconds
FROM {db}.v_resolution_times AS r
LEFT JOIN
(
    SELECT fingerprint, changed_at FROM {db}.issue_status_history FINAL
    WHERE status = 'resolved' AND changed_by = 'errstream:auto-resolve'
) AS a ON a.fingerprint = r.fingerprint AND a.changed_at = r.resolved_at
WHERE r.resolved_at >= now() - INTERVAL 30 DAY
GROUP BY kind
