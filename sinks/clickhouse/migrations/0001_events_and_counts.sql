-- Fingerprints are plain String (32 hex characters) in every table, as in
-- alerts and issue_status: joins need no casts and clients get text, not bytes.
-- Raw (sampled) events. ORDER BY follows the analysts' usual filters: a service,
-- then an issue, then time; ReplacingMergeTree on that key makes a replayed event
-- (same id, same timestamp) collapse into one row. Daily partitions let the TTL
-- drop whole parts instead of rewriting them and keep "last 24 h" scans to two
-- partitions. ZSTD on text and Delta on the sorted times: neighbours share an
-- issue, so they compress far better than with the default LZ4.
CREATE TABLE IF NOT EXISTS {db}.error_events
(
    event_id       UUID,
    timestamp      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at    DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    service        LowCardinality(String),
    environment    LowCardinality(String),
    release        LowCardinality(String),
    level          Enum8('debug' = 1, 'info' = 2, 'warning' = 3, 'error' = 4, 'critical' = 5),
    fingerprint    String CODEC(ZSTD(1)),
    exception_type LowCardinality(String),
    title          String CODEC(ZSTD(1)),
    culprit        String CODEC(ZSTD(1)),
    message        String CODEC(ZSTD(3)),
    logger         LowCardinality(String),
    platform       LowCardinality(String),
    server_name    LowCardinality(String),
    user_id        String CODEC(ZSTD(1)),
    user_hash      UInt64 CODEC(ZSTD(1)),
    tags           Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    trace_id       String CODEC(ZSTD(1)),
    span_id        String CODEC(ZSTD(1)),
    correlation_id String CODEC(ZSTD(1)),
    request_method LowCardinality(String),
    request_url    String CODEC(ZSTD(1)),
    in_app_frames  Array(String) CODEC(ZSTD(1)),
    exceptions     String CODEC(ZSTD(3)),
    breadcrumbs    String CODEC(ZSTD(3)),
    context        String CODEC(ZSTD(3)),
    sample_rate    Float32
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (service, fingerprint, timestamp, event_id)
TTL toDateTime(timestamp) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

-- One row per processed event (stored or not) arrives here, pre-aggregated per
-- sink batch; the Null engine keeps nothing, the views below keep the aggregates.
CREATE TABLE IF NOT EXISTS {db}.error_occurrences_in
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    environment LowCardinality(String),
    fingerprint String,
    level       Enum8('debug' = 1, 'info' = 2, 'warning' = 3, 'error' = 4, 'critical' = 5),
    events      UInt64,
    stored      UInt64,
    user_hashes Array(UInt64)
)
ENGINE = Null;

-- True per-minute counts (sampling and rate limits never reduce them).
-- ORDER BY starts with the hour: nearly every question is "in this window",
-- so a 24-hour query reads 24 hours of cells, not the whole month partition;
-- within an hour, rows sort by service and issue for the filtered questions.
CREATE TABLE IF NOT EXISTS {db}.error_counts_1m
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    environment LowCardinality(String),
    fingerprint String,
    level       Enum8('debug' = 1, 'info' = 2, 'warning' = 3, 'error' = 4, 'critical' = 5),
    events      SimpleAggregateFunction(sum, UInt64),
    stored      SimpleAggregateFunction(sum, UInt64),
    users       AggregateFunction(uniqCombined(12), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (toStartOfHour(minute), service, fingerprint, level, environment, minute)
TTL minute + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_counts_1m_mv TO {db}.error_counts_1m AS
SELECT minute, service, environment, fingerprint, level,
       sum(events) AS events, sum(stored) AS stored, uniqCombinedArrayState(12)(user_hashes) AS users
FROM {db}.error_occurrences_in
GROUP BY minute, service, environment, fingerprint, level;
