from __future__ import annotations

import pytest

from deskbot.training.discovery.scoring import OUTLIER, clustering_accuracy, score


def test_a_relabelled_perfect_clustering_scores_one() -> None:
    truth = ["card", "card", "fee", "fee", "pin", "pin"]
    s = score(truth, [7, 7, 3, 3, 0, 0])
    assert (s.nmi, s.ari, s.acc, s.outliers) == (pytest.approx(1.0), pytest.approx(1.0), 1.0, 0)


def test_accuracy_uses_the_best_one_to_one_matching_not_majority() -> None:
    # Both clusters are mostly "a": majority voting would say 5/6, one-to-one allows
    # only one cluster to be "a", so the best matching is 0->a (3), 1->b (1).
    truth = ["a", "a", "a", "a", "a", "b"]
    assert clustering_accuracy(truth, [0, 0, 0, 1, 1, 1]) == pytest.approx(4 / 6)


def test_outliers_count_as_errors() -> None:
    truth = ["a", "a", "b", "b"]
    s = score(truth, [0, OUTLIER, 1, 1])
    assert s.acc == pytest.approx(3 / 4)
    assert s.outliers == 1
    assert s.nmi < 1.0 and s.ari < 1.0


def test_one_cluster_for_everything_has_no_information() -> None:
    s = score(["a", "b", "c", "a", "b", "c"], [0] * 6)
    assert s.nmi == pytest.approx(0.0) and s.ari == pytest.approx(0.0)
    assert s.acc == pytest.approx(2 / 6)


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="2 categories but 3"):
        clustering_accuracy(["a", "b"], [0, 1, 1])
