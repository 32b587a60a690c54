"""Ownership rules: which person or team owns an issue (Sentry's ownership rules, in a simpler form).

A rule matches an issue by one fact of its first event and names an owner:
``path`` (a frame's file path), ``module`` (a frame's module), ``service`` or ``tag``
(``tag:key=value``), with shell-style wildcards (``checkout/*``, ``billing.*``). The
first matching rule wins; new issues are assigned to its owner.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class OwnershipRule(BaseModel):
    kind: Literal["path", "module", "service", "tag"]
    pattern: str = Field(min_length=1, max_length=400)  # for tag: "key=value-pattern"
    owner: str = Field(min_length=1, max_length=200)  # a person ("ana") or a team ("#payments")
