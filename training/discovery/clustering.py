"""Clusters of embeddings: KMeans, the number of clusters estimated, outliers left out.

The estimate of k (when not given) runs KMeans over a grid of k and keeps the k whose
clustering has the highest silhouette (cosine, on a fixed sample of messages): chosen on
a half of BANKING77's train split, never its test split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from deskbot.training.discovery.scoring import OUTLIER

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class ClusterArgs:
    """How messages are clustered.

    Attributes:
        k: the number of clusters, or None to estimate it.
        k_min, k_max, k_step: the grid the estimate searches.
        estimate_sample: messages the grid's clusterings are fitted on (a random sample
            of them when there are more): the estimate's cost stays flat past it.
        silhouette_sample: messages of those the silhouette is computed on: it is
            quadratic in the sample.
        outlier_z: a message further below its cluster's mean similarity to the
            centroid than this many standard deviations is an outlier.
        min_size: a cluster smaller than this is dissolved into outliers.
        n_init: KMeans restarts.
        seed: KMeans seed.
    """

    k: int | None = None
    k_min: int = 10
    k_max: int = 200
    k_step: int = 10
    estimate_sample: int = 10_000
    silhouette_sample: int = 4000
    outlier_z: float = 3.0
    min_size: int = 3
    n_init: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 2:
            raise ValueError(f"k must be 2 or more, not {self.k}")
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError(f"need 2 <= k_min <= k_max, not {self.k_min}..{self.k_max}")
        if self.k_step < 1:
            raise ValueError(f"k_step must be 1 or more, not {self.k_step}")
        if self.min_size < 1:
            raise ValueError(f"min_size must be 1 or more, not {self.min_size}")


def kmeans(vectors: np.ndarray, k: int, *, n_init: int = 5, seed: int = 0) -> np.ndarray:
    """Cluster labels 0..k-1 of L2-normalised rows (spherical data, Euclidean KMeans)."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(vectors)))
    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return np.asarray(model.fit_predict(vectors), dtype=np.int64)


def estimate_k(
    vectors: np.ndarray, args: ClusterArgs, *, progress: Progress | None = None
) -> tuple[int, dict[int, float]]:
    """The k of the grid with the highest silhouette, and every k's silhouette."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(args.seed)
    if len(vectors) > args.estimate_sample:
        vectors = vectors[rng.choice(len(vectors), size=args.estimate_sample, replace=False)]
    n = len(vectors)
    grid = [k for k in range(args.k_min, args.k_max + 1, args.k_step) if k < n]
    if not grid:
        return max(1, min(args.k_min, n)), {}
    sample = rng.choice(n, size=min(n, args.silhouette_sample), replace=False)
    scores: dict[int, float] = {}
    for i, k in enumerate(grid):
        labels = kmeans(vectors, k, n_init=1, seed=args.seed)
        if len(set(labels[sample].tolist())) > 1:
            scores[k] = float(silhouette_score(vectors[sample], labels[sample], metric="cosine"))
        if progress is not None:
            progress(i + 1, len(grid))
    best = max(scores, key=lambda k: scores[k]) if scores else grid[0]
    return best, scores


def centroids(vectors: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Each cluster's mean direction, L2-normalised (outliers have none)."""
    out: dict[int, np.ndarray] = {}
    for c in sorted(set(labels.tolist()) - {OUTLIER}):
        mean = vectors[labels == c].mean(axis=0)
        out[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


def mark_outliers(vectors: np.ndarray, labels: np.ndarray, args: ClusterArgs) -> np.ndarray:
    """`labels` with messages that fit nowhere set to `OUTLIER`: those far below their
    cluster's usual similarity to its centroid, and the members of tiny clusters."""
    out = labels.copy()
    for c, centre in centroids(vectors, labels).items():
        members = np.flatnonzero(labels == c)
        if len(members) < args.min_size:
            out[members] = OUTLIER
            continue
        sims = vectors[members] @ centre
        cut = sims.mean() - args.outlier_z * sims.std()
        out[members[sims < cut]] = OUTLIER
    return out


def renumber(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Clusters numbered 0.. by size, largest first (outliers stay `OUTLIER`)."""
    arr = np.asarray(labels, dtype=np.int64)
    ids, counts = np.unique(arr[arr != OUTLIER], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    mapping = {int(c): i for i, c in enumerate(order)}
    return np.asarray([mapping.get(int(c), OUTLIER) for c in arr], dtype=np.int64)
