"""How far can an out-of-scope score go without out-of-scope data? BANKING77, 10 intents held out.

    python -m benchmarks.quality.intent_oos_scores [--seeds 0 1 2] [--models var/bench]

For each seed, 10 of the 77 intents are drawn as out of scope (seed 0 is the draw of
`intent_oos.py`) and a model is trained on the other 67 (once: it is kept in
MODELS/oos-s{seed}). Each score says how in-scope a message is; a message under the
threshold is out of scope:

- msp: the calibrated top probability;
- knn1, knn10: mean cosine similarity to the 1 or 10 nearest training examples
  (`oos_method: knn` serves knn10);
- rel_mahalanobis: distance to the nearest intent's mean (shared covariance) minus the
  distance to one Gaussian of all training data (Ren et al., 2021), negated;
- knn5_class_relative: knn5 minus how close the predicted intent's own training
  examples lie to each other (10th percentile of their leave-one-out knn5): a tight
  intent asks for a closer match than a loose one;
- knn_contrast (uses out-of-scope examples; `oos_method: knn_contrast`): knn10 minus
  the mean similarity to the k nearest out-of-scope examples (k = the trainer's
  `oos_k`); half of the held-out intents' *train* messages (seed 1) are those examples,
  the other half is their validation set. Nothing of test is seen.
  `knn_contrast n=N/intent k=K` keeps only the first N examples of each held-out intent
  (`--oos-per-intent`; "all" is the whole half) and compares with the K nearest of
  them: what an operator who marks a few messages a topic gets.

For each score, on test (the held-out intents' test messages are out of scope):
- auroc: in-scope against out-of-scope messages;
- fair_*: the threshold chosen as the trainer chooses it, on its validation split (at
  most `--max-drop` in-scope accuracy lost there), and what it gives on test;
- ceiling_recall_at_1pt: the threshold chosen *on test* to lose exactly 1 point of
  in-scope accuracy: no rule for choosing a threshold can do better with this score;
- drop_points_for_80pct: the in-scope accuracy that catching 80% of them costs.
`per_intent` says, for knn10 at its fair threshold, how much of each held-out intent is
caught and which known intents the missed messages were taken for. The plot draws
out-of-scope recall against in-scope accuracy lost, one panel a seed, with the target
(80% at 1 point) marked.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, ROOT, banking, emit, log, machine
from deskbot.bot.nlu.classifier import TransformerIntentClassifier, nearest_mean
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.intents.trainer import IntentTrainer, TrainingArgs, choose_oos_threshold

PLOTTED = ("msp", "knn1", "knn10", "rel_mahalanobis", "knn5_class_relative", "knn_contrast")


def auroc(in_scope: np.ndarray, oos: np.ndarray) -> float:
    """P(an in-scope message scores higher than an out-of-scope one)."""
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.ones(len(in_scope)), np.zeros(len(oos))]
    return float(roc_auc_score(truth, np.r_[in_scope, oos]))


def trade_off(
    s_in: np.ndarray, correct: np.ndarray, s_oos: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each threshold: in-scope accuracy points lost, and out-of-scope recall."""
    kept = correct[None, :] & (s_in[None, :] >= thresholds[:, None])
    drop = 100 * (correct.mean() - kept.mean(1))
    recall = (s_oos[None, :] < thresholds[:, None]).mean(1)
    return drop, recall


def score_functions(clf: TransformerIntentClassifier) -> dict[str, Callable[..., Any]]:
    import torch
    import torch.nn.functional as F

    m = clf.manifest
    bank = clf._bank.contiguous()
    bank_labels = clf._bank_labels
    n = len(m.labels)
    head = F.normalize(clf._head.float(), dim=-1)

    means = torch.stack([bank[bank_labels == c].mean(0) for c in range(n)])
    centred = bank - means[bank_labels]
    precision = torch.linalg.inv(
        centred.t() @ centred / len(bank) + 1e-4 * torch.eye(bank.shape[1])
    )
    mu = bank.mean(0)
    background = torch.linalg.inv(
        (bank - mu).t() @ (bank - mu) / len(bank) + 1e-4 * torch.eye(bank.shape[1])
    )

    # Leave-one-out knn5 of every training example: how tight its intent is.
    density = torch.empty(len(bank))
    for start in range(0, len(bank), 2048):
        sim = bank[start : start + 2048] @ bank.t()
        sim[torch.arange(sim.shape[0]), torch.arange(start, start + sim.shape[0])] = -2.0
        density[start : start + 2048] = sim.topk(5, dim=1).values.mean(1)
    tightness = torch.stack([density[bank_labels == c].quantile(0.1) for c in range(n)])

    def logits(e: Any) -> Any:
        return m.cos_scale * e @ head.t()

    def rel_mahalanobis(e: Any) -> Any:
        diff = e[:, None, :] - means[None]
        nearest = torch.einsum("nkd,de,nke->nk", diff, precision, diff).min(1).values
        return -(nearest - torch.einsum("nd,de,ne->n", e - mu, background, e - mu))

    return {
        "msp": lambda e: torch.softmax(logits(e) / m.temperature, -1).max(-1).values,
        "knn1": lambda e: nearest_mean(e, bank, 1),
        "knn10": lambda e: nearest_mean(e, bank, 10),
        "rel_mahalanobis": rel_mahalanobis,
        "knn5_class_relative": lambda e: nearest_mean(e, bank, 5) - tightness[logits(e).argmax(-1)],
    }


def held_out_model(model_dir: Path, in_scope: IntentDataset) -> tuple[Any, float | None]:
    """The model trained without the held-out intents (trained once, then reused), and
    the minutes its training took here (None: it was there already)."""
    train_minutes = None
    if not model_dir.exists():
        log(f"training on {len(in_scope)} examples of 67 intents -> {model_dir}")
        wall = time.perf_counter()
        IntentTrainer(TrainingArgs(epochs=4)).train(in_scope, model_dir, progress=True)
        train_minutes = round((time.perf_counter() - wall) / 60, 2)
    clf = TransformerIntentClassifier(model_dir)
    clf.warm_up()
    return clf, train_minutes


def score_row(
    name: str,
    t: float,
    s_in: np.ndarray,
    s_oos: np.ndarray,
    s_oos_valid: np.ndarray,
    correct_test: np.ndarray,
    base: float,
) -> dict[str, Any]:
    """One score's figures at the validation-chosen threshold `t`, and its ceiling."""
    # Test-chosen: reject exactly 1% of in-scope messages' correct answers.
    allowed = int(0.01 * len(s_in))
    ceiling_t = np.sort(s_in[correct_test])[allowed]
    drop80, _ = trade_off(s_in, correct_test, s_oos, np.array([np.quantile(s_oos, 0.8)]))
    return {
        "score": name,
        "uses_oos_examples": name.startswith("knn_contrast"),
        "auroc": round(auroc(s_in, s_oos), 4),
        "fair_valid_oos_recall": round(float((s_oos_valid < t).mean()), 4),
        "fair_test_oos_recall": round(float((s_oos < t).mean()), 4),
        "fair_test_drop_points": round(
            100 * (base - float((correct_test & (s_in >= t)).mean())), 2
        ),
        "ceiling_recall_at_1pt": round(float((s_oos < ceiling_t).mean()), 4),
        "drop_points_for_80pct": round(float(drop80[0]), 1),
    }


def run_seed(
    seed: int, models: Path, max_drop: float, curves: bool, oos_per_intent: list[int]
) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    train, test = banking()
    held = set(random.Random(seed).sample(train.intents, 10))
    in_scope = train.without_intents(held, as_oos=False)
    clf, train_minutes = held_out_model(models / f"oos-s{seed}", in_scope)
    labels = clf.manifest.labels
    _, valid = in_scope.split(TrainingArgs().valid_fraction, seed=TrainingArgs().seed)
    held_rows = [i for i, y in enumerate(train.labels) if y in held]
    random.Random(1).shuffle(held_rows)
    half = len(held_rows) // 2

    def embed(texts: list[str]) -> Any:
        return F.normalize(clf.embed(texts).float(), dim=-1)

    log(f"seed {seed}: embedding validation, test and out-of-scope examples")
    e_valid, e_test = embed(list(valid.texts)), embed(list(test.texts))
    e_oos_fit = embed([train.texts[i] for i in held_rows[:half]])
    e_oos_valid = embed([train.texts[i] for i in held_rows[half:]])
    scores = score_functions(clf)

    index = {label: i for i, label in enumerate(labels)}
    test_in = np.array([i for i, y in enumerate(test.labels) if y not in held])
    test_oos = np.array([i for i, y in enumerate(test.labels) if y in held])
    head = F.normalize(clf._head.float(), dim=-1)
    pred_valid = (e_valid @ head.t()).argmax(-1).numpy()
    pred_test = (e_test @ head.t()).argmax(-1).numpy()
    correct_valid = pred_valid == np.array([index[y] for y in valid.labels])
    correct_test = pred_test[test_in] == np.array([index[test.labels[i]] for i in test_in])
    base = float(correct_test.mean())

    # With out-of-scope examples: the first n of each held-out intent's fit half (or all
    # of it), compared with their 1 or 10 nearest; "knn_contrast" is the trainer's k.
    fit_rows = held_rows[:half]
    knn10 = scores["knn10"]
    served_k = TrainingArgs().oos_k
    for n in [*oos_per_intent, None]:
        some = [i for h in sorted(held) for i in [r for r in fit_rows if train.labels[r] == h][:n]]
        e_some = e_oos_fit[[fit_rows.index(i) for i in some]]
        for k in sorted({1, 10, served_k}):
            scores[f"knn_contrast n={n or 'all'}/intent k={k}"] = lambda e, rows=e_some, k=k: (
                knn10(e) - nearest_mean(e, rows, k)
            )
    scores["knn_contrast"] = scores[f"knn_contrast n=all/intent k={served_k}"]

    rows, plotted = [], {}
    per_intent: dict[str, Any] = {}
    with torch.inference_mode():
        for name, fn in scores.items():
            s_valid, s_test = fn(e_valid).numpy(), fn(e_test).numpy()
            s_oos_valid = fn(e_oos_valid).numpy()
            s_in, s_oos = s_test[test_in], s_test[test_oos]
            t = choose_oos_threshold(s_valid, correct_valid, s_oos_valid, max_drop=max_drop)
            rows.append(score_row(name, t, s_in, s_oos, s_oos_valid, correct_test, base))
            if curves and name in PLOTTED:
                grid = np.quantile(np.concatenate([s_in, s_oos]), np.linspace(0, 1, 400))
                plotted[name] = trade_off(s_in, correct_test, s_oos, grid)
            if name == "knn10":
                for intent in sorted(held):
                    mine = [j for j, i in enumerate(test_oos) if test.labels[i] == intent]
                    missed = Counter(labels[pred_test[test_oos[j]]] for j in mine if s_oos[j] >= t)
                    per_intent[intent] = {
                        "recall": round(float((s_oos[mine] < t).mean()), 3),
                        "missed_taken_for": dict(missed.most_common(2)),
                    }
    return {
        "seed": seed,
        "held_out_intents": sorted(held),
        "train_wall_minutes": train_minutes,
        "in_scope_test": len(test_in),
        "oos_test": len(test_oos),
        "in_scope_accuracy": round(base, 4),
        "rows": rows,
        "per_intent": per_intent,
        "_curves": plotted,
    }


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.6), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for name, (drop, recall) in res["_curves"].items():
            style = "--" if name == "knn_contrast" else "-"
            label = name + (" (with oos examples)" if name == "knn_contrast" else "")
            ax.plot(drop, 100 * recall, style, label=label)
        ax.plot([1], [80], "k*", markersize=14, label="target: 80% at 1 point")
        ax.axvline(1, color="grey", lw=0.6)
        ax.set_xlim(0, 20)
        ax.set_ylim(0, 100)
        ax.set_xlabel("in-scope accuracy lost (points)")
        ax.set_ylabel("out-of-scope recall (%)")
        ax.set_title(f"held-out seed {res['seed']}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle("BANKING77, 10 intents held out as out of scope")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", type=Path, default=ROOT / "var" / "bench")
    ap.add_argument("--max-drop", type=float, default=TrainingArgs().oos_target_drop)
    ap.add_argument("--oos-per-intent", type=int, nargs="*", default=[1, 3, 10, 30])
    ap.add_argument("--plot", default=str(RESULTS / "intent_oos_scores.png"), help="'' for none")
    args = ap.parse_args()
    results = [
        run_seed(s, args.models, args.max_drop, bool(args.plot), args.oos_per_intent)
        for s in args.seeds
    ]
    if args.plot:
        plot(results, Path(args.plot))
    summary = {}
    for name in scores_in(results):
        got = [r for res in results for r in res["rows"] if r["score"] == name]
        summary[name] = {
            key: round(float(np.median([r[key] for r in got])), 4)
            for key in (
                "auroc",
                "fair_test_oos_recall",
                "fair_test_drop_points",
                "ceiling_recall_at_1pt",
                "drop_points_for_80pct",
            )
        }
    emit(
        {
            "benchmark": "intent_oos_scores",
            "target": "oos recall >= 0.80 at <= 1 point of in-scope accuracy lost",
            "valid_max_drop": args.max_drop,
            "median_over_seeds": summary,
            "seeds": [{k: v for k, v in res.items() if k != "_curves"} for res in results],
            **machine(),
        },
        "intent_oos_scores",
    )


def scores_in(results: list[dict[str, Any]]) -> list[str]:
    return [r["score"] for r in results[0]["rows"]]


if __name__ == "__main__":
    main()
