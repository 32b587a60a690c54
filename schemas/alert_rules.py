"""Alert rules as code: a TOML file, validated here, published so ``errstream notify`` switches without a restart.

```toml
[[rules]]
name = "billing-error-rate"
when = "error_rate"          # count | errors_per_minute | error_rate | level | new_issue | regression | spike
service = "billing"          #   | error_chain | threshold | escalation  (glob; default: every service)
window_minutes = 10
threshold = 5.0              # percent of sessions/requests that errored
severity = "critical"
cooldown_minutes = 30
destinations = ["oncall"]    # names from ERRSTREAM_ALERT_WEBHOOKS / ERRSTREAM_ALERT_EMAILS; empty = all
```

Measured conditions (``count``, ``errors_per_minute``, ``error_rate``, ``level``) are evaluated on
ClickHouse's true counts every ``ERRSTREAM_ALERT_RULES_INTERVAL_SECONDS`` and raise ``rule`` alerts.
Detection's kinds (``new_issue``, ``regression``, ``spike``, ``error_chain``, ``threshold``,
``escalation``) route the alerts the worker raises: the matching rule sets their severity and
destinations, and its cooldown holds back repeats per issue. The ``ERRSTREAM_ALERT_*`` environment
variables keep configuring detection itself.
"""

from __future__ import annotations

import re
import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.alerts import Severity

MEASURED = ("count", "errors_per_minute", "error_rate", "level")
ROUTED = ("new_issue", "regression", "spike", "error_chain", "threshold", "escalation")
RuleKind = Literal["count", "errors_per_minute", "error_rate", "level", "new_issue", "regression", "spike",
                   "error_chain", "threshold", "escalation"]


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    when: RuleKind
    service: str = Field(default="*", min_length=1, max_length=200, description="glob over service names")
    issue: str | None = Field(default=None, pattern=r"^[0-9a-f]{8,32}$", description="one issue (fingerprint prefix)")
    window_minutes: int = Field(default=5, ge=1, le=1_440)
    threshold: float = Field(default=0, ge=0, description="count, errors per minute or percent (error_rate)")
    level: Literal["debug", "info", "warning", "error", "critical"] = "error"
    severity: Severity = "error"
    cooldown_minutes: int = Field(default=30, ge=0, le=10_080)
    destinations: list[str] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _sensible(self) -> AlertRule:
        if self.when in ("count", "errors_per_minute", "error_rate") and self.threshold <= 0:
            raise ValueError(f"a {self.when} rule needs a threshold above 0")
        if self.when == "error_rate" and self.threshold > 100:
            raise ValueError("an error_rate threshold is a percentage (0-100]")
        if self.when == "error_rate" and self.issue:
            raise ValueError("error_rate is per service (sessions have no issue)")
        return self


class AlertRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[AlertRule] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _unique(self) -> AlertRules:
        names = [r.name for r in self.rules]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"rule names must be unique: {dupes}")
        return self


class AlertRulesError(ValueError):
    """Every problem of a rules file as ``line N: reason``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_TABLE = re.compile(r"^\s*\[\[\s*rules\s*\]\]")


def parse_alert_rules(text: str) -> AlertRules:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AlertRulesError([str(exc).replace("(at line", "(line")]) from None
    starts = [i for i, line in enumerate(text.splitlines(), start=1) if _TABLE.match(line)]
    try:
        return AlertRules.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = list(err["loc"])
            where = "line 1"
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and loc[1] < len(starts):
                where = f"line {starts[loc[1]]} (rule {loc[1] + 1})"
                loc = loc[2:]
            field = ".".join(str(p) for p in loc) or "rule"
            problems.append(f"{where}: {field}: {err['msg'].removeprefix('Value error, ')}")
        raise AlertRulesError(problems) from None
