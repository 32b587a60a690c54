"""Who may send: per-project DSN public keys, and how fast (a token bucket per project).

Projects come from ``ERRSTREAM_GATEWAY_PROJECTS`` (JSON): ``{"<id>": {"public_key": ...,
"service": ..., "services": [...], "rate_limit": events per second, "burst": ...}}``. A Sentry DSN
``http://<public_key>@host:port/<id>`` addresses one of them.

A key is bound to its service(s): Sentry events get the project's service; our own JSON events
name theirs, and one naming a service the key is not bound to is refused (403), so one leaked or
shared key cannot write into another team's issues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from errstream_core.settings import GatewayProject
from errstream_core.token_bucket import TokenBucket
from producers.gateway.errors import Rejected


@dataclass
class Project:
    id: str
    public_key: str
    service: str
    bucket: TokenBucket | None
    allowed_services: frozenset[str] = frozenset()  # besides `service`; "*" = any

    def check_service(self, service: object) -> None:
        """Refuse (403) an event naming a service this project's key is not bound to."""
        if service == self.service or service in self.allowed_services or "*" in self.allowed_services:
            return
        allowed = ", ".join(sorted({self.service, *self.allowed_services}))
        raise Rejected(403, "service_not_allowed", f"project {self.id}'s key may not send events for service "
                       f"{str(service)[:80]!r} (allowed: {allowed})")

    def admit(self, events: int) -> None:
        if self.bucket is None or events == 0:
            return
        if events > self.bucket.capacity:  # could never pass: say so instead of asking to retry
            raise Rejected(429, "rate_limited", f"{events} events in one request exceed project {self.id}'s burst "
                           f"of {self.bucket.capacity:g}; send smaller batches", {"Retry-After": "1"})
        wait = self.bucket.take(events)
        if wait:
            retry = max(1, math.ceil(wait))
            rate = self.bucket.rate_per_second
            raise Rejected(429, "rate_limited", f"project {self.id} is over its limit of {rate:g} events/s; "
                           f"retry after {retry} s",
                           {"Retry-After": str(retry), "X-Sentry-Rate-Limits": f"{retry}::project"})


class Projects:
    def __init__(self, configured: dict[str, GatewayProject]) -> None:
        self.by_id: dict[str, Project] = {}
        self.by_key: dict[str, Project] = {}
        for pid, cfg in configured.items():
            bucket = None
            if cfg.rate_limit:
                bucket = TokenBucket.per_second(cfg.rate_limit, float(cfg.burst or max(cfg.rate_limit, 1.0)))
            project = Project(str(pid), cfg.public_key, cfg.service or f"project-{pid}", bucket,
                              frozenset(cfg.services))
            self.by_id[project.id] = project
            self.by_key[cfg.public_key] = project

    def authenticate(self, key: str | None, project_id: str | None = None) -> Project:
        if not key:
            raise Rejected(401, "missing_key", "missing public key: send X-Sentry-Auth: Sentry sentry_key=<key>, "
                           "the sentry_key query parameter, or X-Errstream-Key")
        project = self.by_key.get(key)
        if project is None:
            raise Rejected(403, "unknown_key", "unknown public key")
        if project_id is not None and project.id != project_id:
            raise Rejected(403, "wrong_project", f"this key does not belong to project {project_id}")
        return project


def sentry_auth_key(header: str | None) -> str | None:
    """``Sentry sentry_key=abc, sentry_version=7, sentry_client=...`` → ``abc``."""
    if not header:
        return None
    text = header.strip()
    if text[:7].lower() == "sentry ":
        text = text[7:]
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == "sentry_key":
            return value.strip() or None
    return None


def dsn_key(dsn: object) -> str | None:
    """The public key of a DSN found in an envelope header (browser SDKs send no auth header)."""
    if not isinstance(dsn, str) or "://" not in dsn or "@" not in dsn:
        return None
    userinfo = dsn.split("://", 1)[1].split("@", 1)[0]
    return userinfo.split(":", 1)[0] or None
