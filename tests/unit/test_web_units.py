"""Pieces of `errstream web` that need no servers: tokens, actions, ownership rules, cursors, the schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from errstream.issue_actions import ActionRequest, plan_changes
from errstream.web.auth import LoginLimiter, Sessions, TokenStore, session_key
from errstream_core.ownership import IssueFacts, owner_for
from reports.issue_queries.cursor import decode_cursor, encode_cursor
from reports.issue_queries.models import BadQuery
from schemas.issue_status import IssueStatusChange
from schemas.ownership import OwnershipRule

FP, FP2 = "a" * 32, "b" * 32
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_tokens_are_stored_hashed_in_a_private_file_and_verified(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "home" / "web-tokens.json")
    token = store.create("alice", "member", created_by="root")
    assert token.startswith("est_") and len(token) > 40
    assert store.path.stat().st_mode & 0o777 == 0o600
    secret = token.split("_", 2)[2]  # est_<id>_<secret>; the secret itself may contain "_"
    assert token not in store.path.read_text() and secret not in store.path.read_text()
    who = store.verify(token)
    assert who is not None and (who.name, who.role) == ("alice", "member") and who.can("viewer") and not who.can("admin")
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert store.verify("est_" + who.token_id + "_guess") is None
    assert store.verify("") is None and store.verify("Bearer x") is None
    other = TokenStore(store.path)  # another process (the CLI) sees the same file
    assert other.verify(token) is not None
    assert other.revoke(who.token_id) and not other.revoke(who.token_id)
    assert store.verify(token) is None  # re-read after the change
    with pytest.raises(ValueError):
        store.create("x", "root")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.create("  ", "viewer")


def test_sessions_are_signed_cookies_that_survive_a_restart(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    token = store.create("vera", "viewer")
    who = store.verify(token)
    assert who is not None
    key_file = tmp_path / "web-session-key"
    key = session_key(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600 and session_key(key_file) == key
    sessions = Sessions(3600, key, store, tmp_path / "closed.json")
    sid, s = sessions.open(who)
    assert s.principal.via == "session" and len(s.csrf) > 30 and who.token_id in sid
    # a new process with the same key (a restart) knows the session and its CSRF token
    again = Sessions(3600, session_key(key_file), store, tmp_path / "closed.json").get(sid)
    assert again is not None and again.principal.name == "vera" and again.csrf == s.csrf
    # another key, a changed byte, an expired or a closed session: nothing
    assert Sessions(3600, b"k" * 32, store).get(sid) is None
    assert sessions.get(sid[:-2] + ("AA" if not sid.endswith("AA") else "BB")) is None
    assert sessions.get(sid[1:]) is None and sessions.get(None) is None and sessions.get("x" * 999) is None
    assert Sessions(-1, key, store).get(Sessions(-1, key, store).open(who)[0]) is None
    sessions.close(sid)
    assert sessions.get(sid) is None
    assert Sessions(3600, key, store, tmp_path / "closed.json").get(sid) is None  # closed survives a restart too
    assert (tmp_path / "closed.json").stat().st_mode & 0o777 == 0o600
    # revoking the token ends its sessions; the others live on
    sid2, _ = sessions.open(who)
    store.revoke(who.token_id)
    assert sessions.get(sid2) is None


def test_a_session_key_file_others_can_read_is_narrowed(tmp_path: Path) -> None:
    key_file = tmp_path / "web-session-key"
    key_file.write_text("ab" * 32)
    key_file.chmod(0o644)
    assert session_key(key_file) == bytes.fromhex("ab" * 32)
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.write_text("not hex")
    assert len(session_key(key_file)) == 32 and len(bytes.fromhex(key_file.read_text())) == 32
    assert session_key(key_file, "configured") != session_key(key_file)


def test_login_limiter_is_per_client_with_a_burst() -> None:
    limiter = LoginLimiter(per_minute=6, burst=2)
    assert [limiter.wait_seconds("a") == 0 for _ in range(3)] == [True, True, False]
    assert 0 < limiter.wait_seconds("a") <= 10
    assert limiter.wait_seconds("b") == 0


def test_actions_carry_the_issue_state_forward() -> None:
    resolved = {"status": "resolved", "assignee": "bob", "resolved_in_next_release": True,
                "resolved_releases": ["1.0"], "events": 10, "releases": ["1.0"]}
    (c,) = plan_changes(ActionRequest(action="assign", fingerprints=[FP], assignee="ana"), {FP: resolved}, "alice", NOW)
    assert (c.status, c.assignee, c.action, c.changed_by) == ("resolved", "ana", "assign", "alice")
    assert c.resolved_in_next_release and c.resolved_releases == ["1.0"]  # an assignment keeps the resolution's terms
    (c,) = plan_changes(ActionRequest(action="note", fingerprints=[FP], note="still broken"), {FP: resolved}, "x", NOW)
    assert (c.status, c.assignee, c.action, c.note) == ("resolved", "bob", "note", "still broken")
    (c,) = plan_changes(ActionRequest(action="reopen", fingerprints=[FP]), {FP: resolved}, "x", NOW)
    assert (c.status, c.assignee, c.resolved_in_next_release, c.resolved_releases) == ("new", "bob", False, [])

    fresh = {"status": "new", "assignee": "", "events": 340, "releases": ["0.9", "1.0"]}
    a, b = plan_changes(ActionRequest(action="ignore", fingerprints=[FP, FP2], ignore_until_events=50,
                                      ignore_minutes=60), {FP: fresh}, "x", NOW)
    assert (a.status, a.ignore_until_events, a.ignore_events_baseline) == ("ignored", 50, 340)
    assert a.ignore_until == NOW + timedelta(minutes=60)
    assert (b.status, b.ignore_events_baseline) == ("ignored", 0)  # an issue with no known state: from zero
    (c,) = plan_changes(ActionRequest(action="resolve", fingerprints=[FP], in_next_release=True), {FP: fresh}, "x", NOW)
    assert c.resolved_in_next_release and c.resolved_releases == ["0.9", "1.0"]
    (c,) = plan_changes(ActionRequest(action="unassign", fingerprints=[FP.upper()]), {FP: resolved}, "x", NOW)
    assert (c.fingerprint, c.assignee, c.status) == (FP, "", "resolved")


def test_bad_action_requests_are_refused() -> None:
    for bad in ({"action": "assign", "fingerprints": [FP]}, {"action": "note", "fingerprints": [FP]},
                {"action": "resolve", "fingerprints": []}, {"action": "resolve", "fingerprints": ["nope"]},
                {"action": "delete", "fingerprints": [FP]}, {"action": "ignore", "fingerprints": [FP], "ignore_minutes": 0}):
        with pytest.raises(ValidationError):
            ActionRequest.model_validate(bad)


def test_records_of_older_writers_still_parse() -> None:
    old = f'{{"fingerprint": "{FP}", "status": "ignored", "changed_at": "2026-01-01T00:00:00Z", "changed_by": "x"}}'
    c = IssueStatusChange.model_validate_json(old)
    assert (c.action, c.assignee, c.ignore_until, c.resolved_in_next_release) == ("", "", None, False)


def test_ownership_rules_first_match_wins() -> None:
    rules = [OwnershipRule(kind="path", pattern="app/billing/*", owner="#payments"),
             OwnershipRule(kind="module", pattern="auth.*", owner="ana"),
             OwnershipRule(kind="tag", pattern="team=search*", owner="#search"),
             OwnershipRule(kind="service", pattern="*", owner="#oncall")]
    assert owner_for(rules, IssueFacts(service="api", paths=["app/billing/charge.py"])) == "#payments"
    assert owner_for(rules, IssueFacts(service="api", modules=["lib.x", "auth.session"])) == "ana"
    assert owner_for(rules, IssueFacts(service="api", tags={"team": "search-infra"})) == "#search"
    assert owner_for(rules, IssueFacts(service="api", tags={"team": "core"})) == "#oncall"
    assert owner_for(rules[:3], IssueFacts(service="api")) is None


def test_cursors_round_trip_and_garbage_is_a_bad_query() -> None:
    doc = {"s": "events", "k": 12, "f": FP}
    assert decode_cursor(encode_cursor(doc)) == doc
    for junk in ("!!", "e30", "WzFd"):  # not base64 JSON / {} is fine to decode / a list
        if junk == "e30":
            assert decode_cursor(junk) == {}
            continue
        with pytest.raises(BadQuery):
            decode_cursor(junk)


def test_token_create_prints_the_token_once_and_stores_its_hash(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "ERRSTREAM_HOME": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "errstream.cli", "web", "token", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    made = cli("create", "--role", "member", "--name", "ana")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("est_") and "\n" not in token
    who = TokenStore(tmp_path / "web-tokens.json").verify(token)
    assert who is not None and (who.name, who.role) == ("ana", "member")
    listed = cli("list")
    assert "ana" in listed.stdout and "member" in listed.stdout and token not in listed.stdout
    assert cli("create", "--role", "owner").returncode == 2
    assert cli("revoke", who.token_id).returncode == 0
    assert TokenStore(tmp_path / "web-tokens.json").verify(token) is None


def test_redirects_after_login_and_actions_stay_on_this_site() -> None:
    from errstream.web.pages import _safe_next

    assert _safe_next("/issues?status=open") == "/issues?status=open"
    for evil in ("//evil.example", "/\\evil.example", "https://evil.example", "evil", "", None, "/x\nLocation: y"):
        assert _safe_next(evil) == "/"
