"""Rules files for ``errstream detect backtest``: variants apply, hostile files are refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.backtest import BacktestRule, load_rules, replay, sparkline
from stream_processors.detection_rules.config import DetectionConfig

BASE = DetectionConfig()


def _load(tmp_path: Path, text: str) -> list[BacktestRule]:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return load_rules(path, BASE)


def test_without_a_file_the_rule_is_the_settings() -> None:
    [rule] = load_rules(None, BASE)
    assert rule.name == "settings" and rule.cfg == BASE


def test_a_variant_changes_only_what_it_names(tmp_path: Path) -> None:
    same, strict = _load(tmp_path, '[[rule]]\nname = "same"\n\n[[rule]]\nname = "strict"\nfactor = 4\n'
                                   'rise_minutes = 6\nseasonal = false\ncooldown_seconds = 60\n')
    assert same.cfg == BASE
    assert (strict.cfg.spike.factor, strict.cfg.spike.rise_minutes, strict.cfg.spike.seasonal) == (4.0, 6, False)
    assert strict.cfg.cooldown == 60.0 and strict.cfg.spike.z == BASE.spike.z


@pytest.mark.parametrize(("text", "reason"), [
    ("not toml = [", "rules.toml:"),
    ("name = 'x'\n", "expected one or more [[rule]] tables"),
    ("[[rule]]\nfactr = 4\n", "unknown key 'factr'"),
    ("[[rule]]\nfactor = 'high'\n", "factor must be a number"),
    ("[[rule]]\nseasonal = 1\n", "seasonal must be true or false"),
    ("[[rule]]\nrise_minutes = 1000000000\n", "rise_minutes = 1000000000 is out of range"),
    ("[[rule]]\nfloor = 0\n", "floor = 0 is out of range"),
    ("[[rule]]\nfactor = nan\n", "factor = nan is out of range"),
    ("[[rule]]\nname = 'a'\n[[rule]]\nname = 'a'\n", "rule names must be unique"),
    ("[[rule]]\nname = ''\n", "name must be a short string"),
])
def test_a_bad_rules_file_is_refused_with_its_reason(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ValueError) as exc:
        _load(tmp_path, text)
    assert reason in str(exc.value)


def test_replay_and_plot_of_a_burst() -> None:
    [rule] = load_rules(None, BASE)
    start = 1_795_392_000
    counts = [(start + 60 * i, 300 if i == 100 else 20) for i in range(200)]
    alerts = replay(rule, "billing", counts)
    assert [(a.pattern, a.minute, a.count) for a in alerts] == [("burst", start + 6_000, 300)]
    assert sparkline([0, 5, 10]) == "▁▄█" and sparkline([0, 0]) == "▁▁"
