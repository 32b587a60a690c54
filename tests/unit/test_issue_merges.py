"""Merge planning (pure): flat mappings, chains of merges, unmerging a primary, and hostile requests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from errstream.issue_actions import ActionRequest, plan_changes
from errstream.issue_merges import MergeError, for_group, members, plan_merge, plan_unmerge, primary_of
from schemas.issue_merge import IssueMergeChange
from schemas.issue_status import IssueStatusChange

A, B, C, D = (c * 32 for c in "abcd")
KNOWN = {A, B, C, D}
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


def apply(mapping: dict[str, str], changes: list[IssueMergeChange]) -> dict[str, str]:
    """What a reader of the compacted topic keeps: the latest primary per fingerprint."""
    out = dict(mapping)
    for c in changes:
        if c.primary:
            out[c.fingerprint] = c.primary
        else:
            out.pop(c.fingerprint, None)
    return out


def test_the_first_fingerprint_is_the_primary_unless_into_names_one() -> None:
    changes = plan_merge({}, [A, B, C], KNOWN, "alice", note="same bug", now=NOW)
    assert [(c.fingerprint, c.primary, c.action, c.changed_by, c.note) for c in changes] == [
        (B, A, "merge", "alice", "same bug"), (C, A, "merge", "alice", "same bug")]
    assert all(c.changed_at == NOW for c in changes)
    assert apply({}, plan_merge({}, [A, B], KNOWN, "bob", into=C)) == {A: C, B: C}


def test_a_chain_of_merges_stays_flat() -> None:
    m = apply({}, plan_merge({}, [B, A], KNOWN, "x"))  # A → B
    assert m == {A: B}
    m = apply(m, plan_merge(m, [C, B], KNOWN, "x"))  # B → C: B's member A moves along
    assert m == {A: C, B: C}
    assert primary_of(m, A) == C and members(m, C) == [A, B]


def test_merging_into_a_member_merges_into_its_primary() -> None:
    m = {A: B}
    assert apply(m, plan_merge(m, [A, C], KNOWN, "x")) == {A: B, C: B}


def test_unmerge_a_member_and_unmerge_a_primary() -> None:
    m = {A: C, B: C}
    assert apply(m, plan_unmerge(m, [A], "x")) == {B: C}
    dissolved = plan_unmerge(m, [C], "carol", now=NOW)
    assert [(c.fingerprint, c.primary, c.action) for c in dissolved] == [(A, "", "unmerge"), (B, "", "unmerge")]
    assert apply(m, dissolved) == {}


@pytest.mark.parametrize(("mapping", "fps", "into", "reason"), [
    ({}, [A, "f" * 32], None, "no such issue: " + "f" * 32),
    ({}, [A], None, "cannot be merged into itself"),
    ({}, [A, A], None, "cannot be merged into itself"),
    ({}, [A], A, "cannot be merged into itself"),
    ({A: B}, [A, B], None, "would make a loop"),  # B into A, while A is merged into B
    ({A: C, B: C}, [C, A, B], None, "already merged into"),
    ({A: B, B: A}, [C, A], None, "form a loop"),  # a damaged mapping is refused, not followed forever
])
def test_hostile_merges_are_refused_with_a_reason(mapping: dict[str, str], fps: list[str], into: str | None,
                                                  reason: str) -> None:
    with pytest.raises(MergeError, match=reason):
        plan_merge(mapping, fps, KNOWN, "mallory", into=into)


def test_unmerging_what_is_not_merged_is_refused_and_a_loop_can_be_repaired() -> None:
    with pytest.raises(MergeError, match="is not merged"):
        plan_unmerge({A: B}, [C], "x")
    loop = {A: B, B: A}
    assert apply(loop, plan_unmerge(loop, [A], "x")) == {B: A}


def test_records_and_requests_refuse_nonsense() -> None:
    with pytest.raises(ValidationError, match="into itself"):
        IssueMergeChange(fingerprint=A, primary=A, action="merge")
    with pytest.raises(ValidationError, match="names its primary"):
        IssueMergeChange(fingerprint=A, action="merge")
    with pytest.raises(ValidationError, match="32 hex"):
        ActionRequest(action="merge", fingerprints=[A, "nope"])
    with pytest.raises(ValidationError, match="32 hex"):
        ActionRequest(action="merge", fingerprints=[A], into="'; DROP TABLE x")
    with pytest.raises(ValidationError, match="for merge only"):
        ActionRequest(action="resolve", fingerprints=[A], into=B)
    req = ActionRequest(action="merge", fingerprints=[A.upper(), B], into=C)
    assert req.fingerprints == [A, B] and req.into == C
    with pytest.raises(ValueError, match="merge records"):
        plan_changes(req, {}, "x")


def test_a_status_change_of_a_merged_issue_reaches_its_whole_group() -> None:
    m = {A: C, B: C}
    resolved = IssueStatusChange(fingerprint=A, status="resolved", changed_by="bob", changed_at=NOW)
    out = for_group([resolved], m)  # named by a member: the group's primary and every member
    assert sorted(c.fingerprint for c in out) == [A, B, C]
    assert {(c.status, c.changed_by, c.changed_at) for c in out} == {("resolved", "bob", NOW)}  # one resolution
    alone = IssueStatusChange(fingerprint=D, status="ignored")
    assert for_group([alone], m) == [alone]
    assert [c.fingerprint for c in for_group([resolved], {A: B, B: A})] == [A]  # a damaged mapping: as named
