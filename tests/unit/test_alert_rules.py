"""Alert rules as code: what a rules file may say, where its mistakes are, and how rules route alerts."""

from __future__ import annotations

import pytest

from producers.synthetic import synthetic_alert
from schemas.alert_rules import AlertRulesError, parse_alert_rules
from sinks.derived_alerts.alert_rules import fires, route, rule_alert

GOOD = """
[[rules]]
name = "billing-error-rate"
when = "error_rate"
service = "billing*"
window_minutes = 10
threshold = 5.0
severity = "critical"
destinations = ["oncall"]

[[rules]]
name = "new-in-checkout"
when = "new_issue"
service = "checkout"
severity = "warning"
destinations = ["team-mail"]
"""


def test_a_good_file_parses() -> None:
    rules = parse_alert_rules(GOOD)
    assert [r.name for r in rules.rules] == ["billing-error-rate", "new-in-checkout"]


@pytest.mark.parametrize(("text", "expected"), [
    ('[[rules]]\nname = "x"\nwhen = "error_rate"\n', "line 1 (rule 1): rule: a error_rate rule needs a threshold above 0"),
    (GOOD + '\n[[rules]]\nname = "late"\nwhen = "count"\nthreshold = 10\nseverity = "loud"\n', "line 18 (rule 3): severity"),
    (GOOD + '\n[[rules]]\nname = "typo"\nwhen = "count"\nthreshhold = 10\n', "line 18 (rule 3): threshhold: Extra inputs"),
    ('[[rules]]\nname = "x"\nwhen = "count"\nthreshold = \n', "line 4"),
])
def test_a_mistake_is_refused_with_its_line(text: str, expected: str) -> None:
    with pytest.raises(AlertRulesError) as err:
        parse_alert_rules(text)
    assert any(expected in p for p in err.value.problems), err.value.problems


def test_routed_rules_set_severity_and_destinations_of_detection_alerts() -> None:
    rules = parse_alert_rules(GOOD)
    alert = synthetic_alert(kind="new_issue", service="checkout", severity="error")
    routed = route(alert, rules)
    assert routed.severity == "warning" and routed.details["destinations"] == ["team-mail"]
    unmatched = synthetic_alert(kind="new_issue", service="billing")
    assert route(unmatched, rules) is unmatched  # no rule for billing's new issues: unchanged
    other = synthetic_alert(kind="spike", service="checkout")
    assert route(other, rules) is other


def test_a_measured_rule_fires_once_per_cooldown_period() -> None:
    rule = parse_alert_rules(GOOD).rules[0]
    assert fires(rule, 5.1) and not fires(rule, 5.0)
    first = rule_alert(rule, "billing", "billing", 12.5, now=1_000_000.0)
    again = rule_alert(rule, "billing", "billing", 13.0, now=1_000_000.0 + 60)
    later = rule_alert(rule, "billing", "billing", 13.0, now=1_000_000.0 + 31 * 60)
    assert first.alert_id == again.alert_id != later.alert_id
    assert first.kind == "rule" and first.severity == "critical" and first.details["destinations"] == ["oncall"]
    assert first.title == "billing-error-rate: 12.50 % errored in 10 min"
