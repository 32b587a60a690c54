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


def test_a_destination_that_is_not_configured_is_refused() -> None:
    """Before: ``destinations = ["oncal-mail"]`` passed ``rules check`` and its alerts went nowhere, silently."""
    typo = GOOD.replace('["team-mail"]', '["oncal-mail"]')
    with pytest.raises(AlertRulesError) as err:
        parse_alert_rules(typo, {"oncall", "team-mail"})
    assert err.value.problems == ["line 11 (rule 2): destinations: 'oncal-mail' is not a configured destination "
                                  "(configured: oncall, team-mail)"]
    assert parse_alert_rules(GOOD, {"oncall", "team-mail"}).rules  # every name known: accepted


def test_every_mistake_is_reported_in_one_pass() -> None:
    """Before: the duplicate name and the cross-field mistake showed only once the field errors were fixed."""
    text = GOOD + """
[[rules]]
name = "new-in-checkout"
when = "error_rate"
threshold = 0
severity = "loud"
destinations = ["nowhere"]
"""
    with pytest.raises(AlertRulesError) as err:
        parse_alert_rules(text, {"oncall", "team-mail"})
    problems = "\n".join(err.value.problems)
    assert "line 18 (rule 3): severity:" in problems
    assert "line 18 (rule 3): rule: a error_rate rule needs a threshold above 0" in problems
    assert "line 18 (rule 3): destinations: 'nowhere' is not a configured destination" in problems
    assert "line 18: name: rule names must be unique: 'new-in-checkout' also at line 11" in problems


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


def test_a_destination_whose_filters_drop_the_rules_alerts_is_refused() -> None:
    """A rule routing warnings to a pager that takes only critical alerts would page nobody, silently."""
    from schemas.alert_rules import filtered_destinations
    from schemas.notifications import EmailDestination, WebhookDestination

    rules = parse_alert_rules(GOOD)
    pager = WebhookDestination(name="oncall", url="https://pager.example/x", min_severity="critical")  # type: ignore[arg-type]
    mail = EmailDestination(name="team-mail", smtp_host="smtp.example.com", sender="e@example.com",
                            recipients=["t@example.com"], kinds=["spike"])
    assert filtered_destinations(rules, [pager, mail]) == [
        "rule new-in-checkout: destination 'team-mail' drops its new_issue alerts of severity warning "
        "(min_severity warning, kinds ['spike'])"]
    pager_warn = WebhookDestination(name="oncall", url="https://pager.example/x", min_severity="warning")  # type: ignore[arg-type]
    mail_all = EmailDestination(name="team-mail", smtp_host="smtp.example.com", sender="e@example.com",
                                recipients=["t@example.com"])
    assert filtered_destinations(rules, [pager_warn, mail_all]) == []


RECOVERY = """
[[rules]]
name = "payment-retries"
when = "recovery_rate"
service = "payment"
method = "retry"
window_minutes = 10
threshold = 80.0
min_attempts = 20
"""


def test_a_recovery_rate_rule_fires_when_too_few_recoveries_succeed() -> None:
    rule = parse_alert_rules(RECOVERY).rules[0]
    assert (rule.method, rule.min_attempts) == ("retry", 20)
    assert fires(rule, 79.9) and not fires(rule, 80.0) and not fires(rule, 100.0)
    alert = rule_alert(rule, "payment", "payment", 62.5, now=1_000_000.0)
    assert alert.title == "payment-retries: 62.50 % of retry attempts succeeded in 10 min"


@pytest.mark.parametrize(("change", "expected"), [
    ("threshold = 80.0", "threshold = 150.0"),
    ("threshold = 80.0", "threshold = 0"),
    ('method = "retry"', 'method = "Retry Now"'),
    ("min_attempts = 20", "min_attempts = 0"),
    ('when = "recovery_rate"', 'when = "count"'),  # method on a rule that is not about recovery
])
def test_hostile_recovery_rate_rules_are_refused_with_their_line(change: str, expected: str) -> None:
    with pytest.raises(AlertRulesError) as err:
        parse_alert_rules(RECOVERY.replace(change, expected))
    assert err.value.problems and all(p.startswith("line 2 (rule 1)") for p in err.value.problems), err.value.problems
