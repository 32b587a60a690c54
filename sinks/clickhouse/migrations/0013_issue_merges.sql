-- Issue merges (schemas/issue_merge.py, `errstream issue merge|unmerge`): every merge and unmerge is
-- history with who and when; `issue_merges` keeps the latest primary per fingerprint ('' = its own issue).
-- Events keep their fingerprints: the views below fold a group's fingerprints into one row under its
-- primary (the mapping is flat, every member names its primary), and the group's status is the primary's.
CREATE TABLE IF NOT EXISTS {db}.issue_merge_history
(
    fingerprint         String,
    primary_fingerprint String,
    action              LowCardinality(String),
    changed_at          DateTime64(3, 'UTC'),
    changed_by          String,
    note                String
)
ENGINE = ReplacingMergeTree
ORDER BY (fingerprint, changed_at, action)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.issue_merges
(
    fingerprint         String,
    primary_fingerprint String,
    action              LowCardinality(String),
    changed_at          DateTime64(3, 'UTC'),
    changed_by          String,
    note                String
)
ENGINE = ReplacingMergeTree(changed_at)
ORDER BY fingerprint;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.issue_merges_mv TO {db}.issue_merges AS
SELECT fingerprint, primary_fingerprint, action, changed_at, changed_by, note FROM {db}.issue_merge_history;

-- One row per issue, a merged group under its primary: counts summed, the primary's title when it has
-- events of its own; `members` lists the fingerprints whose events the row counts.
CREATE OR REPLACE VIEW {db}.v_error_groups AS
SELECT
    g.issue AS fingerprint,
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
    status NOT IN ('resolved', 'ignored') AS is_open,
    g.members AS members
FROM
(
    SELECT
        if(m.primary_fingerprint = '', e.fingerprint, m.primary_fingerprint) AS issue,
        if(countIf(e.fingerprint = issue) > 0, anyLastIf(e.exception_type, e.fingerprint = issue), anyLast(e.exception_type)) AS exception_type,
        if(countIf(e.fingerprint = issue) > 0, anyLastIf(e.title, e.fingerprint = issue), anyLast(e.title)) AS title,
        if(countIf(e.fingerprint = issue) > 0, anyLastIf(e.culprit, e.fingerprint = issue), anyLast(e.culprit)) AS culprit,
        min(e.first_seen) AS first_seen,
        max(e.last_seen) AS last_seen,
        sum(e.events) AS events,
        sum(e.stored) AS stored,
        uniqCombinedMerge(12)(e.users) AS users,
        max(e.worst_level) AS worst_level,
        arraySort(groupUniqArrayArray(e.services)) AS services,
        arraySort(groupUniqArrayArray(e.environments)) AS environments,
        arraySort(groupUniqArrayArray(e.releases)) AS releases,
        arraySort(groupUniqArray(e.fingerprint)) AS members
    FROM {db}.error_groups AS e
    LEFT JOIN
    (
        SELECT fingerprint, primary_fingerprint FROM {db}.issue_merges FINAL WHERE primary_fingerprint != ''
    ) AS m ON m.fingerprint = e.fingerprint
    GROUP BY issue
) AS g
LEFT JOIN
(
    SELECT fingerprint, status, changed_at FROM {db}.issue_status FINAL
) AS s ON s.fingerprint = g.issue;

-- Per issue over the last 24 hours, a merged group under its primary.
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
        if(m.primary_fingerprint = '', h.fingerprint, m.primary_fingerprint) AS fingerprint,
        sum(h.events) AS events,
        uniqCombinedMerge(12)(h.users) AS users,
        arraySort(groupUniqArray(toString(h.service))) AS services,
        max(h.hour) AS last_hour
    FROM {db}.error_counts_1h AS h
    LEFT JOIN
    (
        SELECT fingerprint, primary_fingerprint FROM {db}.issue_merges FINAL WHERE primary_fingerprint != ''
    ) AS m ON m.fingerprint = h.fingerprint
    WHERE h.hour >= toStartOfHour(now() - INTERVAL 24 HOUR)
    GROUP BY fingerprint
) AS c
LEFT JOIN {db}.v_error_groups AS g ON g.fingerprint = c.fingerprint
