from __future__ import annotations

import numpy as np

from deskbot.training.discovery.adapt import nearest_neighbours, normalised
from deskbot.training.discovery.clustering import (
    ClusterArgs,
    estimate_k,
    kmeans,
    mark_outliers,
    renumber,
)
from deskbot.training.discovery.scoring import OUTLIER, score


def blobs(k: int, per: int, dim: int = 32, spread: float = 0.15, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = normalised(rng.normal(size=(k, dim)))
    points = np.repeat(centres, per, axis=0) + spread * rng.normal(size=(k * per, dim)) / 4
    return normalised(points)


def test_estimated_k_finds_well_separated_clusters() -> None:
    for k in (4, 9):
        vectors = blobs(k, 40, seed=k)
        best, scores = estimate_k(vectors, ClusterArgs(k_min=2, k_max=15, k_step=1))
        assert best == k, scores
        assert len(scores) == 14


def test_kmeans_recovers_the_blobs() -> None:
    vectors = blobs(5, 30)
    truth = np.repeat(np.arange(5), 30)
    assert score(truth.tolist(), kmeans(vectors, 5).tolist()).acc == 1.0


def test_a_point_far_from_its_cluster_and_tiny_clusters_are_outliers() -> None:
    vectors = blobs(3, 30)
    odd = normalised(np.random.default_rng(9).normal(size=(1, 32)))
    vectors = np.vstack([vectors, odd])
    labels = [*np.repeat(np.arange(3), 30).tolist(), 0]  # the odd point put in cluster 0
    marked = mark_outliers(vectors, np.asarray(labels), ClusterArgs(outlier_z=3.0))
    assert marked[-1] == OUTLIER
    assert (marked[:-1] != OUTLIER).sum() >= 88  # the cluster's own members stay
    tiny = mark_outliers(vectors[:31], np.asarray([0] * 29 + [1, 1]), ClusterArgs(min_size=3))
    assert tiny[-2:].tolist() == [OUTLIER, OUTLIER]


def test_renumber_orders_by_size_and_keeps_outliers() -> None:
    out = renumber([5, 5, OUTLIER, 2, 2, 2, 9])
    assert out.tolist() == [1, 1, OUTLIER, 0, 0, 0, 2]


def test_nearest_neighbours_excludes_itself_and_orders_by_similarity() -> None:
    vectors = normalised(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.5, 0.5]]))
    nn = nearest_neighbours(vectors, 2, cells=8)  # two rows a block
    assert nn[0].tolist() == [1, 3]
    assert nn[2].tolist() == [3, 1]
    assert all(i not in row for i, row in enumerate(nn.tolist()))
    # the blocks change nothing: one row a block, and all rows in one
    assert (nearest_neighbours(vectors, 2, cells=1) == nn).all()
    assert (nearest_neighbours(vectors, 2) == nn).all()


def test_smoothing_pulls_a_borderline_point_to_its_neighbours_side() -> None:
    from deskbot.training.discovery.clustering import smoothed

    left = normalised(np.array([[1.0, 0.1], [1.0, 0.0], [1.0, -0.1]]))
    right = normalised(np.array([[0.0, 1.0], [0.1, 1.0]]))
    border = normalised(np.array([[0.75, 0.7]]))  # a little nearer "right" by angle
    vectors = np.vstack([left, right, border])
    moved = smoothed(vectors, 2)
    assert moved[-1] @ right.mean(0) > vectors[-1] @ right.mean(0)
    assert np.allclose(np.linalg.norm(moved, axis=1), 1.0)
    assert smoothed(vectors, 0) is vectors


def test_discovery_args_leave_the_callers_cluster_args_alone() -> None:
    from deskbot.training.discovery.discover import DiscoveryArgs

    shared = ClusterArgs()
    assert DiscoveryArgs(k=7, cluster=shared).cluster.k == 7
    assert shared.k is None
