"""ANN at scale: HNSW over N x 384 vectors, single-thread query latency and recall@10.

Builds the index type `deskbot ingest` picks for large collections (HNSW, with the
parameters in `deskbot.knowledge.indexing.index`), then sweeps efSearch and reports, for each,
the median/p95 single-query latency with ONE thread and recall@10 against exact search.
Also reports build time, memory and exact search latency for comparison.

The vectors are synthetic. Uniform random vectors in 384 dimensions have no
neighbourhood structure at all (every point is about equally far from every other), so
they say nothing about real embeddings; these are drawn like sentence embeddings are
shaped: a mixture of clusters in a low-dimensional latent space (--latent-dim),
mapped linearly into 384 dimensions with isotropic noise, and L2-normalised. Queries
are fresh draws from the same distribution, not base vectors.

    python -m benchmarks.performance.ann_scale                      # 1M x 384 (several minutes)
    python -m benchmarks.performance.ann_scale --n 100000 --queries 300

Prints one JSON object on stdout; progress on stderr; a recall/latency plot PNG under
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks.common import RESULTS, add_numbers, log, parser
from deskbot.knowledge.indexing.index import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def synthetic(
    n: int, dim: int, latent_dim: int, clusters: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Normalised vectors with low intrinsic dimension, made in chunks to bound memory."""
    mix = np.random.default_rng(12345)  # the same "world" for base and query draws
    centres = mix.standard_normal((clusters, latent_dim)).astype(np.float32)
    proj = (mix.standard_normal((latent_dim, dim)) / np.sqrt(latent_dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        z = centres[rng.integers(0, clusters, m)] + 0.5 * rng.standard_normal(
            (m, latent_dim), dtype=np.float32
        )
        x = z @ proj + noise * rng.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s : s + m] = x
    return out


def parse_args() -> argparse.Namespace:
    ap = parser(__doc__)
    add_numbers(ap, n=1_000_000, dim=384, queries=1000, k=10)  # the data and the queries
    add_numbers(ap, latent_dim=64, clusters=2000, noise=0.1)  # how the vectors cluster
    add_numbers(ap, M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)  # the HNSW graph
    ap.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 48, 64, 96, 128, 192, 256])
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    add_numbers(ap, exact_queries=20, seed=0)
    ap.add_argument("--plot", type=Path, default=RESULTS / "ann_scale.png")
    return ap.parse_args()


def exact_search(
    args: argparse.Namespace, base: np.ndarray, queries: np.ndarray
) -> tuple[np.ndarray, list[float]]:
    """The exact top-k of every query (all threads), and single-query latencies (one)."""
    faiss.omp_set_num_threads(args.build_threads)
    log("exact ground truth (flat inner product, all threads)")
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(base)
    t = time.perf_counter()
    _, truth = flat.search(queries, args.k)
    log(f"ground truth in {time.perf_counter() - t:.1f}s")
    faiss.omp_set_num_threads(1)
    exact_ms = []
    for i in range(min(args.exact_queries, args.queries)):
        t = time.perf_counter()
        flat.search(queries[i : i + 1], args.k)
        exact_ms.append((time.perf_counter() - t) * 1000)
    return truth, exact_ms


def build_hnsw(args: argparse.Namespace, base: np.ndarray) -> tuple[Any, dict[str, float | None]]:
    """The HNSW index of `base`, and what building it cost (seconds, MB)."""
    log(
        f"building HNSW M={args.M} efConstruction={args.ef_construction} "
        f"with {args.build_threads} threads"
    )
    faiss.omp_set_num_threads(args.build_threads)
    rss_before = rss_mb()
    index = faiss.IndexHNSWFlat(args.dim, args.M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = args.ef_construction
    t = time.perf_counter()
    for s in range(0, args.n, 100_000):
        index.add(base[s : s + 100_000])
        log(f"  added {min(s + 100_000, args.n)} ({time.perf_counter() - t:.0f}s)")
    build_s = time.perf_counter() - t
    index_mb = rss_mb() - rss_before
    serialized_mb = len(faiss.serialize_index(index)) / 2**20 if args.n <= 2_000_000 else None
    log(f"built in {build_s:.1f}s, +{index_mb:.0f} MB resident")
    return index, {"build_s": build_s, "index_mb": index_mb, "serialized_mb": serialized_mb}


def sweep_ef(
    args: argparse.Namespace, index: Any, queries: np.ndarray, truth: np.ndarray
) -> list[dict[str, Any]]:
    """Recall and single-thread latency at each `--ef-search`."""
    faiss.omp_set_num_threads(1)
    sweep = []
    for ef in args.ef_search:
        index.hnsw.efSearch = ef
        for i in range(min(50, args.queries)):  # warm caches
            index.search(queries[i : i + 1], args.k)
        lat = np.empty(args.queries)
        found = np.empty((args.queries, args.k), dtype=np.int64)
        for i in range(args.queries):
            t = time.perf_counter()
            _, rows = index.search(queries[i : i + 1], args.k)
            lat[i] = (time.perf_counter() - t) * 1000
            found[i] = rows[0]
        recall = float(
            np.mean([len(set(found[i]) & set(truth[i])) / args.k for i in range(args.queries)])
        )
        row = {
            "efSearch": ef,
            "recall_at_10": round(recall, 4),
            "median_ms": round(float(np.median(lat)), 3),
            "p95_ms": round(float(np.percentile(lat, 95)), 3),
        }
        log(f"  {row}")
        sweep.append(row)
    return sweep


def plot(args: argparse.Namespace, sweep: list[dict[str, Any]], exact_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["median_ms"] for r in sweep], [r["recall_at_10"] for r in sweep], "o-")
    for r in sweep:
        ax.annotate(f"ef={r['efSearch']}", (r["median_ms"], r["recall_at_10"]), fontsize=7)
    ax.axhline(args.target_recall, color="grey", ls="--", lw=0.8)
    ax.axvline(2.0, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("median single-query latency, 1 thread (ms)")
    ax.set_ylabel(f"recall@{args.k} vs exact")
    ax.set_title(f"HNSW M={args.M}, {args.n:,} x {args.dim} (exact: {exact_ms} ms)")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)


def main() -> None:
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    rss0 = rss_mb()
    log(f"generating {args.n} x {args.dim} synthetic vectors")
    base = synthetic(args.n, args.dim, args.latent_dim, args.clusters, args.noise, rng)
    queries = synthetic(args.queries, args.dim, args.latent_dim, args.clusters, args.noise, rng)
    rss_data = rss_mb()
    truth, exact_ms = exact_search(args, base, queries)
    index, built = build_hnsw(args, base)
    sweep = sweep_ef(args, index, queries, truth)
    build_s, index_mb, serialized_mb = built["build_s"], built["index_mb"], built["serialized_mb"]

    ok = [r for r in sweep if r["recall_at_10"] >= args.target_recall]
    chosen = min(ok, key=lambda r: r["median_ms"]) if ok else None
    result = {
        "benchmark": "ann_scale",
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "k": args.k,
        "data": {
            "kind": "synthetic clustered, low intrinsic dimension",
            "latent_dim": args.latent_dim,
            "clusters": args.clusters,
            "noise": args.noise,
        },
        "index": {"type": "IndexHNSWFlat (inner product)", "M": args.M},
        "efConstruction": args.ef_construction,
        "build_threads": args.build_threads,
        "build_s": round(build_s, 1),
        "memory_mb": {
            "vectors_float32": round(args.n * args.dim * 4 / 2**20, 1),
            "index_resident_delta": round(index_mb, 1),
            "index_serialized": round(serialized_mb, 1) if serialized_mb else None,
            "process_rss_peak_now": round(rss_mb(), 1),
            "data_generation_delta": round(rss_data - rss0, 1),
        },
        "search_threads": 1,
        "exact_single_query_median_ms": round(float(np.median(exact_ms)), 2),
        "sweep": sweep,
        "target": {"recall_at_10": args.target_recall, "median_ms": 2.0},
        "chosen": chosen,
        "default_efSearch": HNSW_EF_SEARCH,
        "meets_target": bool(chosen and chosen["median_ms"] <= 2.0),
        "cpu": os.cpu_count(),
    }
    try:
        plot(args, sweep, result["exact_single_query_median_ms"])
        result["plot"] = str(args.plot)
    except Exception as exc:  # the numbers matter more than the picture
        log(f"no plot: {exc}")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
