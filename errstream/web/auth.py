"""Who may use ``errstream web``: API tokens with roles, browser sessions, CSRF, login rate limits.

Tokens live hashed in a JSON file of mode 0600 under ``ERRSTREAM_HOME``
(``web-tokens.json``, or ``ERRSTREAM_WEB_TOKENS_FILE``): a file, not a topic, because
tokens are secrets of one deployment's web app, must be revocable by deleting a line,
and should not be readable by everyone who can read Kafka. A token is
``est_<id>_<secret>`` with 32 random bytes of secret; only SHA-256 of the whole token is
stored (a slow password hash buys nothing for 256-bit random secrets) and compared in
constant time. The file is re-read when it changes, so ``errstream web token create``
takes effect without a restart.

Browser sessions are server-side (a random id in an HttpOnly, SameSite=Lax cookie, the
principal and a CSRF token in memory): logging out or restarting ends them. Every form
carries the session's CSRF token; a cookie-authenticated request that changes anything
without it is refused (403). Bearer-token requests need no CSRF token: browsers never
attach them on their own.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson

from errstream_core.token_bucket import TokenBucket

Role = Literal["viewer", "member", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "member", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
TOKEN_PREFIX = "est_"


@dataclass(frozen=True)
class Principal:
    """Who is asking: the token's name (recorded as ``changed_by``) and role."""

    name: str
    role: Role
    token_id: str
    via: Literal["token", "session"] = "token"

    def can(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The hashed tokens file: create, list, revoke, verify."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._tokens: dict[str, dict[str, str]] = {}

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._tokens, self._mtime = {}, None
            return self._tokens
        if mtime != self._mtime:
            doc = orjson.loads(self.path.read_bytes() or b"{}")
            self._tokens = {t["id"]: t for t in doc.get("tokens", [])}
            self._mtime = mtime
        return self._tokens

    def _save(self, tokens: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"tokens": list(tokens.values())}, option=orjson.OPT_INDENT_2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._mtime = None

    def create(self, name: str, role: Role, created_by: str = "") -> str:
        """A new token; the only time its secret exists outside the caller is this return value."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("a token needs a name of 1..200 characters (it is recorded as who made a change)")
        token_id = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        with self._lock:
            tokens = dict(self._load())
            tokens[token_id] = {"id": token_id, "name": name, "role": role, "sha256": _hash(token),
                                "created_at": datetime.now(UTC).isoformat(), "created_by": created_by}
            self._save(tokens)
        return token

    def list(self) -> list[dict[str, str]]:
        with self._lock:
            return [{k: v for k, v in t.items() if k != "sha256"} for t in self._load().values()]

    def revoke(self, token_id: str) -> bool:
        with self._lock:
            tokens = dict(self._load())
            if tokens.pop(token_id, None) is None:
                return False
            self._save(tokens)
            return True

    def exists(self, token_id: str) -> bool:
        with self._lock:
            return token_id in self._load()

    def verify(self, token: str) -> Principal | None:
        token = token.strip()
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        token_id = token[len(TOKEN_PREFIX):].split("_", 1)[0]
        with self._lock:
            entry = self._load().get(token_id)
        if entry is None or not hmac.compare_digest(entry["sha256"], _hash(token)):
            return None
        role = entry["role"]
        return Principal(name=entry["name"], role=role if role in ROLES else "viewer", token_id=token_id)  # type: ignore[arg-type]


@dataclass
class Session:
    principal: Principal
    csrf: str
    expires: float


@dataclass
class Sessions:
    """Browser sessions in memory, keyed by a random id (the cookie's value)."""

    ttl_seconds: float
    _by_id: dict[str, Session] = field(default_factory=dict)

    def open(self, principal: Principal) -> tuple[str, Session]:
        self._expire()
        sid = secrets.token_urlsafe(32)
        session = Session(Principal(principal.name, principal.role, principal.token_id, "session"),
                          secrets.token_urlsafe(32), time.monotonic() + self.ttl_seconds)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._by_id.get(sid)
        if s is None or s.expires < time.monotonic():
            self._by_id.pop(sid, None)
            return None
        return s

    def close(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [k for k, s in self._by_id.items() if s.expires < now]:
            del self._by_id[sid]


class LoginLimiter:
    """Login attempts per client address (and overall), as token buckets: guessing tokens stays slow."""

    def __init__(self, per_minute: float, burst: float = 5.0) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.buckets: dict[str, TokenBucket] = {}
        self.overall = TokenBucket(per_minute * 10, burst * 10)

    def wait_seconds(self, client: str) -> float:
        """0 when this attempt may proceed, else the seconds until one may."""
        if len(self.buckets) > 10_000:  # bounded memory under a spray of addresses
            self.buckets.clear()
        bucket = self.buckets.setdefault(client, TokenBucket(self.per_minute, self.burst))
        wait = bucket.take()
        if wait:
            return wait
        return self.overall.take()


def csrf_ok(session: Session, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(session.csrf, supplied or "")
