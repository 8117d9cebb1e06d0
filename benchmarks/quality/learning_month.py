"""A simulated month of the learning loop on BANKING77, night by night.

Start: the 10-shot model (770 examples). Each night agents label `--per-night` logged
turns drawn from the rest of the train split; they are inserted into a real SQLite
store and the real `RetrainJob` runs (fine-tune from live, gate, promote). Reported:
the live model's test accuracy after every night, each candidate's, the decisions, and
a plot. The gate must never promote a model that scores lower than the live one.

The gate scores both models on the BANKING77 test split (the project's `test_data`), so
"never promoted a worse model" on that split holds by construction whenever the accuracy
check passes. To check it on data the gate never saw, `--check-size` messages of the rest
of the train split (never logged, never trained on) are a second held-out set: every
promoted version and the one it replaced are scored on it too (`check_set`).

The reference line is the same recipe trained on the whole train split
(benchmarks/results/intent_accuracy.json, accuracy with the out-of-scope threshold,
which is what the gate's `accuracy` counts).

    python -m benchmarks.quality.learning_month --nights 10 --per-night 300 \\
        --work var/bench/learning_month --plot benchmarks/results/learning_month.png

Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, add_work_options, command, log, parser
from benchmarks.common.loop import (
    FULL_DATA_ACCURACY,
    banking_loop,
    base_model,
    fresh_registry,
    fresh_store,
    log_night,
)
from deskbot.bot.nlu.classifier import TransformerIntentClassifier
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.intents.evaluation import evaluate
from deskbot.training.nightly.job import PROMOTED, RetrainJob, RetrainOutcome, RetrainSettings


def full_data_reference() -> dict[str, Any]:
    """The recipe's own full-train-split figure, if its benchmark has been run."""
    try:
        r = json.loads((RESULTS / "intent_accuracy.json").read_text(encoding="utf-8"))
        return {
            "accuracy": r["test_accuracy_with_oos_threshold"],
            "top1_accuracy": r["test_accuracy_top1"],
            "source": "benchmarks/results/intent_accuracy.json",
        }
    except (OSError, KeyError, ValueError):
        return {"accuracy": FULL_DATA_ACCURACY, "source": "shared/MODELS.md plain fine-tune"}


def paired(before: list[str], after: list[str], gold: list[str]) -> dict[str, Any]:
    """Accuracy change from `before` to `after` predictions on the same rows, with the
    standard error of the paired difference (only rows whose correctness changed count)."""
    n = len(gold)
    d = [(a == g) - (b == g) for b, a, g in zip(before, after, gold, strict=True)]
    mean = sum(d) / n
    se = math.sqrt(max(0.0, sum(x * x for x in d) / n - mean * mean) / n)
    return {"delta": round(mean, 4), "se": round(se, 4), "worse_beyond_2se": mean < -2 * se}


def parse_args() -> argparse.Namespace:
    ap = parser(__doc__)
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--per-night", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=2)
    add_work_options(ap, "learning_month")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument(
        "--check-size",
        type=int,
        default=2000,
        help="messages of the train split kept back as a held-out set the gate never sees",
    )
    return ap.parse_args()


def night_record(
    night: int, labels: int, outcome: RetrainOutcome, seconds: float
) -> dict[str, Any]:
    """What one night's retrain decided, and the test accuracy before and after."""
    m = outcome.metrics
    live_acc, cand_acc = m["live"]["accuracy"], m["candidate"]["accuracy"]
    after = cand_acc if outcome.decision == PROMOTED else live_acc
    return {
        "night": night,
        "labels": labels,
        "decision": outcome.decision,
        "live_before": round(live_acc, 4),
        "candidate": round(cand_acc, 4),
        "live_after": round(after, 4),
        "failed_checks": outcome.reasons,
        "quarantined": m.get("quarantined", {}).get("labels", 0),
        "train_examples": m["data"].get("night_examples"),
        "seconds": round(seconds, 1),
        "timings": m["timings"],
    }


def worse_promotions(nights: list[dict[str, Any]]) -> tuple[list[int], list[int], list[int]]:
    """Nights that promoted a model worse on the test split, on the check set, and on the
    check set by more than two standard errors."""
    worse_promoted = [
        n["night"]
        for n in nights
        if n["decision"] == PROMOTED and n["candidate"] < n["live_before"]
    ]
    worse_on_check = [
        n["night"] for n in nights if "check_set" in n and n["check_set"]["delta"] < 0
    ]
    worse_on_check_2se = [
        n["night"] for n in nights if "check_set" in n and n["check_set"]["worse_beyond_2se"]
    ]
    return worse_promoted, worse_on_check, worse_on_check_2se


def main() -> None:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    _, test, base, rest = banking_loop()
    check_rows = rest[len(rest) - args.check_size :] if args.check_size else []
    rest = rest[: len(rest) - len(check_rows)]
    if args.nights * args.per_night > len(rest):
        raise SystemExit(f"{args.nights} x {args.per_night} labels: only {len(rest)} turns")
    check = IntentDataset(
        tuple(t for t, _ in check_rows), tuple(y for _, y in check_rows), "check", "check"
    )
    check_preds: dict[str, list[str]] = {}

    def check_predict(version: str) -> list[str]:
        """The registry version's predictions on the check set (each version once)."""
        if version not in check_preds:
            ev = evaluate(TransformerIntentClassifier(registry.versions_dir / version), check)
            check_preds[version] = list(ev.predicted)
        return check_preds[version]

    def check_acc(version: str) -> float:
        preds = check_predict(version)
        return round(sum(p == g for p, g in zip(preds, check.labels, strict=True)) / len(preds), 4)

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
    nights: list[dict[str, Any]] = []
    start_acc = None
    reference = full_data_reference()
    t_start = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    check_start = check_acc(registry.live_version() or "") if len(check) else None
    for night in range(1, args.nights + 1):
        rows = rest[(night - 1) * args.per_night : night * args.per_night]
        if not rows:
            break
        t0 = time.perf_counter()
        live_version = registry.live_version() or ""
        log_night(store, TransformerIntentClassifier(registry.live_dir()), rows)
        outcome = job.run()
        live_acc = outcome.metrics["live"]["accuracy"]
        cand_acc = outcome.metrics["candidate"]["accuracy"]
        start_acc = live_acc if start_acc is None else start_acc
        nights.append(night_record(night, len(rows), outcome, time.perf_counter() - t0))
        if len(check) and outcome.decision == PROMOTED:
            # the promoted version against the one it replaced, on rows the gate never saw
            new_version = registry.live_version() or ""
            nights[-1]["check_set"] = {
                "live_before": check_acc(live_version),
                "promoted": check_acc(new_version),
                **paired(check_predict(live_version), check_predict(new_version), check.labels),
            }
        if len(check):
            nights[-1]["check_set_live_after"] = check_acc(registry.live_version() or "")
        log(f"night {night}: {outcome.decision} live {live_acc:.4f} candidate {cand_acc:.4f}")
    worse_promoted, worse_on_check, worse_on_check_2se = worse_promotions(nights)
    labels_seen = len(base) + sum(n["labels"] for n in nights)
    result = {
        "benchmark": "learning_month",
        "start": "BANKING77 10-shot (few_shot(10, seed=0)), default TrainingArgs",
        "nights": len(nights),
        "labels_per_night": args.per_night,
        "epochs_per_night": args.epochs,
        "test_accuracy_start": start_acc,
        "test_accuracy_end": nights[-1]["live_after"] if nights else None,
        "best_candidate": max((n["candidate"] for n in nights), default=None),
        "train_examples_seen_at_end": labels_seen,
        "full_data_reference": reference,
        "gap_to_full_data_start_end": [
            round(reference["accuracy"] - start_acc, 4) if start_acc is not None else None,
            round(reference["accuracy"] - nights[-1]["live_after"], 4) if nights else None,
        ],
        "promoted": sum(n["decision"] == PROMOTED for n in nights),
        "rejected": sum(n["decision"] != PROMOTED for n in nights),
        "worse_model_promoted_nights": worse_promoted,
        "gate_never_promoted_worse_on_test": not worse_promoted,
        "check_set": {
            "what": f"{len(check)} train-split messages never logged nor trained on; the gate "
            "never sees them",
            "accuracy_start": check_start,
            "accuracy_end": check_acc(registry.live_version() or "") if len(check) else None,
            "promotions_lower_on_check_set": worse_on_check,
            "promotions_lower_by_more_than_2se": worse_on_check_2se,
        },
        "median_night_seconds": statistics.median(n["seconds"] for n in nights) if nights else None,
        "total_minutes": round((time.perf_counter() - t_start) / 60, 1),
        "by_night": nights,
        "load_avg_1_5_15_before": load_before,
        "load_avg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "command": command("benchmarks.quality.learning_month"),
    }
    if args.plot:
        plot(nights, start_acc, args.plot, reference["accuracy"], check_start)
        result["plot"] = str(args.plot)
    print(json.dumps(result, indent=2))


def plot(
    nights: list[dict[str, Any]],
    start: float | None,
    path: Path,
    full: float,
    check_start: float | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [0] + [int(n["night"]) for n in nights]
    live = [start] + [n["live_after"] for n in nights]
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot(xs, live, marker="o", label="live model (test split, the gate's set)")
    if check_start is not None:
        checked = [check_start] + [n.get("check_set_live_after") for n in nights]
        ax.plot(
            xs, checked, marker=".", linestyle=":", label="live model (check set, unseen by gate)"
        )
    for decision, color in ((PROMOTED, "tab:green"), ("rejected", "tab:red")):
        picked = [n for n in nights if (n["decision"] == PROMOTED) == (decision == PROMOTED)]
        if picked:
            ax.scatter(
                [n["night"] for n in picked],
                [n["candidate"] for n in picked],
                color=color,
                marker="x",
                zorder=3,
                label=f"candidate (test split), {decision}",
            )
    ax.axhline(full, color="gray", linestyle="--", label="same recipe, full train split (test)")
    ax.set_xlabel("night")
    ax.set_ylabel("accuracy")
    ax.set_xticks(xs)
    ax.set_title("Learning loop on BANKING77, from the 10-shot model")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
