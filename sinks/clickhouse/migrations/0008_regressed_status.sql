-- A resolved issue seen again is a regression: v_error_groups said status='resolved'
-- and is_open=1 for it, and everything reading the view (the report, analysts'
-- queries) called it resolved. Its status now reads 'regressed' until the next
-- status change; is_open follows from the status alone. Views that read
-- v_error_groups (v_issues_24h, v_unresolved_critical, …) pick this up by name.
-- status: new | acknowledged | investigating | resolved | ignored | regressed.
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
    multiIf(s.fingerprint = '', 'new',
            s.status = 'resolved' AND g.last_seen > s.changed_at, 'regressed',
            toString(s.status)) AS status,
    if(s.fingerprint = '', NULL, s.changed_at) AS status_changed_at,
    status NOT IN ('resolved', 'ignored') AS is_open
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
