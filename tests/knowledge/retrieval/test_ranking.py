"""`best_rows`: the best rows of a ranking, one per group when asked."""

from __future__ import annotations

import numpy as np
import pytest

from deskbot.knowledge.retrieval.ranking import best_rows, group_numbers


def test_without_groups_the_highest_finite_ranks_come_best_first() -> None:
    rank = np.array([0.2, 0.9, -np.inf, 0.9, 0.5])
    assert best_rows(rank, 3).tolist() == [1, 3, 4]  # a tie keeps the lower row first
    assert best_rows(rank, 10).tolist() == [1, 3, 4, 0]  # -inf: never searched


@pytest.mark.parametrize("top_k", [1, 2, 3, 5])
def test_with_groups_each_group_gives_its_best_row_only(top_k: int) -> None:
    rank = np.array([0.95, 0.9, 0.7, 0.85, 0.6, -np.inf])
    groups = group_numbers(["a", "a", "b", "a", "c", "d"])
    expected = [0, 2, 4]  # "a" at its best row; "d" was not searched
    assert best_rows(rank, top_k, groups=groups).tolist() == expected[:top_k]


def test_group_numbers_are_equal_for_equal_keys() -> None:
    numbers = group_numbers([("f", "x"), ("f", "y"), ("f", "x"), ("g", "x")])
    assert numbers.tolist() == [0, 1, 0, 2]
