-- An issue's first and last release and its latest stored event, kept at insert (issue 26: the issue page found
-- them among every stored event of the issue, which grows with its events: 40 k rows for a busy issue with 500 k
-- stored events). One partial row per issue, day and insert block, folded by AggregatingMergeTree; readers merge
-- the states of the issue's days (at most the retention's days). Per day, so rows expire with the events they
-- describe (the same TTL: daily partitions of error_events), and the answer stays the one of the events still
-- stored. Ties at one time go to the event id, so the answer is the same however the parts merge.
CREATE TABLE IF NOT EXISTS {db}.error_issue_event_ends
(
    fingerprint   String,
    day           Date,
    first_release AggregateFunction(argMin, String, Tuple(DateTime64(3, 'UTC'), UUID)),
    last_release  AggregateFunction(argMax, String, Tuple(DateTime64(3, 'UTC'), UUID)),
    latest_event  AggregateFunction(argMax, UUID, Tuple(DateTime64(3, 'UTC'), UUID))
)
ENGINE = AggregatingMergeTree
ORDER BY (fingerprint, day)
TTL day + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- The events stored before this migration, once (an empty table only: a repeated run adds nothing twice).
INSERT INTO {db}.error_issue_event_ends (fingerprint, day, first_release, last_release, latest_event)
SELECT fingerprint, toDate(timestamp) AS d, argMinState(toString(release), (timestamp, event_id)),
       argMaxState(toString(release), (timestamp, event_id)), argMaxState(event_id, (timestamp, event_id))
FROM {db}.error_events
WHERE (SELECT count() FROM {db}.error_issue_event_ends) = 0
GROUP BY fingerprint, d;

-- From now on, from the sink's insert (a replayed batch changes nothing: the first stays the first, the last the last).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_issue_event_ends_mv TO {db}.error_issue_event_ends AS
SELECT fingerprint, toDate(timestamp) AS day, argMinState(toString(release), (timestamp, event_id)) AS first_release,
       argMaxState(toString(release), (timestamp, event_id)) AS last_release,
       argMaxState(event_id, (timestamp, event_id)) AS latest_event
FROM {db}.error_events
GROUP BY fingerprint, day;
