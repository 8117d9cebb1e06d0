"""Clusters of embeddings: KMeans, the number of clusters estimated, outliers left out.

The estimate of k (when not given) runs KMeans over a grid of k and scores each
clustering's silhouette (cosine, on a fixed sample of messages). Past the right k the
curve is nearly flat (one KMeans run a k makes it noisy), so the estimate is the
smallest k whose silhouette is within `k_tolerance` of the best: on half of BANKING77's
train split (frozen encoder) the best was k = 100 and the smallest within 0.01 was 70,
for 77 intents. Chosen on the train split, never the test split.
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
        k_tolerance: the estimate is the smallest k whose silhouette is this close to
            the best one's.
        smooth_neighbours: each message is clustered at the mean of itself and the mean
            of this many nearest neighbours (0: as it is). On half of BANKING77's train
            split, 5 scored best of 5, 10 and 20 (NMI +2 points over none).
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
    k_tolerance: float = 0.01
    smooth_neighbours: int = 5
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
        if self.smooth_neighbours < 0:
            raise ValueError(f"smooth_neighbours must be 0 or more, not {self.smooth_neighbours}")
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
    """The smallest k of the grid whose silhouette is within `args.k_tolerance` of the
    best, and every k's silhouette."""
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
    if not scores:
        return grid[0], scores
    top = max(scores.values())
    return min(k for k, v in scores.items() if v >= top - args.k_tolerance), scores


def smoothed(vectors: np.ndarray, neighbours: int) -> np.ndarray:
    """Each row moved halfway to the mean of its `neighbours` nearest rows, re-normalised:
    a message between two intents leans to the one its neighbours are in."""
    from deskbot.training.discovery.adapt import nearest_neighbours, normalised

    if neighbours == 0 or len(vectors) < 3:
        return vectors
    knn = nearest_neighbours(vectors, neighbours)
    return normalised(vectors + vectors[knn].mean(axis=1))


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
