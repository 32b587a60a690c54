-- Views for the questions analysts ask every day. They read the incrementally
-- maintained tables (error_groups, error_counts_1h) wherever they can, so none
-- of them scans raw events except v_recent_errors, which is bounded to the last
-- two daily partitions. Fixed windows: "last 24 hours" = from the start of the
-- hour 24 hours ago (whole hours, read from error_counts_1h), trends = last 30
-- days; for other windows query the tables (docs/analysts.md has recipes).
-- CREATE OR REPLACE keeps re-running this file harmless.

-- One row per issue: the fold of error_groups plus its workflow status.
-- is_open: not resolved/ignored, or resolved and seen again since (a regression).
CREATE OR REPLACE VIEW {db}.v_error_groups AS
SELECT
    g.fingerprint AS fingerprint,
    g.exception_type AS exception_type,
    g.title AS title,
    g.culprit AS culprit,
    g.first_seen AS first_seen,
    g.last_seen AS last_seen,
    g.events AS events,
    g.stored AS stored,
    g.users AS users,
    g.worst_level AS worst_level,
    g.services AS services,
    g.environments AS environments,
    g.releases AS releases,
    if(s.fingerprint = '', 'new', toString(s.status)) AS status,
    if(s.fingerprint = '', NULL, s.changed_at) AS status_changed_at,
    (status NOT IN ('resolved', 'ignored'))
        OR (status = 'resolved' AND g.last_seen > s.changed_at) AS is_open
FROM
(
    SELECT
        fingerprint,
        anyLast(exception_type) AS exception_type,
        anyLast(title) AS title,
        anyLast(culprit) AS culprit,
        min(first_seen) AS first_seen,
        max(last_seen) AS last_seen,
        sum(events) AS events,
        sum(stored) AS stored,
        uniqCombinedMerge(12)(users) AS users,
        max(worst_level) AS worst_level,
        arraySort(groupUniqArrayArray(services)) AS services,
        arraySort(groupUniqArrayArray(environments)) AS environments,
        arraySort(groupUniqArrayArray(releases)) AS releases
    FROM {db}.error_groups
    GROUP BY fingerprint
) AS g
LEFT JOIN
(
    SELECT fingerprint, status, changed_at FROM {db}.issue_status FINAL
) AS s ON s.fingerprint = toString(g.fingerprint);

-- Raw (sampled) events of the last 24 hours, newest first. sample_rate says
-- how many real occurrences each row stands for (1 / sample_rate).
CREATE OR REPLACE VIEW {db}.v_recent_errors AS
SELECT
    timestamp, event_id, service, environment, release, level, fingerprint,
    exception_type, title, culprit, message, user_id, trace_id, server_name,
    request_method, request_url, sample_rate
FROM {db}.error_events FINAL
WHERE timestamp >= now64(3) - INTERVAL 24 HOUR
ORDER BY timestamp DESC;

-- Per issue over the last 24 hours, from the true hourly counts.
CREATE OR REPLACE VIEW {db}.v_issues_24h AS
SELECT
    c.fingerprint AS fingerprint,
    g.title AS title,
    g.culprit AS culprit,
    g.worst_level AS worst_level,
    g.status AS status,
    c.events AS events_24h,
    c.users AS users_24h,
    c.services AS services_24h,
    c.last_hour AS last_hour,
    g.first_seen AS first_seen,
    g.first_seen >= now() - INTERVAL 24 HOUR AS is_new
FROM
(
    SELECT
        fingerprint,
        sum(events) AS events,
        uniqCombinedMerge(12)(users) AS users,
        arraySort(groupUniqArray(toString(service))) AS services,
        max(hour) AS last_hour
    FROM {db}.error_counts_1h
    WHERE hour >= toStartOfHour(now() - INTERVAL 24 HOUR)
    GROUP BY fingerprint
) AS c
LEFT JOIN {db}.v_error_groups AS g ON g.fingerprint = c.fingerprint;

-- Top issues of the last 24 hours by occurrences (true counts) ...
CREATE OR REPLACE VIEW {db}.v_top_issues_by_events AS
SELECT * FROM {db}.v_issues_24h ORDER BY events_24h DESC, fingerprint;

-- ... and by affected users (uniqCombined: exact for small sets, HyperLogLog beyond).
CREATE OR REPLACE VIEW {db}.v_top_issues_by_users AS
SELECT * FROM {db}.v_issues_24h ORDER BY users_24h DESC, events_24h DESC, fingerprint;

-- Open issues whose worst level is critical, most recently seen first.
CREATE OR REPLACE VIEW {db}.v_unresolved_critical AS
SELECT fingerprint, title, culprit, services, status, first_seen, last_seen, events, users
FROM {db}.v_error_groups
WHERE is_open AND worst_level = 'critical'
ORDER BY last_seen DESC;

-- Per service over the last 24 hours.
CREATE OR REPLACE VIEW {db}.v_service_summary AS
SELECT
    service,
    sum(events) AS events,
    sum(stored) AS stored,
    uniqExact(fingerprint) AS issues,
    uniqCombinedMerge(12)(users) AS users,
    sumIf(c.events, level = 'critical') AS critical,
    sumIf(c.events, level >= 'error') AS errors_and_worse,
    max(hour) AS last_hour
FROM {db}.error_counts_1h AS c
WHERE hour >= toStartOfHour(now() - INTERVAL 24 HOUR)
GROUP BY service
ORDER BY events DESC;

-- Per day and service over the last 30 days.
CREATE OR REPLACE VIEW {db}.v_daily_trends AS
SELECT
    toDate(hour) AS day,
    service,
    sum(events) AS events,
    sum(stored) AS stored,
    uniqExact(fingerprint) AS issues,
    uniqCombinedMerge(12)(users) AS users,
    sumIf(c.events, level = 'critical') AS critical
FROM {db}.error_counts_1h AS c
WHERE hour >= toStartOfDay(now()) - INTERVAL 29 DAY
GROUP BY day, service
ORDER BY day, service;

-- Open issues by age and priority. Priority (documented in docs/analysts.md):
-- P1 critical or >= 100 users; P2 error with >= 10 users or >= 1000 events;
-- P3 other errors; P4 warnings and below.
CREATE OR REPLACE VIEW {db}.v_unresolved_by_age AS
SELECT
    fingerprint,
    title,
    services,
    worst_level,
    status,
    multiIf(
        worst_level = 'critical' OR users >= 100, 'P1',
        worst_level = 'error' AND (users >= 10 OR events >= 1000), 'P2',
        worst_level = 'error', 'P3',
        'P4') AS priority,
    dateDiff('second', first_seen, now64(3)) / 3600 AS age_hours,
    multiIf(
        age_hours < 1, '< 1h',
        age_hours < 24, '1h-1d',
        age_hours < 168, '1d-7d',
        age_hours < 720, '7d-30d',
        '>= 30d') AS age_bucket,
    events,
    users,
    first_seen,
    last_seen
FROM {db}.v_error_groups
WHERE is_open
ORDER BY priority, age_hours DESC;

-- Every resolution with the time it took. A cycle starts at the issue's first
-- event (first cycle) or at the first status change after the previous
-- resolution (a regression reopening it), and ends at its 'resolved' change.
CREATE OR REPLACE VIEW {db}.v_resolution_times AS
SELECT
    h.fingerprint AS fingerprint,
    h.cycle AS cycle,
    if(h.cycle = 0 AND g.fingerprint != '', least(g.first_seen, h.opened_at), h.opened_at) AS opened_at,
    h.resolved_at AS resolved_at,
    dateDiff('second', opened_at, h.resolved_at) AS seconds_to_resolve
FROM
(
    SELECT
        fingerprint,
        cycle,
        min(changed_at) AS opened_at,
        minIf(changed_at, status = 'resolved') AS resolved_at,
        countIf(status = 'resolved') AS resolutions
    FROM
    (
        SELECT
            fingerprint,
            status,
            changed_at,
            sum(status = 'resolved') OVER (
                PARTITION BY fingerprint ORDER BY changed_at
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS cycle
        FROM {db}.issue_status_history FINAL
    )
    GROUP BY fingerprint, cycle
    HAVING resolutions > 0
) AS h
LEFT JOIN
(
    SELECT toString(fingerprint) AS fingerprint, min(first_seen) AS first_seen
    FROM {db}.error_groups GROUP BY fingerprint
) AS g ON g.fingerprint = h.fingerprint;

-- Mean (and median, p90) time to resolution per week of resolution.
CREATE OR REPLACE VIEW {db}.v_mttr AS
SELECT
    toMonday(resolved_at) AS week,
    count() AS resolutions,
    round(avg(seconds_to_resolve) / 3600, 2) AS mttr_hours,
    round(quantileExact(0.5)(seconds_to_resolve) / 3600, 2) AS median_hours,
    round(quantileExact(0.9)(seconds_to_resolve) / 3600, 2) AS p90_hours
FROM {db}.v_resolution_times
GROUP BY week
ORDER BY week;

-- Error rate change per service: the last 24 hours versus the 24 hours before
-- (whole hours: from the start of the hour 24 hours ago, and the 24 before).
-- change_pct is NULL when the previous period had no errors.
CREATE OR REPLACE VIEW {db}.v_error_rate_change AS
SELECT
    service,
    sumIf(events, hour >= toStartOfHour(now() - INTERVAL 24 HOUR)) AS events_current,
    sumIf(events, hour < toStartOfHour(now() - INTERVAL 24 HOUR)) AS events_previous,
    if(events_previous = 0, NULL, round((events_current - events_previous) * 100 / events_previous, 1)) AS change_pct
FROM {db}.error_counts_1h
WHERE hour >= toStartOfHour(now() - INTERVAL 48 HOUR)
GROUP BY service
ORDER BY events_current DESC;
