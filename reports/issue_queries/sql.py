"""The SQL the issue queries share: an issue's state, the per-page fold of its groups, one issue's raw events."""

from __future__ import annotations

from reports.merges import ISSUE_OF, MEMBERS_OF, MERGED

# The issue's state: the fold of error_groups (v_error_groups) plus the latest workflow record's extra fields.
# The recorded status is read from issue_status itself, not from the view: v_error_groups already turns any later
# event of a resolved issue into 'regressed', which knows nothing of "resolved in the next release", so the
# stream's filters (which rank over the view) and the rows shown (folded per page) disagreed.
STATE_SQL = """
SELECT g.fingerprint AS fingerprint, g.title AS title, g.culprit AS culprit, g.exception_type AS exception_type,
       toString(g.worst_level) AS level, g.first_seen AS first_seen, g.last_seen AS last_seen,
       g.events AS events, g.stored AS stored, g.users AS users, g.services AS services,
       g.environments AS environments, g.releases AS releases,
       if(s.fingerprint = '', 'new', s.recorded_status) AS raw_status,
       g.status_changed_at AS status_changed_at, s.assignee AS assignee, s.ignore_until AS ignore_until,
       s.ignore_until_events AS ignore_until_events, s.ignore_events_baseline AS ignore_events_baseline,
       s.resolved_in_next_release AS resolved_in_next_release, s.resolved_releases AS resolved_releases,
       s.ignore_until_escalating AS ignore_until_escalating, s.escalating_forecast AS escalating_forecast,
       g.members AS members,
       multiIf(
         raw_status = 'ignored' AND ((ignore_until IS NOT NULL AND ignore_until <= now64(3))
           OR (ignore_until_events IS NOT NULL
               AND g.events >= ifNull(ignore_events_baseline, 0) + ignore_until_events)), 'new',
         raw_status = 'resolved' AND g.last_seen > status_changed_at
           AND (resolved_in_next_release = 0 OR arrayExists(r -> NOT has(resolved_releases, r), g.releases)),
           'regressed',
         raw_status) AS status
FROM {db}.v_error_groups AS g
LEFT JOIN (SELECT fingerprint, toString(status) AS recorded_status, assignee, ignore_until, ignore_until_events,
                  ignore_events_baseline, resolved_in_next_release, resolved_releases, ignore_until_escalating,
                  escalating_forecast
           FROM {db}.issue_status FINAL{only}) AS s
  ON s.fingerprint = g.fingerprint
"""

# v_error_groups' fold for a few issues only: the fingerprints go inside its GROUP BY (a filter on the view is
# not pushed through the fold and its user-set merges, which made a page of 25 cost a fold of every issue).
# A merged group folds under its primary, as in the view.
_PAGE_GROUPS = """(
SELECT f.fingerprint AS fingerprint, f.exception_type AS exception_type, f.title AS title, f.culprit AS culprit,
       f.first_seen AS first_seen, f.last_seen AS last_seen, f.events AS events, f.stored AS stored, f.users AS users,
       f.worst_level AS worst_level, f.services AS services, f.environments AS environments, f.releases AS releases,
       f.members AS members,
       if(st.fingerprint = '', 'new', toString(st.status)) AS status,
       if(st.fingerprint = '', NULL, st.changed_at) AS status_changed_at
FROM (SELECT ISSUE_OF AS fingerprint, PRIMARYS(exception_type) AS exception_type, FIRST_TITLE AS title,
             PRIMARYS(culprit) AS culprit,
             min(e.first_seen) AS first_seen, max(e.last_seen) AS last_seen,
             sum(e.events) AS events, sum(e.stored) AS stored, uniqCombinedMerge(12)(e.users) AS users,
             max(e.worst_level) AS worst_level, arraySort(groupUniqArrayArray(e.services)) AS services,
             arraySort(groupUniqArrayArray(e.environments)) AS environments,
             arraySort(groupUniqArrayArray(e.releases)) AS releases, arraySort(groupUniqArray(e.fingerprint)) AS members
      FROM (SELECT * FROM {db}.error_groups WHERE MEMBERS_OF) AS e LEFT JOIN MERGED AS m ON m.fingerprint = e.fingerprint
      GROUP BY fingerprint) AS f
LEFT JOIN (SELECT fingerprint, status, changed_at FROM {db}.issue_status FINAL
           WHERE fingerprint IN {fps:Array(String)}) AS st ON st.fingerprint = f.fingerprint)"""
for _column in ("exception_type", "culprit"):  # the primary's own, when it has events (as in the view)
    _PAGE_GROUPS = _PAGE_GROUPS.replace(
        f"PRIMARYS({_column})", f"if(countIf(e.fingerprint = ISSUE_OF) > 0, anyLastIf(e.{_column}, e.fingerprint = "
        f"ISSUE_OF), anyLast(e.{_column}))")
# The title of the first event (the primary's own, else the group's; migration 0015), which does not change
# between reloads; rows older than that migration have none, and their latest title stands in.
_PAGE_GROUPS = _PAGE_GROUPS.replace(
    "FIRST_TITLE", "multiIf(argMinMergeIf(e.first_title, e.fingerprint = ISSUE_OF) != '', argMinMergeIf(e.first_title, "
    "e.fingerprint = ISSUE_OF), countIf(e.fingerprint = ISSUE_OF) = 0 AND argMinMerge(e.first_title) != '', "
    "argMinMerge(e.first_title), PRIMARYS(title))")
_PAGE_GROUPS = _PAGE_GROUPS.replace(
    "PRIMARYS(title)", "if(countIf(e.fingerprint = ISSUE_OF) > 0, anyLastIf(e.title, e.fingerprint = ISSUE_OF), "
    "anyLast(e.title))")
_PAGE_GROUPS = _PAGE_GROUPS.replace("ISSUE_OF", ISSUE_OF).replace("MEMBERS_OF", MEMBERS_OF).replace("MERGED", MERGED)
PAGE_STATE_SQL = (STATE_SQL.replace("{db}.v_error_groups AS g", _PAGE_GROUPS + " AS g")
                  .replace("{only}", " WHERE fingerprint IN {fps:Array(String)}"))

# Raw events of one issue (``fps`` = [the issue], its members' events too): its services (from error_groups)
# narrow error_events' primary key (service, fingerprint).
OF_ISSUE = (f"service IN (SELECT arrayJoin(services) FROM {{db}}.error_groups WHERE {MEMBERS_OF})"
             f" AND {MEMBERS_OF}")

SORT_KEY = {
    "last_seen": "toInt64(toUnixTimestamp64Milli(last_seen))",
    "first_seen": "toInt64(toUnixTimestamp64Milli(first_seen))",
    "events": "toInt64(events)",
    "users": "toInt64(users)",
    "trend": "toInt64(trend)",
}
