"""A simulated month of the learning loop on BANKING77, night by night.

Start: the 10-shot model (770 examples). Each night agents label `--per-night` logged
turns drawn from the rest of the train split; they are inserted into a real SQLite
store and the real `RetrainJob` runs (fine-tune from live, gate, promote). Reported:
the live model's test accuracy after every night, each candidate's, the decisions, and
a plot. The gate must never promote a model that scores lower than the live one.

    python benchmarks/learning_month.py --nights 10 --per-night 300 \\
        --work var/bench/learning_month --plot var/bench/learning_month/month.png

Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _loop_common import (
    FULL_DATA_ACCURACY,
    banking,
    base_model,
    fresh_registry,
    fresh_store,
    log,
    log_night,
)

from deskbot.bot.intents import TransformerIntentClassifier
from deskbot.training.retrain import PROMOTED, RetrainJob, RetrainSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--per-night", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("var/bench/learning_month"))
    ap.add_argument("--cache", type=Path, default=Path("var/bench"))
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    _, test, base, rest = banking()
    model = base_model(args.cache, base)
    registry = fresh_registry(args.work, model)
    store = fresh_store(args.work)
    job = RetrainJob(
        store=store,
        registry=registry,
        base_data=base,
        heldout=test,
        settings=RetrainSettings(epochs=args.epochs),
        reports_dir=args.work / "reports",
    )
    nights = []
    start_acc = None
    for night in range(1, args.nights + 1):
        rows = rest[(night - 1) * args.per_night : night * args.per_night]
        if not rows:
            break
        t0 = time.perf_counter()
        log_night(store, TransformerIntentClassifier(registry.live_dir()), rows)
        outcome = job.run()
        m = outcome.metrics
        live_acc, cand_acc = m["live"]["accuracy"], m["candidate"]["accuracy"]
        start_acc = live_acc if start_acc is None else start_acc
        after = cand_acc if outcome.decision == PROMOTED else live_acc
        nights.append(
            {
                "night": night,
                "labels": len(rows),
                "decision": outcome.decision,
                "live_before": round(live_acc, 4),
                "candidate": round(cand_acc, 4),
                "live_after": round(after, 4),
                "failed_checks": outcome.reasons,
                "train_examples": m["data"].get("night_examples"),
                "seconds": round(time.perf_counter() - t0, 1),
                "timings": m["timings"],
            }
        )
        log(f"night {night}: {outcome.decision} live {live_acc:.4f} candidate {cand_acc:.4f}")
    worse_promoted = [
        n["night"]
        for n in nights
        if n["decision"] == PROMOTED and n["candidate"] < n["live_before"]
    ]
    result = {
        "benchmark": "learning_month",
        "start": "BANKING77 10-shot (few_shot(10, seed=0)), default TrainingArgs",
        "nights": len(nights),
        "labels_per_night": args.per_night,
        "epochs_per_night": args.epochs,
        "test_accuracy_start": start_acc,
        "test_accuracy_end": nights[-1]["live_after"] if nights else None,
        "full_data_accuracy_reference": FULL_DATA_ACCURACY,
        "promoted": sum(n["decision"] == PROMOTED for n in nights),
        "rejected": sum(n["decision"] != PROMOTED for n in nights),
        "worse_model_promoted_nights": worse_promoted,
        "median_night_seconds": statistics.median(n["seconds"] for n in nights) if nights else None,
        "by_night": nights,
    }
    if args.plot:
        plot(nights, start_acc, args.plot)
        result["plot"] = str(args.plot)
    print(json.dumps(result, indent=2))


def plot(nights: list[dict[str, object]], start: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [0] + [int(n["night"]) for n in nights]  # type: ignore[call-overload]
    live = [start] + [n["live_after"] for n in nights]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, live, marker="o", label="live model")
    for n in nights:
        color = "tab:green" if n["decision"] == PROMOTED else "tab:red"
        ax.scatter([n["night"]], [n["candidate"]], color=color, marker="x", zorder=3)
    ax.axhline(FULL_DATA_ACCURACY, color="gray", linestyle="--", label="full train set (6 epochs)")
    ax.set_xlabel("night")
    ax.set_ylabel("BANKING77 test accuracy")
    ax.set_title("Learning loop: live model by night (x: candidate, green promoted, red rejected)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
