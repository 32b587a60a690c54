-- Tag counts per issue, pre-aggregated at insert: the issue page's "top values per tag" used to ARRAY JOIN
-- every stored event of the issue (the slowest of its queries, growing with the issue's stored events);
-- now it sums a few rows per (tag, value, day). Counted over stored events, as before (the page says so
-- when they are a sample). Per day, so rows expire with the events they count (the same TTL).
CREATE TABLE IF NOT EXISTS {db}.error_tag_counts
(
    fingerprint String,
    k           String,
    v           String,
    day         Date,
    n           UInt64
)
ENGINE = SummingMergeTree(n)
PARTITION BY toYYYYMM(day)
ORDER BY (fingerprint, k, v, day)
TTL day + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- The events stored before this migration, once (an empty table only: a repeated run adds nothing twice).
INSERT INTO {db}.error_tag_counts (fingerprint, k, v, day, n)
SELECT fingerprint, tk AS k, tv AS v, toDate(timestamp) AS d, count()
FROM {db}.error_events
ARRAY JOIN arrayConcat(['environment', 'release', 'server_name', 'service'],
                       arrayMap(x -> toString(x), mapKeys(tags))) AS tk,
           arrayConcat([toString(environment), toString(release), toString(server_name), toString(service)],
                       mapValues(tags)) AS tv
WHERE tv != '' AND (SELECT count() FROM {db}.error_tag_counts) = 0
GROUP BY fingerprint, tk, tv, d;

-- From now on, from the sink's insert (deduplicated with it: a replayed batch counts once).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_tag_counts_mv TO {db}.error_tag_counts AS
SELECT fingerprint, tk AS k, tv AS v, toDate(timestamp) AS day, count() AS n
FROM {db}.error_events
ARRAY JOIN arrayConcat(['environment', 'release', 'server_name', 'service'],
                       arrayMap(x -> toString(x), mapKeys(tags))) AS tk,
           arrayConcat([toString(environment), toString(release), toString(server_name), toString(service)],
                       mapValues(tags)) AS tv
WHERE tv != ''
GROUP BY fingerprint, k, v, day;
