-- An issue's title is the title of its first event, so it does not change between reloads.
-- error_groups kept anyLast(title): which partial row's title a read folds last is arbitrary, and
-- titles carry the message (two events of one fingerprint: "card 4242 declined", "card 1881 declined").
-- Each sink batch now sends the title of each cell's earliest event (`first_title`), and error_groups
-- keeps the one of the earliest time (ties: the smallest title) as an argMin state. Rows written before
-- this migration have no first title: such an issue shows its latest title, as before, until its next
-- event, and from then on the title of the first event seen after the migration.

ALTER TABLE {db}.error_occurrences_in
    ADD COLUMN IF NOT EXISTS first_title String DEFAULT title;

ALTER TABLE {db}.error_groups
    ADD COLUMN IF NOT EXISTS first_title AggregateFunction(argMin, String, Tuple(DateTime64(3, 'UTC'), String));

-- The view that fills error_groups must send the new column too; recreated as 0006 did for issue_status_mv
-- (a batch inserted in between would miss error_groups: migrate before starting the sinks). `o.` names the
-- columns, not the aliases of the same names.
DROP VIEW IF EXISTS {db}.error_groups_mv;
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
       groupUniqArrayArray(releases)      AS releases,
       argMinState(o.first_title, (o.first_seen, o.first_title)) AS first_title
FROM {db}.error_occurrences_in AS o
GROUP BY fingerprint;

-- As 0013_issue_merges.sql, with the title of the primary's first event (else the group's first event, else,
-- for rows older than this migration, the latest title as before).
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
        multiIf(argMinMergeIf(e.first_title, e.fingerprint = issue) != '', argMinMergeIf(e.first_title, e.fingerprint = issue),
                countIf(e.fingerprint = issue) = 0 AND argMinMerge(e.first_title) != '', argMinMerge(e.first_title),
                countIf(e.fingerprint = issue) > 0, anyLastIf(e.title, e.fingerprint = issue), anyLast(e.title)) AS title,
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
