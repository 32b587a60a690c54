"""Reading merges back: the SQL every per-issue read uses to fold a merged group under its primary.

``issue_merges`` (sinks/clickhouse/migrations/0013) keeps the latest primary per fingerprint and the mapping is flat,
so one join answers "which issue is this fingerprint's": views, the report, the web app and the CLI all
fold through the fragments below, so a merged group is one row everywhere. Events keep their own
fingerprints; unmerging changes the mapping only, and every read follows at once.
"""

from __future__ import annotations

from typing import Any

from errstream_core.settings import Settings

# A merged fingerprint's primary: (fingerprint, primary_fingerprint) for merged fingerprints only.
MERGED = "(SELECT fingerprint, primary_fingerprint FROM {db}.issue_merges FINAL WHERE primary_fingerprint != '')"
# The issue a row of a per-fingerprint table belongs to (that table aliased ``e``, ``MERGED`` joined as ``m``).
ISSUE_OF = "if(m.primary_fingerprint = '', e.fingerprint, m.primary_fingerprint)"
# The fingerprints whose events belong to the issues in the parameter ``fps``: their own and their members'.
MEMBERS_OF = ("(fingerprint IN {fps:Array(String)} OR fingerprint IN (SELECT fingerprint FROM {db}.issue_merges FINAL"
              " WHERE primary_fingerprint IN {fps:Array(String)}))")


def merge_mapping(client: Any, settings: Settings) -> dict[str, str]:
    """Every merged fingerprint → its primary (merges are people's actions: a small table)."""
    sql = MERGED.replace("{db}", settings.clickhouse_database).strip("()")
    return {fp: primary for fp, primary in client.query(sql).result_rows}


def known_fingerprints(client: Any, settings: Settings, fingerprints: list[str]) -> set[str]:
    """Those of ``fingerprints`` that name an issue: seen in events, or given a status."""
    db = settings.clickhouse_database
    return {row[0] for row in client.query(
        f"SELECT DISTINCT fingerprint FROM {db}.error_groups WHERE fingerprint IN {{fps:Array(String)}} UNION DISTINCT "
        f"SELECT fingerprint FROM {db}.issue_status WHERE fingerprint IN {{fps:Array(String)}}",
        parameters={"fps": fingerprints}).result_rows}
# Every merge and unmerge of the issue ``fp`` and of any fingerprint ever merged into it, oldest first.
MERGE_HISTORY_SQL = (
    "SELECT changed_at, toString(action) AS action, fingerprint, primary_fingerprint AS primary, changed_by, note"
    " FROM {db}.issue_merge_history FINAL WHERE fingerprint = {fp:String} OR fingerprint IN"
    " (SELECT fingerprint FROM {db}.issue_merge_history WHERE primary_fingerprint = {fp:String})"
    " ORDER BY changed_at, fingerprint")
