"""Short issue ids: the 12 first characters of a fingerprint, as the CLI and the report print them.

People paste what they see; the web app takes a prefix of 6 to 31 hex characters and finds the one
issue it names (its events' fingerprints and those with a recorded status), or says it is ambiguous.
"""

from __future__ import annotations

from typing import Any

MIN_PREFIX = 6


def issues_with_prefix(client: Any, database: str, prefix: str, limit: int = 5) -> list[str]:
    """Fingerprints starting with ``prefix`` (lowercase hex), at most ``limit``, sorted."""
    rows = client.query(
        f"SELECT fingerprint FROM (SELECT DISTINCT fingerprint FROM {database}.error_groups"
        f" WHERE startsWith(fingerprint, {{p:String}}) UNION DISTINCT SELECT fingerprint FROM {database}.issue_status"
        f" WHERE startsWith(fingerprint, {{p:String}})) ORDER BY fingerprint LIMIT {{n:UInt32}}",
        parameters={"p": prefix, "n": limit}).result_rows
    return [r[0] for r in rows]
