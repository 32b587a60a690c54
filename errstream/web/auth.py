"""Who may use ``errstream web``: API tokens with roles, browser sessions, CSRF, login rate limits.

Tokens live hashed in a JSON file of mode 0600 under ``ERRSTREAM_HOME``
(``web-tokens.json``, or ``ERRSTREAM_WEB_TOKENS_FILE``): a file, not a topic, because
tokens are secrets of one deployment's web app, must be revocable by deleting a line,
and should not be readable by everyone who can read Kafka. A token is
``est_<id>_<secret>`` with 32 random bytes of secret; only SHA-256 of the whole token is
stored (a slow password hash buys nothing for 256-bit random secrets) and compared in
constant time. The file is re-read when it changes, so ``errstream web token create``
takes effect without a restart.

Browser sessions are signed cookies (HttpOnly, SameSite=Lax): the token's id, the expiry and
a random nonce, with an HMAC-SHA256 under the session key, so they survive a restart of the
web app. The key is ``ERRSTREAM_WEB_SESSION_KEY`` when configured, else 32 random bytes kept
in ``web-session-key`` beside the tokens file (mode 0600, created on first start). The
principal is looked up in the tokens file on every request: revoking a token ends its
sessions at once, and a role change applies at once. Logging out records the nonce as
closed (``web-sessions-closed.json``, 0600, until the session would have expired anyway).
Every form carries the session's CSRF token (derived from the cookie with the key); a
cookie-authenticated request that changes anything without it is refused (403).
Bearer-token requests need no CSRF token: browsers never attach them on their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson

from errstream_core.token_bucket import TokenBucket

Role = Literal["viewer", "member", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "member", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
TOKEN_PREFIX = "est_"
log = logging.getLogger("errstream.web")


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
        _write_private(self.path, orjson.dumps({"tokens": list(tokens.values())}, option=orjson.OPT_INDENT_2))
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

    def principal(self, token_id: str) -> Principal | None:
        """The token's current name and role, by id (a session's principal); None once it is revoked."""
        with self._lock:
            entry = self._load().get(token_id)
        if entry is None:
            return None
        role = entry["role"]
        return Principal(name=entry["name"], role=role if role in ROLES else "viewer", token_id=token_id)  # type: ignore[arg-type]

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


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 (secrets and what only this deployment should read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def session_key(path: Path, configured: str | None = None) -> bytes:
    """The key sessions are signed with: the configured one, else the one kept at ``path`` (made on first use).

    A key file others can read is narrowed to 0600 (with a warning): anyone holding the key can forge sessions.
    """
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("web: %s was readable by others (mode %o); narrowed to 0600", path.name, mode)
            os.chmod(path, 0o600)
        key = bytes.fromhex(path.read_text().strip())
        if len(key) >= 32:
            return key
        log.warning("web: %s holds no usable key; a new one is made (open sessions end)", path.name)
    except FileNotFoundError:
        pass
    except ValueError:
        log.warning("web: %s holds no usable key; a new one is made (open sessions end)", path.name)
    key = secrets.token_bytes(32)
    _write_private(path, key.hex().encode())
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Session:
    principal: Principal
    csrf: str
    expires: float  # wall-clock (Unix) time


class Sessions:
    """Browser sessions as signed cookies: ``s1.<token id>.<expires>.<nonce>.<signature>``.

    Nothing of an open session is kept in memory, so a restart (or a second web process with the same key)
    keeps everyone logged in. ``tokens`` gives the principal its current name and role, and None once revoked.
    """

    def __init__(self, ttl_seconds: float, key: bytes, tokens: TokenStore, closed_path: Path | None = None) -> None:
        self.ttl_seconds = ttl_seconds
        self._key = hashlib.sha256(b"session\0" + key).digest()
        self._csrf_key = hashlib.sha256(b"csrf\0" + key).digest()
        self.flash_key = hashlib.sha256(b"flash\0" + key).digest()
        self.tokens = tokens
        self.closed_path = closed_path
        self._closed: dict[str, float] = {}  # nonce -> when the session would have expired
        self._closed_mtime: float | None = None
        self._lock = threading.Lock()

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def _session(self, principal: Principal, body: str, expires: float) -> Session:
        csrf = _b64(hmac.new(self._csrf_key, body.encode(), hashlib.sha256).digest())
        return Session(Principal(principal.name, principal.role, principal.token_id, "session"), csrf, expires)

    def open(self, principal: Principal) -> tuple[str, Session]:
        expires = int(time.time() + self.ttl_seconds)
        body = f"s1.{principal.token_id}.{expires}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._sign(body)}", self._session(principal, body, expires)

    def get(self, sid: str | None) -> Session | None:
        """The session a cookie stands for: None if forged, expired, closed, or its token revoked."""
        if not sid or len(sid) > 300:
            return None
        body, _, sig = sid.rpartition(".")
        parts = body.split(".")
        if len(parts) != 4 or parts[0] != "s1" or not hmac.compare_digest(self._sign(body), sig):
            return None
        try:
            expires = int(parts[2])
        except ValueError:
            return None
        if expires < time.time() or parts[3] in self._closed_now():
            return None
        principal = self.tokens.principal(parts[1])
        return None if principal is None else self._session(principal, body, expires)

    def close(self, sid: str | None) -> None:
        """Log out: the cookie's nonce is closed for good (kept on disk until the session would have expired)."""
        if self.get(sid) is None:
            return
        _, _, expires, nonce = str(sid).rpartition(".")[0].split(".")
        with self._lock:
            closed = {n: t for n, t in self._closed_now().items() if t >= time.time()}
            closed[nonce] = float(expires)
            self._closed = closed
            if self.closed_path is not None:
                _write_private(self.closed_path, orjson.dumps(closed))
                self._closed_mtime = None

    def _closed_now(self) -> dict[str, float]:
        if self.closed_path is None:
            return self._closed
        try:
            mtime = self.closed_path.stat().st_mtime
        except FileNotFoundError:
            return self._closed
        if mtime != self._closed_mtime:
            try:
                doc = orjson.loads(self.closed_path.read_bytes() or b"{}")
                self._closed = {str(k): float(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
            except (orjson.JSONDecodeError, ValueError, TypeError):
                log.warning("web: %s is unreadable; ignored", self.closed_path.name)
                self._closed = {}
            self._closed_mtime = mtime
        return self._closed


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
