"""How well clusters match known categories: NMI, ARI and clustering accuracy.

Outliers (cluster `-1`) count as errors for accuracy and as one extra cluster of their
own for NMI and ARI, so that leaving a message out is never free.

Example:
    >>> round(clustering_accuracy(["a", "a", "b"], [1, 1, 0]), 3)
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OUTLIER = -1


@dataclass(frozen=True)
class Scores:
    """Agreement of clusters with categories, each a fraction in [0, 1] (ARI may dip below)."""

    nmi: float
    ari: float
    acc: float
    outliers: int


def _codes(values: Sequence[object]) -> np.ndarray:
    _, codes = np.unique(np.asarray([str(v) for v in values]), return_inverse=True)
    return np.asarray(codes, dtype=np.int64)


def clustering_accuracy(truth: Sequence[object], clusters: Sequence[int]) -> float:
    """Share of messages whose cluster maps to their category under the best one-to-one
    matching of clusters to categories (Hungarian); outliers are errors."""
    from scipy.optimize import linear_sum_assignment

    if len(truth) != len(clusters):
        raise ValueError(f"{len(truth)} categories but {len(clusters)} cluster labels")
    if not len(truth):
        return 0.0
    t = _codes(truth)
    c = np.asarray(clusters, dtype=np.int64)
    kept = c != OUTLIER
    if not kept.any():
        return 0.0
    _, c_codes = np.unique(c[kept], return_inverse=True)
    table = np.zeros((int(c_codes.max()) + 1, int(t.max()) + 1), dtype=np.int64)
    np.add.at(table, (c_codes, t[kept]), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(t))


def score(truth: Sequence[object], clusters: Sequence[int]) -> Scores:
    """NMI, ARI and accuracy of `clusters` (ints, `-1` an outlier) against `truth`."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    t = _codes(truth)
    c = np.asarray(clusters, dtype=np.int64)
    return Scores(
        nmi=float(normalized_mutual_info_score(t, c)),
        ari=float(adjusted_rand_score(t, c)),
        acc=clustering_accuracy(truth, clusters),
        outliers=int((c == OUTLIER).sum()),
    )
