"""The chains and message-only corpus (bench/grouping_corpus.py) groups exactly: one issue per true group."""

from __future__ import annotations

from bench.core import java_grouping_us
from bench.grouping_corpus import run, run_platforms, scores


def test_the_corpus_groups_every_event_with_its_true_group() -> None:
    result = run(seed=3, per_group=4)
    assert result["true_groups"] == 15 and result["events"] == 60
    assert (result["grouping_accuracy"], result["pairwise_f1"]) == (1.0, 1.0), result


def test_scores_count_a_split_and_a_merge() -> None:
    assert scores(["a", "a", "b"], ["x", "x", "y"]) == (1.0, 1.0)
    ga, f1 = scores(["a", "a", "b", "b"], ["x", "y", "z", "z"])  # a split
    assert ga == 0.5 and f1 < 1.0
    ga, _ = scores(["a", "b"], ["x", "x"])  # a merge
    assert ga == 0.0


def test_every_platform_of_the_sdk_corpus_meets_its_targets() -> None:
    """The events real SDKs sent from two builds of each app (tests/data/grouping_corpus): one issue per bug."""
    result = run_platforms()
    assert set(result) == {"browser", "csharp", "go", "java", "node", "python", "all"}, result
    for name, r in result.items():
        assert r["grouping_accuracy"] >= 0.97 and r["pairwise_f1"] >= 0.99, (name, r)


def test_the_previous_grouping_version_splits_the_sdk_corpus() -> None:
    """What version 2 fixes: under version 1 the same events split into more issues (the test can fail)."""
    before = run_platforms(version=1)
    assert before["all"]["predicted_groups"] > before["all"]["true_groups"]
    assert before["all"]["grouping_accuracy"] < 0.7, before["all"]


def test_the_java_grouping_benchmark_runs_at_a_tiny_size() -> None:
    figures = java_grouping_us(60)
    assert set(figures) == {"current version", "transition: both versions"}
    assert all(q["p50"] > 0 for q in figures.values())
