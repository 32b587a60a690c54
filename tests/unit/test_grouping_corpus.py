"""The chains and message-only corpus (bench/grouping_corpus.py) groups exactly: one issue per true group."""

from __future__ import annotations

from bench.grouping_corpus import run, scores


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
