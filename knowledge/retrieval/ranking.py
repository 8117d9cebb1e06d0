"""The best rows of a ranking, optionally one per group (the pieces of one section).

A document section longer than `max_chars` is cut into pieces, each its own passage.
When two pieces of one section both rank high, the second adds nothing the first does
not lead to, and takes a place another section could have had: with `groups`, only
the best piece of each group is kept, and the next group's best fills the place.

Example:
    >>> import numpy as np
    >>> best_rows(np.array([0.9, 0.8, 0.7]), 2).tolist()
    [0, 1]
    >>> best_rows(np.array([0.9, 0.8, 0.7]), 2, groups=np.array([0, 0, 1])).tolist()
    [0, 2]
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def best_rows(rank: np.ndarray, top_k: int, *, groups: np.ndarray | None = None) -> np.ndarray:
    """The rows of the `top_k` highest finite ranks, best first (ties: lower row first);
    with `groups` (a group number per row), no two rows of one group."""
    if groups is None:
        return _best(rank, top_k)
    finite = int(np.isfinite(rank).sum())
    order = np.argsort(-rank, kind="stable")[:finite]
    _, first = np.unique(groups[order], return_index=True)
    return order[np.sort(first)][:top_k]


def _best(rank: np.ndarray, top_k: int) -> np.ndarray:
    n = len(rank)
    k = min(top_k, int(np.isfinite(rank).sum()))
    best = np.argpartition(-rank, k - 1)[:k] if k < n else np.arange(n)
    return best[np.argsort(-rank[best], kind="stable")][:k]


def group_numbers(keys: Sequence[Hashable]) -> np.ndarray:
    """A number per key, equal for equal keys (in order of first appearance)."""
    seen: dict[Hashable, int] = {}
    return np.fromiter((seen.setdefault(k, len(seen)) for k in keys), np.int64, count=len(keys))
