-- Each issue's latest stored event, kept at insert: its exception chain (where the grouping components
-- come from). Similar issues compared the components of each candidate's latest stored event,
-- and finding those events scanned the key columns of every stored event of up to 50 issues (p95 342 ms at
-- 1 M counted events); now it is one look-up of a few rows per issue by the table's key. One partial row
-- per issue and insert block, folded by AggregatingMergeTree (readers finish the fold with GROUP BY and
-- argMaxMerge). It holds stored event content, so it expires with the stored events (the same TTL, on the
-- issue's latest stored event).
CREATE TABLE IF NOT EXISTS {db}.error_latest_events
(
    fingerprint String,
    last_at     SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    exceptions  AggregateFunction(argMax, String, Tuple(DateTime64(3, 'UTC'), UUID))
)
ENGINE = AggregatingMergeTree
ORDER BY fingerprint
TTL toDateTime(last_at) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- The events stored before this migration, once (an empty table only: a repeated run adds nothing twice).
INSERT INTO {db}.error_latest_events (fingerprint, last_at, exceptions)
SELECT fingerprint, max(timestamp), argMaxState(exceptions, (timestamp, event_id))
FROM {db}.error_events
WHERE (SELECT count() FROM {db}.error_latest_events) = 0
GROUP BY fingerprint;

-- From now on, from the sink's insert (a replayed batch changes nothing: the latest event stays the latest).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_latest_events_mv TO {db}.error_latest_events AS
SELECT fingerprint, max(timestamp) AS last_at, argMaxState(exceptions, (timestamp, event_id)) AS exceptions
FROM {db}.error_events
GROUP BY fingerprint;
