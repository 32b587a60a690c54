-- Release health: sessions (for servers: requests) per minute, the denominator of error rates.
-- The sessions consumer of `errstream notify` inserts SessionAggregates into the Null table with a
-- deduplication token per batch; the materialized view folds them into per-minute states. Errored and
-- crashed sessions are counts from aggregates plus distinct session hashes from per-session updates
-- (one session may send several), and users are distinct hashes, so crash-free users are exact for
-- small sets (uniqCombined).
CREATE TABLE IF NOT EXISTS {db}.session_aggregates_in
(
    minute                 DateTime('UTC'),
    service                LowCardinality(String),
    environment            LowCardinality(String),
    release                LowCardinality(String),
    started                UInt64,
    errored                UInt64,
    crashed                UInt64,
    abnormal               UInt64,
    errored_session_hashes Array(UInt64),
    crashed_session_hashes Array(UInt64),
    user_hashes            Array(UInt64),
    crashed_user_hashes    Array(UInt64)
)
ENGINE = Null;

CREATE TABLE IF NOT EXISTS {db}.session_counts_1m
(
    minute           DateTime('UTC'),
    service          LowCardinality(String),
    environment      LowCardinality(String),
    release          LowCardinality(String),
    started          SimpleAggregateFunction(sum, UInt64),
    errored          SimpleAggregateFunction(sum, UInt64),
    crashed          SimpleAggregateFunction(sum, UInt64),
    abnormal         SimpleAggregateFunction(sum, UInt64),
    errored_sessions AggregateFunction(uniqCombined(12), UInt64),
    crashed_sessions AggregateFunction(uniqCombined(12), UInt64),
    users            AggregateFunction(uniqCombined(12), UInt64),
    crashed_users    AggregateFunction(uniqCombined(12), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (service, environment, release, minute)
TTL minute + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.session_counts_1m_mv TO {db}.session_counts_1m AS
SELECT minute, service, environment, release,
       sum(started) AS started, sum(errored) AS errored, sum(crashed) AS crashed, sum(abnormal) AS abnormal,
       uniqCombinedArrayState(12)(errored_session_hashes) AS errored_sessions,
       uniqCombinedArrayState(12)(crashed_session_hashes) AS crashed_sessions,
       uniqCombinedArrayState(12)(user_hashes) AS users,
       uniqCombinedArrayState(12)(crashed_user_hashes) AS crashed_users
FROM {db}.session_aggregates_in
GROUP BY minute, service, environment, release;

-- Per service, environment, release and hour: sessions (or requests), errored and crashed ones, and
-- crash-free rates. errored includes crashed. NULL rates where nothing started.
CREATE OR REPLACE VIEW {db}.v_release_health AS
SELECT
    toStartOfHour(minute) AS hour, service, environment, release,
    sum(started) AS sessions,
    least(sum(errored) + uniqCombinedMerge(12)(errored_sessions), sessions) AS errored_sessions,
    least(sum(crashed) + uniqCombinedMerge(12)(crashed_sessions), sessions) AS crashed_sessions,
    uniqCombinedMerge(12)(users) AS users,
    uniqCombinedMerge(12)(crashed_users) AS crashed_users,
    if(sessions = 0, NULL, round(100 * (1 - crashed_sessions / sessions), 3)) AS crash_free_sessions_pct,
    if(users = 0, NULL, round(100 * (1 - crashed_users / users), 3)) AS crash_free_users_pct
FROM {db}.session_counts_1m
GROUP BY hour, service, environment, release;

-- True error counts per release (hourly), the numerator of release health: the sink's occurrence rows
-- carry the release from this migration on (earlier rows count under release '').
ALTER TABLE {db}.error_occurrences_in ADD COLUMN IF NOT EXISTS release LowCardinality(String) DEFAULT '';

CREATE TABLE IF NOT EXISTS {db}.error_counts_release_1h
(
    hour        DateTime('UTC'),
    service     LowCardinality(String),
    environment LowCardinality(String),
    release     LowCardinality(String),
    events      SimpleAggregateFunction(sum, UInt64),
    users       AggregateFunction(uniqCombined(12), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (service, environment, release, hour)
TTL hour + INTERVAL {counts_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_counts_release_1h_mv TO {db}.error_counts_release_1h AS
SELECT toStartOfHour(minute) AS hour, service, environment, release,
       sum(events) AS events, uniqCombinedArrayState(12)(user_hashes) AS users
FROM {db}.error_occurrences_in
GROUP BY hour, service, environment, release;

-- Error rate per service, environment, release and hour: true error counts over sessions (for servers:
-- requests). errors_per_session can exceed 1 (one request may raise several errors);
-- errored_session_pct is the share of sessions that errored. NULL where nothing started.
CREATE OR REPLACE VIEW {db}.v_error_rate AS
SELECT
    h.hour AS hour, h.service AS service, h.environment AS environment, h.release AS release,
    h.sessions AS sessions, h.errored_sessions AS errored_sessions, ifNull(e.errors, 0) AS errors,
    if(h.sessions = 0, NULL, round(ifNull(e.errors, 0) / h.sessions, 6)) AS errors_per_session,
    if(h.sessions = 0, NULL, round(100 * h.errored_sessions / h.sessions, 3)) AS errored_session_pct
FROM {db}.v_release_health AS h
LEFT JOIN
(
    SELECT hour, service, environment, release, sum(events) AS errors
    FROM {db}.error_counts_release_1h
    GROUP BY hour, service, environment, release
) AS e ON e.hour = h.hour AND e.service = h.service AND e.environment = h.environment AND e.release = h.release;
