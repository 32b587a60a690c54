"""Ownership rules applied to an issue's facts: who owns it (``ERRSTREAM_OWNERSHIP_RULES``).

The facts come from one stored event of the issue: the file paths and modules of its
frames, its service and tags. Patterns are shell-style (``fnmatch``), case-sensitive,
and the first matching rule wins, as in Sentry's ownership rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from schemas.ownership import OwnershipRule


@dataclass
class IssueFacts:
    service: str = ""
    paths: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


def owner_for(rules: list[OwnershipRule], facts: IssueFacts) -> str | None:
    for rule in rules:
        if rule.kind == "service" and fnmatchcase(facts.service, rule.pattern):
            return rule.owner
        if rule.kind == "path" and any(fnmatchcase(p, rule.pattern) for p in facts.paths):
            return rule.owner
        if rule.kind == "module" and any(fnmatchcase(m, rule.pattern) for m in facts.modules):
            return rule.owner
        if rule.kind == "tag":
            key, _, value = rule.pattern.partition("=")
            if key in facts.tags and fnmatchcase(facts.tags[key], value or "*"):
                return rule.owner
    return None
