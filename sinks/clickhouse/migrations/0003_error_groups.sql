-- Issues (error groups), maintained incrementally from the same insert that
-- feeds error_counts_1m. error_occurrences_in carries every processed event —
-- stored or sampled away — so it, not error_events, is the only source that
-- makes group counts true counts and gives a title to an issue whose every
-- event was sampled away. Each sink batch adds one partial row per fingerprint;
-- AggregatingMergeTree folds them into one row per fingerprint in the
-- background, and readers finish the fold with GROUP BY (see v_error_groups).
-- Because the view hangs off the sink's deduplicated insert
-- (insert_deduplication_token + deduplicate_blocks_in_dependent_materialized_views),
-- a replayed batch is dropped here exactly as in error_counts_1m.

-- Per-cell facts the groups need; DEFAULTs keep older writers valid.
ALTER TABLE {db}.error_occurrences_in
    ADD COLUMN IF NOT EXISTS first_seen     DateTime64(3, 'UTC') DEFAULT minute,
    ADD COLUMN IF NOT EXISTS last_seen      DateTime64(3, 'UTC') DEFAULT minute,
    ADD COLUMN IF NOT EXISTS exception_type String DEFAULT '',
    ADD COLUMN IF NOT EXISTS title          String DEFAULT '',
    ADD COLUMN IF NOT EXISTS culprit        String DEFAULT '',
    ADD COLUMN IF NOT EXISTS releases       Array(String) DEFAULT [];

CREATE TABLE IF NOT EXISTS {db}.error_groups
(
    fingerprint    String,
    exception_type SimpleAggregateFunction(anyLast, String),
    title          SimpleAggregateFunction(anyLast, String),
    culprit        SimpleAggregateFunction(anyLast, String),
    first_seen     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen      SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    events         SimpleAggregateFunction(sum, UInt64),
    stored         SimpleAggregateFunction(sum, UInt64),
    users          AggregateFunction(uniqCombined(12), UInt64),
    worst_level    SimpleAggregateFunction(max, Enum8('debug' = 1, 'info' = 2, 'warning' = 3, 'error' = 4, 'critical' = 5)),
    services       SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    environments   SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    releases       SimpleAggregateFunction(groupUniqArrayArray, Array(String))
)
ENGINE = AggregatingMergeTree
ORDER BY fingerprint
TTL toDateTime(last_seen) + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_groups_mv TO {db}.error_groups AS
SELECT fingerprint,
       anyLast(exception_type)            AS exception_type,
       anyLast(title)                     AS title,
       anyLast(culprit)                   AS culprit,
       min(first_seen)                    AS first_seen,
       max(last_seen)                     AS last_seen,
       sum(events)                        AS events,
       sum(stored)                        AS stored,
       uniqCombinedArrayState(12)(user_hashes)        AS users,
       max(level)                         AS worst_level,
       groupUniqArray(toString(service))  AS services,
       groupUniqArray(toString(environment)) AS environments,
       groupUniqArrayArray(releases)      AS releases
FROM {db}.error_occurrences_in
GROUP BY fingerprint;

-- Point look-ups analysts do all the time: one event, one trace, one user.
ALTER TABLE {db}.error_events ADD INDEX IF NOT EXISTS idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE {db}.error_events ADD INDEX IF NOT EXISTS idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE {db}.error_events ADD INDEX IF NOT EXISTS idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4
