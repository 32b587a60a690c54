-- True counts per hour, for windows of 6 hours and more (the report's long
-- windows, daily trends, period-over-period comparisons). Same facts as
-- error_counts_1m, fed by the same deduplicated insert, but up to 60x fewer
-- rows for busy issues: a 7-day question reads ~170 hourly cells per issue
-- instead of ~10,000 minute cells, and far fewer user-set states to merge.
CREATE TABLE IF NOT EXISTS {db}.error_counts_1h
(
    hour        DateTime('UTC'),
    service     LowCardinality(String),
    environment LowCardinality(String),
    fingerprint String,
    level       Enum8('debug' = 1, 'info' = 2, 'warning' = 3, 'error' = 4, 'critical' = 5),
    events      SimpleAggregateFunction(sum, UInt64),
    stored      SimpleAggregateFunction(sum, UInt64),
    users       AggregateFunction(uniqCombined(12), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (toStartOfDay(hour), service, fingerprint, level, environment, hour)
TTL hour + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_counts_1h_mv TO {db}.error_counts_1h AS
SELECT toStartOfHour(minute) AS hour, service, environment, fingerprint, level,
       sum(events) AS events, sum(stored) AS stored, uniqCombinedArrayState(12)(user_hashes) AS users
FROM {db}.error_occurrences_in
GROUP BY hour, service, environment, fingerprint, level
