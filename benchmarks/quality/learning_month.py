"""A simulated month of the learning loop on BANKING77, night by night, over several seeds.

Start: the 10-shot model (770 examples). Each night agents label `--per-night` logged
turns drawn from the rest of the train split (in an order set by the seed); they are
inserted into a real SQLite store and the real `RetrainJob` runs (fine-tune from live,
gate, promote) as the product runs it: the gate decides on the job's validation stream
(a fixed 20% of the logged labels, never trained on; `deskbot.training.nightly.validation`),
never on the test split.

Every candidate, promoted or not, is scored on two sets the gate never decides on:

- the BANKING77 test split (the project's `test_data`: the job scores and reports it);
- the check set: `--check-size` messages of the train split, never logged nor trained
  on, scored here just before the gate judges the candidate.

So the curves show what the gate's choices did, on data it did not choose on. The
reference line is the same recipe trained on the whole train split
(benchmarks/results/intent_accuracy.json, accuracy with the out-of-scope threshold).

    python -m benchmarks.quality.learning_month --nights 10 --per-night 300 --seeds 0 1 2 \\
        --work var/bench/learning_month --plot benchmarks/results/learning_month.png

A reduced run (smoke): `--nights 2 --per-night 150 --check-size 200 --test-size 300
--base-max-steps 60 --night-max-steps 8 --gate-min-examples 20`.

Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
from deskbot.knowledge.files.fsutil import file_lock
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.intents.evaluation import evaluate
from deskbot.training.intents.trainer import IntentTrainer, TrainingArgs
from deskbot.training.nightly.job import PROMOTED, RetrainJob, RetrainOutcome, RetrainSettings

Row = dict[str, Any]


def full_data_reference() -> Row:
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


def parse_args() -> argparse.Namespace:
    ap = parser(__doc__)
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--per-night", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add_work_options(ap, "learning_month")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument(
        "--check-size",
        type=int,
        default=2000,
        help="messages of the train split kept back as a held-out set the gate never sees",
    )
    ap.add_argument(
        "--test-size", type=int, default=0, help="score on this many test messages (0: all)"
    )
    ap.add_argument("--gate-min-examples", type=int, default=RetrainSettings.gate_min_examples)
    ap.add_argument(
        "--night-max-steps", type=int, default=None, help="cap each night's training (smoke)"
    )
    ap.add_argument(
        "--base-max-steps",
        type=int,
        default=None,
        help="start from a 10-shot model trained this many steps (smoke; cached per count)",
    )
    return ap.parse_args()


def start_model(args: argparse.Namespace, base: IntentDataset) -> Path:
    """The 10-shot model: the shared cached one, or a shorter-trained one for smoke runs."""
    if args.base_max_steps is None:
        return base_model(args.cache, base)
    out = Path(args.cache) / f"banking77-10shot-{args.base_max_steps}steps"
    with file_lock(args.cache / f".banking77-10shot-{args.base_max_steps}.lock"):
        if not out.is_dir():
            log(f"training a {args.base_max_steps}-step 10-shot model (cached in {out})")
            IntentTrainer(TrainingArgs(max_steps=args.base_max_steps)).train(
                base, out, version="base-10shot", progress=False
            )
    return out


class CheckedJob(RetrainJob):
    """The product's job, and each candidate scored on the check set before it is judged."""

    def __init__(self, *, check: IntentDataset, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.candidate_check: float | None = None

    def _judge(self, run: Any, result: Any) -> RetrainOutcome:
        self.candidate_check = accuracy(result.path, self.check)
        return super()._judge(run, result)


def accuracy(model_dir: Path, data: IntentDataset) -> float:
    return round(
        float(evaluate(TransformerIntentClassifier(model_dir), data).metrics["accuracy"]), 4
    )


def gain_of(outcome: RetrainOutcome) -> Row | None:
    """The accuracy check's paired bootstrap on the validation window, if the night had one."""
    for check in outcome.metrics.get("checks", []):
        if check["name"] == "accuracy" and "gain" in check:
            g = check["gain"]
            return {k: round(v, 4) if isinstance(v, float) else v for k, v in g.items()}
    return None


def night_record(night: int, outcome: RetrainOutcome, before: Row, cand_check: float | None) -> Row:
    """One night: the decision, the validation evidence, and test/check accuracy of the
    live model before, the candidate (promoted or not) and the live model after."""
    m = outcome.metrics
    test = m.get("test")
    cand_test = round(test["candidate"]["accuracy"], 4) if test else None
    promoted = outcome.decision == PROMOTED
    return {
        "night": night,
        "decision": outcome.decision,
        "validation": {
            "examples": m["data"]["validation"]["examples"],
            "in_window": m["data"]["validation"]["in_window"],
            "live": round(m["live"]["accuracy"], 4) if "live" in m else None,
            "candidate": round(m["candidate"]["accuracy"], 4) if "candidate" in m else None,
            "gain": gain_of(outcome),
        },
        "test": {
            "live_before": before["test"],
            "candidate": cand_test,
            "live_after": cand_test if promoted else before["test"],
        },
        "check": {
            "live_before": before["check"],
            "candidate": cand_check,
            "live_after": cand_check if promoted else before["check"],
        },
        "failed_checks": outcome.reasons,
        "train_examples": m["data"].get("night_examples"),
        "timings": m.get("timings", {}),
    }


def run_seed(args: argparse.Namespace, seed: int, sets: dict[str, Any], model: Path) -> Row:
    """A month from the start model, the logged turns in the order `seed` sets."""
    work = args.work / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    rows = list(sets["rest"])
    random.Random(seed).shuffle(rows)
    registry, store = fresh_registry(work, model), fresh_store(work)
    train_args = {} if args.night_max_steps is None else {"max_steps": args.night_max_steps}
    job = CheckedJob(
        store=store,
        registry=registry,
        base_data=sets["base"],
        test_data=sets["test"],
        settings=RetrainSettings(
            epochs=args.epochs,
            seed=seed,
            gate_min_examples=args.gate_min_examples,
            train_args=train_args,
        ),
        reports_dir=work / "reports",
        check=sets["check"],
    )
    live = {"test": sets["start"]["test"], "check": sets["start"]["check"]}
    nights = []
    for night in range(1, args.nights + 1):
        t0 = time.perf_counter()
        log_night(
            store,
            TransformerIntentClassifier(registry.live_dir()),
            rows[(night - 1) * args.per_night : night * args.per_night],
        )
        job.candidate_check = None
        outcome = job.run()
        record = night_record(night, outcome, live, job.candidate_check)
        record["seconds"] = round(time.perf_counter() - t0, 1)
        nights.append(record)
        live = {"test": record["test"]["live_after"], "check": record["check"]["live_after"]}
        log(
            f"seed {seed} night {night}: {outcome.decision}; test live {live['test']} "
            f"candidate {record['test']['candidate']}; check candidate {record['check']['candidate']}"
        )
    return {"seed": seed, "by_night": nights}


def promotions(runs: list[Row]) -> Row:
    """Which promotions the check set calls worse, which rejections it calls better."""
    judged = [
        (r["seed"], n) for r in runs for n in r["by_night"] if n["check"]["candidate"] is not None
    ]

    def lower(n: Row) -> bool:
        return bool(n["check"]["candidate"] < n["check"]["live_before"])

    return {
        "promoted": sum(n["decision"] == PROMOTED for r in runs for n in r["by_night"]),
        "not_promoted": sum(n["decision"] != PROMOTED for r in runs for n in r["by_night"]),
        "promoted_lower_on_check": [
            [s, n["night"]] for s, n in judged if n["decision"] == PROMOTED and lower(n)
        ],
        "rejected_higher_on_check": [
            [s, n["night"]]
            for s, n in judged
            if n["decision"] != PROMOTED and n["check"]["candidate"] > n["check"]["live_before"]
        ],
        "promoted_lower_on_test": [
            [s, n["night"]]
            for s, n in judged
            if n["decision"] == PROMOTED and n["test"]["candidate"] < n["test"]["live_before"]
        ],
    }


def curves(runs: list[Row], start: Row) -> Row:
    """Mean over seeds, night by night (night 0: the start model)."""
    out: Row = {}
    for which in ("test", "check"):
        for series in ("live_after", "candidate"):
            means: list[float | None] = [start[which]] if series == "live_after" else [None]
            for i in range(len(runs[0]["by_night"])):
                xs = [r["by_night"][i][which][series] for r in runs]
                xs = [x for x in xs if x is not None]
                means.append(round(statistics.mean(xs), 4) if xs else None)
            out[f"{which}_{series}_mean"] = means
    return out


def load_sets(args: argparse.Namespace) -> dict[str, Any]:
    _, test, base, rest = banking_loop()
    check_rows = rest[len(rest) - args.check_size :] if args.check_size else []
    rest = rest[: len(rest) - len(check_rows)]
    if args.nights * args.per_night > len(rest):
        raise SystemExit(f"{args.nights} x {args.per_night} labels: only {len(rest)} turns")
    if args.test_size:
        keep = sorted(random.Random(0).sample(range(len(test)), args.test_size))
        test = IntentDataset(
            tuple(test.texts[i] for i in keep),
            tuple(test.labels[i] for i in keep),
            f"{args.test_size} of the test split",
            f"test-{args.test_size}",
        )
    check = IntentDataset(
        tuple(t for t, _ in check_rows), tuple(y for _, y in check_rows), "check", "check"
    )
    return {"test": test, "base": base, "rest": rest, "check": check}


def main() -> None:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sets = load_sets(args)
    model = start_model(args, sets["base"])
    sets["start"] = {"test": accuracy(model, sets["test"]), "check": accuracy(model, sets["check"])}
    reference = full_data_reference()
    t_start = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = [run_seed(args, seed, sets, model) for seed in args.seeds]
    result = {
        "benchmark": "learning_month",
        "start": "BANKING77 10-shot (few_shot(10, seed=0))"
        + (f", {args.base_max_steps} steps" if args.base_max_steps else ", default TrainingArgs"),
        "gate": "the job's validation stream (paired bootstrap lower bound of the accuracy "
        "gain); the test split and the check set are only scored",
        "seeds": args.seeds,
        "nights": args.nights,
        "labels_per_night": args.per_night,
        "epochs_per_night": args.epochs,
        "test_size": len(sets["test"]),
        "check_size": len(sets["check"]),
        "start_accuracy": sets["start"],
        "full_data_reference": reference,
        **promotions(runs),
        "curves": curves(runs, sets["start"]),
        "runs": runs,
        "total_minutes": round((time.perf_counter() - t_start) / 60, 1),
        "load_avg_1_5_15_before": load_before,
        "load_avg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "command": command("benchmarks.quality.learning_month"),
    }
    if args.plot:
        plot(runs, sets["start"], args.plot, reference["accuracy"])
        result["plot"] = str(args.plot)
    print(json.dumps(result, indent=2))


def plot(runs: list[Row], start: Row, path: Path, full: float) -> None:
    """Two panels (test split, check set): each seed's live model, and every candidate
    (green: promoted, red: not), none of it what the gate decided on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, which, title in ((axes[0], "test", "test split"), (axes[1], "check", "check set")):
        for r in runs:
            nights = r["by_night"]
            xs = [0] + [n["night"] for n in nights]
            ys = [start[which]] + [n[which]["live_after"] for n in nights]
            ax.plot(xs, ys, marker="o", alpha=0.8, label=f"live model, seed {r['seed']}")
            for promoted, color in ((True, "tab:green"), (False, "tab:red")):
                picked = [
                    n
                    for n in nights
                    if n[which]["candidate"] is not None and (n["decision"] == PROMOTED) == promoted
                ]
                ax.scatter(
                    [n["night"] for n in picked],
                    [n[which]["candidate"] for n in picked],
                    color=color,
                    marker="x",
                    zorder=3,
                    label=("candidate, promoted" if promoted else "candidate, not promoted")
                    if r is runs[0]
                    else None,
                )
        if which == "test":
            ax.axhline(full, color="gray", linestyle="--", label="full train split (test)")
        ax.set_title(f"{title} (never decided on)")
        ax.set_xlabel("night")
        ax.set_xticks(range(len(runs[0]["by_night"]) + 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("accuracy")
    fig.suptitle("Learning loop on BANKING77 from the 10-shot model; gate: validation stream")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
