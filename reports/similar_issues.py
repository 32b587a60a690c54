"""Issues that look like the same problem: candidates to merge, found from the grouping components.

An issue's fingerprint is a digest of its grouping components (every exception's type and in-app
frames, ``stream_processors.fingerprint``), so two issues whose components mostly agree are often
one problem split by a changed frame, a wrapper or a deploy. Here each issue's latest stored event
(its exception chain, kept per issue at insert in ``error_latest_events``) is read back into
components (exception types and in-app frame keys, computed by the grouping code itself) and compared by Jaccard similarity with the issue's own; the candidates are the
issues of the same exception type or culprit (at most ``CANDIDATES``, most recent first). No
external service: plain set arithmetic that says what is shared.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

from reports.merges import MERGED
from schemas.events import StackFrame
from stream_processors.fingerprint import frame_key

CANDIDATES = 50
MIN_SCORE = 0.3


class SimilarIssue(BaseModel):
    fingerprint: str
    title: str
    culprit: str
    events: int
    score: float  # Jaccard similarity of the grouping components, 0..1
    shared: list[str]  # the components both have (types, frames)
    only_here: int  # components only this issue has
    only_there: int  # components only the other has


def components(exceptions_json: str) -> set[str]:
    """The grouping components of one stored event: ``type:X`` per exception, ``frame:module.function`` per
    in-app frame (all frames when none is in-app, as grouping does)."""
    try:
        chain = orjson.loads(exceptions_json or "[]")
    except orjson.JSONDecodeError:
        return set()
    out: set[str] = set()
    for exc in chain if isinstance(chain, list) else []:
        if not isinstance(exc, dict):
            continue
        out.add(f"type:{exc.get('type') or '?'}")
        frames = [f for f in exc.get("stacktrace") or [] if isinstance(f, dict)]
        app = [f for f in frames if f.get("in_app")] or frames
        for f in app:
            fr = StackFrame(module=f.get("module"), function=f.get("function"), filename=f.get("filename"),
                            abs_path=f.get("abs_path"))
            out.add(f"frame:{frame_key(fr)}")
    return out


# The latest stored event's exceptions of each issue asked for (its own fingerprint's events), from
# error_latest_events (migration 0018: kept at insert), a look-up by the table's key: the stored events
# themselves are not read.
_LATEST = (
    "SELECT fingerprint, argMaxMerge(exceptions) AS exceptions FROM {db}.error_latest_events"
    " WHERE fingerprint IN {fps:Array(String)} GROUP BY fingerprint")
# Candidates straight from error_groups (aliases unlike the columns: ClickHouse would read the WHERE's
# `culprit` as the aggregate) (the view folds every issue and its merges first: 300 ms at 2,000
# issues); fingerprints merged into another issue are left out, they are read through their primary.
_CANDIDATES = (
    "SELECT fingerprint, if(argMinMerge(first_title) != '', argMinMerge(first_title), anyLast(title)) AS c_title, anyLast(culprit) AS c_culprit, sum(events) AS c_events"
    " FROM {db}.error_groups"
    " WHERE fingerprint != {fp:String} AND (exception_type = {etype:String} OR culprit = {culprit:String})"
    " AND fingerprint NOT IN (SELECT fingerprint FROM " + MERGED + ")"
    " GROUP BY fingerprint ORDER BY max(last_seen) DESC LIMIT {n:UInt32}")


def similar_issues(client: Any, database: str, fingerprint: str, exception_type: str, culprit: str,
                   limit: int = 5) -> list[SimilarIssue]:
    def rows(sql: str, **params: Any) -> list[dict[str, Any]]:
        return list(client.query(sql.replace("{db}", database), parameters=params).named_results())

    candidates = rows(_CANDIDATES, fp=fingerprint, etype=exception_type, culprit=culprit, n=CANDIDATES)
    if not candidates:
        return []
    latest = {r["fingerprint"]: components(r["exceptions"]) for r in rows(
        _LATEST, fps=[fingerprint, *(c["fingerprint"] for c in candidates)])}
    mine = latest.get(fingerprint) or set()
    if not mine:
        return []
    out = []
    for c in candidates:
        theirs = latest.get(c["fingerprint"]) or set()
        if not theirs:
            continue
        score = len(mine & theirs) / len(mine | theirs)
        if score >= MIN_SCORE:
            out.append(SimilarIssue(fingerprint=c["fingerprint"], title=c["c_title"], culprit=c["c_culprit"],
                                    events=int(c["c_events"]), score=round(score, 2), shared=sorted(mine & theirs),
                                    only_here=len(mine - theirs), only_there=len(theirs - mine)))
    out.sort(key=lambda s: (-s.score, -s.events, s.fingerprint))
    return out[:limit]
