"""Alert rules as code: a TOML file, validated here, published so ``errstream notify`` switches without a restart.

```toml
[[rules]]
name = "billing-error-rate"
when = "error_rate"          # count | errors_per_minute | error_rate | level | recovery_rate | new_issue
service = "billing"          #   | regression | spike | error_chain | threshold | escalation | escalating
                             #   (service: a glob; default: all)
window_minutes = 10
threshold = 5.0              # percent of sessions/requests that errored
severity = "critical"
cooldown_minutes = 30
destinations = ["oncall"]    # names from ERRSTREAM_ALERT_WEBHOOKS / ERRSTREAM_ALERT_EMAILS; empty = all

[[rules]]
name = "payment-retries"
when = "recovery_rate"       # fires when fewer than `threshold` % of recovery attempts succeed
service = "payment"
method = "retry"             # optional: one recovery method
window_minutes = 10
threshold = 80.0
min_attempts = 20            # not on a handful of attempts
```

Measured conditions (``count``, ``errors_per_minute``, ``error_rate``, ``level``, ``recovery_rate``) are
evaluated on ClickHouse's true counts every ``ERRSTREAM_ALERT_RULES_INTERVAL_SECONDS`` and raise ``rule`` alerts.
Detection's kinds (``new_issue``, ``regression``, ``spike``, ``error_chain``, ``threshold``,
``escalation``, ``escalating``) route the alerts the worker raises: the matching rule sets their severity and
destinations, and its cooldown holds back repeats per issue. The ``ERRSTREAM_ALERT_*`` environment
variables keep configuring detection itself.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.alerts import AlertEvent, Severity
from schemas.limits import RECOVERY_METHOD_PATTERN
from schemas.notifications import EmailDestination, WebhookDestination

MEASURED = ("count", "errors_per_minute", "error_rate", "level", "recovery_rate")
ROUTED = ("new_issue", "regression", "spike", "error_chain", "threshold", "escalation", "escalating")
RuleKind = Literal["count", "errors_per_minute", "error_rate", "level", "recovery_rate", "new_issue", "regression", "spike",
                   "error_chain", "threshold", "escalation", "escalating"]


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    when: RuleKind
    service: str = Field(default="*", min_length=1, max_length=200, description="glob over service names")
    issue: str | None = Field(default=None, pattern=r"^[0-9a-f]{8,32}$", description="one issue (fingerprint prefix)")
    window_minutes: int = Field(default=5, ge=1, le=1_440)
    threshold: float = Field(default=0, ge=0, allow_inf_nan=False,
                             description="count, errors per minute or percent (error_rate, recovery_rate)")
    level: Literal["debug", "info", "warning", "error", "critical"] = "error"
    severity: Severity = "error"
    cooldown_minutes: int = Field(default=30, ge=0, le=10_080)
    destinations: list[str] = Field(default_factory=list, max_length=50)
    method: str | None = Field(default=None, pattern=RECOVERY_METHOD_PATTERN,
                               description="recovery_rate: only this recovery method")
    min_attempts: int = Field(default=10, ge=1, le=1_000_000_000,
                              description="recovery_rate: fire only with at least this many attempts in the window")

    @model_validator(mode="after")
    def _sensible(self) -> AlertRule:
        if self.method is not None and self.when != "recovery_rate":
            raise ValueError("method applies to recovery_rate rules only")
        if problems := _combination_problems(self.when, self.threshold, self.issue):
            raise ValueError(problems[0])
        return self


def _combination_problems(when: object, threshold: object, issue: object) -> list[str]:
    """Checks across fields; also run on a rule whose fields failed, so one pass reports everything."""
    problems = []
    number = threshold if isinstance(threshold, int | float) and not isinstance(threshold, bool) else None
    if when in ("count", "errors_per_minute", "error_rate", "recovery_rate") and number is not None and number <= 0:
        problems.append(f"a {when} rule needs a threshold above 0")
    if when in ("error_rate", "recovery_rate") and number is not None and number > 100:
        problems.append(f"a {when} threshold is a percentage (0-100]")
    if when == "error_rate" and issue:
        problems.append("error_rate is per service (sessions have no issue)")
    return problems


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


def _configured(known: Collection[str]) -> str:
    return ", ".join(sorted(known)) or "none: set ERRSTREAM_ALERT_WEBHOOKS / ERRSTREAM_ALERT_EMAILS"


def unknown_destinations(rules: AlertRules, known: Collection[str]) -> list[str]:
    """``rule NAME: destination 'X' is not configured`` for every name a rule routes to that does not exist."""
    return [f"rule {r.name}: destination {d!r} is not configured (configured: {_configured(known)})"
            for r in rules.rules for d in r.destinations if d not in known]


def filtered_destinations(rules: AlertRules, destinations: Sequence[WebhookDestination | EmailDestination]) -> list[str]:
    """Rules that route to a destination whose own filters (``min_severity``, ``kinds``) drop every alert the
    rule routes there: as silent as a misspelt name, so refused the same way."""
    by_name = {d.name: d for d in destinations}
    problems = []
    for rule in rules.rules:
        kind = rule.when if rule.when in ROUTED else "rule"
        probe = AlertEvent(kind=kind, severity=rule.severity, dedup_key="check", service="check", title="check")
        for name in rule.destinations:
            dest = by_name.get(name)
            if dest is not None and not dest.accepts(probe):
                problems.append(f"rule {rule.name}: destination {name!r} drops its {kind} alerts of severity "
                                f"{rule.severity} (min_severity {dest.min_severity}, kinds {dest.kinds or 'all'})")
    return problems


def parse_alert_rules(text: str, destinations: Collection[str] | None = None) -> AlertRules:
    """The rules of a TOML file, or ``AlertRulesError`` with every problem at once (``line N: reason``).

    Each rule is validated on its own, and the checks across rules (unique names) and against the
    configuration (``destinations``: the names of the configured webhooks and e-mails; None skips the
    check) run whatever else failed, so fixing a file never takes a second round of ``rules check``.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AlertRulesError([str(exc).replace("(at line", "(line")]) from None
    starts = [i for i, line in enumerate(text.splitlines(), start=1) if _TABLE.match(line)]
    problems = [f"line 1: {key}: Extra inputs are not permitted" for key in doc if key != "rules"]
    raw = doc.get("rules", [])
    if not isinstance(raw, list):
        raise AlertRulesError([*problems, "line 1: rules: must be an array of tables ([[rules]])"])
    if len(raw) > 500:
        problems.append(f"line 1: rules: at most 500 rules ({len(raw)} given)")
    rules: list[AlertRule] = []
    names: dict[str, list[str]] = {}
    for i, item in enumerate(raw):
        where = f"line {starts[i]} (rule {i + 1})" if i < len(starts) else f"rule {i + 1}"
        if not isinstance(item, dict):
            problems.append(f"{where}: rule: must be a table")
            continue
        try:
            rules.append(AlertRule.model_validate(item))
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            for err in errors:
                field = ".".join(str(p) for p in err["loc"]) or "rule"
                problems.append(f"{where}: {field}: {err['msg'].removeprefix('Value error, ')}")
            if all(err["loc"] for err in errors):  # fields failed: the cross-field checks did not run yet
                problems += [f"{where}: rule: {p}" for p in
                             _combination_problems(item.get("when"), item.get("threshold", 0), item.get("issue"))]
        if isinstance(item.get("name"), str):
            names.setdefault(item["name"], []).append(where.split(" (")[0])
        wanted = item.get("destinations")
        if destinations is not None and isinstance(wanted, list):
            for name in wanted:
                if isinstance(name, str) and name not in destinations:
                    problems.append(f"{where}: destinations: {name!r} is not a configured destination "
                                    f"(configured: {_configured(destinations)})")
    for name, places in names.items():
        if len(places) > 1:
            problems.append(f"{places[1]}: name: rule names must be unique: {name!r} also at {places[0]}")
    if problems:
        raise AlertRulesError(problems)
    return AlertRules(rules=rules)
