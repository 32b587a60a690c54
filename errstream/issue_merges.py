"""Planning merges and unmerges: which fingerprints get which primary (pure; the CLI and the web app publish).

The mapping is kept flat — every member names its group's primary, never another
member — so the detectors and ClickHouse resolve an issue with one look-up.
Planning keeps it flat: merging a group's primary into another issue moves its
members along (A→B, then B→C gives A→C and B→C), and naming a member as the
target merges into that member's primary. Unmerging a member makes it its own
issue again; unmerging a primary dissolves its whole group.

Every refusal is a ``MergeError`` whose message says what to do instead: the
CLI prints it (exit 2), the API answers 400 with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from schemas.issue_merge import IssueMergeChange
from schemas.issue_status import IssueStatusChange


class MergeError(ValueError):
    """A merge or unmerge that cannot be done as asked."""


def _short(fp: str) -> str:
    return fp[:12]


def _walk(mapping: Mapping[str, str], fp: str) -> list[str]:
    """``fp`` and the primaries the mapping leads to from it, in order; stops before a repeat."""
    path = [fp]
    while (nxt := mapping.get(path[-1])) and nxt not in path:
        path.append(nxt)
    return path


def primary_of(mapping: Mapping[str, str], fp: str) -> str:
    """The primary of ``fp``'s group (``fp`` itself when not merged). A loop in ``mapping`` — only a hand-written
    or damaged topic can hold one, planning never writes one — is refused with the loop it found."""
    path = _walk(mapping, fp)
    if mapping.get(path[-1]):
        loop = " → ".join(_short(f) for f in [*path, mapping[path[-1]]])
        raise MergeError(f"the recorded merges of {_short(fp)} form a loop ({loop}): unmerge {_short(fp)} to repair it")
    return path[-1]


def groups(mapping: Mapping[str, str]) -> dict[str, list[str]]:
    """Primary → the fingerprints merged into it (sorted; entries in a loop belong to no group)."""
    out: dict[str, list[str]] = {}
    for fp in mapping:
        end = _walk(mapping, fp)[-1]
        if not mapping.get(end):
            out.setdefault(end, []).append(fp)
    return {primary: sorted(fps) for primary, fps in out.items()}


def members(mapping: Mapping[str, str], primary: str) -> list[str]:
    """The fingerprints merged into ``primary`` (sorted; not ``primary`` itself)."""
    return groups(mapping).get(primary, [])


def plan_merge(mapping: Mapping[str, str], fingerprints: Iterable[str], known: Iterable[str], actor: str, *,
               into: str | None = None, note: str = "", now: datetime | None = None) -> list[IssueMergeChange]:
    """The records that merge ``fingerprints`` into ``into`` (default: the first of them).

    ``known``: the fingerprints that name an issue (seen in events, or given a status); any other is refused.
    """
    fps = list(dict.fromkeys(fingerprints))
    target = into or (fps[0] if fps else "")
    if not target:
        raise MergeError("name the issues to merge")
    known_set = set(known) | set(mapping) | set(mapping.values())
    unknown = [f for f in dict.fromkeys([target, *fps]) if f not in known_set]
    if unknown:
        raise MergeError("no such issue: " + ", ".join(unknown[:5]) + (" …" if len(unknown) > 5 else ""))
    sources = [f for f in fps if f != target]
    if not sources:
        raise MergeError(f"an issue cannot be merged into itself: name at least one issue besides {_short(target)}")
    primary = primary_of(mapping, target)
    grouped = groups(mapping)
    moved: list[str] = []
    for src in sources:
        group = primary_of(mapping, src)
        if src == primary:
            raise MergeError(f"{_short(target)} is merged into {_short(src)}: merging {_short(src)} into it would make "
                             f"a loop; merge into {_short(src)} instead, or unmerge {_short(target)} first")
        if group == primary:
            continue  # already in the group
        moved.append(src)
        if group == src:  # a primary moves with its members
            moved.extend(grouped.get(src, []))
    if not moved:
        raise MergeError(f"{', '.join(_short(s) for s in sources)} already merged into {_short(primary)}")
    at = now or datetime.now(UTC)
    return [IssueMergeChange(fingerprint=fp, primary=primary, action="merge", changed_at=at, changed_by=actor,
                             note=note) for fp in dict.fromkeys(moved)]


def plan_unmerge(mapping: Mapping[str, str], fingerprints: Iterable[str], actor: str, *, note: str = "",
                 now: datetime | None = None) -> list[IssueMergeChange]:
    """The records that make ``fingerprints`` their own issues again (a primary: every member of its group)."""
    out: list[str] = []
    grouped = groups(mapping)
    for fp in dict.fromkeys(fingerprints):
        if mapping.get(fp):
            out.append(fp)
        elif group := grouped.get(fp):
            out.extend(group)
        else:
            raise MergeError(f"{_short(fp)} is not merged: it is neither merged into another issue nor the primary "
                             "of a group")
    at = now or datetime.now(UTC)
    return [IssueMergeChange(fingerprint=fp, action="unmerge", changed_at=at, changed_by=actor, note=note)
            for fp in dict.fromkeys(out)]


def for_group(changes: Iterable[IssueStatusChange], mapping: Mapping[str, str]) -> list[IssueStatusChange]:
    """Status changes as they apply to merged groups: a change of a group's member or primary is the group's,
    published for the primary and for every member (same record, same time).

    Detection keeps each fingerprint's status on that fingerprint's partition; a member carrying its group's
    status is how a resolved group regresses (once: the alert is the primary's) whichever member comes back,
    and how an ignored group stays silent.
    """
    out: dict[str, IssueStatusChange] = {}
    grouped = groups(mapping)
    for change in changes:
        try:
            primary = primary_of(mapping, change.fingerprint)
        except MergeError:
            primary = change.fingerprint  # a damaged mapping: the change applies to the fingerprint named
        for fp in [primary, *grouped.get(primary, [])]:
            out.setdefault(fp, change if fp == change.fingerprint else change.model_copy(update={"fingerprint": fp}))
    return list(out.values())
