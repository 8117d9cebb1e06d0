"""Scoring an intent model on labelled data, and the report people look at."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deskbot.bot.nlu.classifier import TransformerIntentClassifier
from deskbot.training.data.datasets import OOS_LABEL, IntentDataset, as_label


@dataclass
class Evaluation:
    """Predictions for a dataset and the figures computed from them.

    Out of scope is `OOS_LABEL` in `gold` and `predicted`, however it came in.
    """

    gold: list[str]
    predicted: list[str]
    confidence: list[float]
    metrics: dict[str, Any]

    def __post_init__(self) -> None:
        self.gold = [as_label(x) for x in self.gold]
        self.predicted = [as_label(x) for x in self.predicted]


def compute_metrics(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and out-of-scope figures; `oos` and `out_of_scope` are the same label."""
    from sklearn.metrics import f1_score

    g = [as_label(x) for x in gold]
    p = [as_label(x) for x in predicted]
    n = len(g)
    in_rows = [i for i in range(n) if g[i] != OOS_LABEL]
    oos_rows = [i for i in range(n) if g[i] == OOS_LABEL]
    predicted_oos = [i for i in range(n) if p[i] == OOS_LABEL]
    labels = sorted(set(g) | set(p))
    return {
        "n": n,
        "accuracy": sum(g[i] == p[i] for i in range(n)) / n if n else 0.0,
        "macro_f1": float(f1_score(g, p, labels=labels, average="macro", zero_division=0))
        if n
        else 0.0,
        "in_scope_accuracy": sum(g[i] == p[i] for i in in_rows) / len(in_rows) if in_rows else None,
        "oos_recall": sum(p[i] == OOS_LABEL for i in oos_rows) / len(oos_rows)
        if oos_rows
        else None,
        "oos_precision": (
            sum(g[i] == OOS_LABEL for i in predicted_oos) / len(predicted_oos)
            if predicted_oos
            else None
        ),
        "n_oos": len(oos_rows),
    }


def evaluate(model: TransformerIntentClassifier, data: IntentDataset) -> Evaluation:
    predictions = model.predict(list(data.texts))
    predicted = [x.intent for x in predictions]
    metrics = compute_metrics(list(data.labels), predicted)
    metrics["model_version"] = model.version
    return Evaluation(
        gold=list(data.labels),
        predicted=predicted,
        confidence=[x.confidence for x in predictions],
        metrics=metrics,
    )


def per_intent(ev: Evaluation) -> dict[str, dict[str, float]]:
    from sklearn.metrics import precision_recall_fscore_support

    gold = ev.gold
    labels = sorted(set(gold) | set(ev.predicted))
    p, r, f, s = precision_recall_fscore_support(gold, ev.predicted, labels=labels, zero_division=0)
    return {
        label: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, label in enumerate(labels)
    }


def confused_pairs(ev: Evaluation, top: int = 15) -> list[dict[str, Any]]:
    gold = ev.gold
    pairs = Counter((g, p) for g, p in zip(gold, ev.predicted, strict=True) if g != p)
    return [{"gold": g, "predicted": p, "count": c} for (g, p), c in pairs.most_common(top)]


def write_report(ev: Evaluation, out_dir: str | Path) -> dict[str, Path]:
    """metrics.json, per_intent.csv, confused_pairs.json, confusion_matrix.png, confidence_histogram.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["metrics"] = out / "metrics.json"
    files["metrics"].write_text(json.dumps(ev.metrics, indent=2), encoding="utf-8")
    rows = per_intent(ev)
    files["per_intent"] = out / "per_intent.csv"
    with open(files["per_intent"], "w", encoding="utf-8") as fh:
        fh.write("intent,precision,recall,f1,support\n")
        for label, m in sorted(rows.items(), key=lambda kv: kv[1]["f1"]):
            fh.write(
                f"{label},{m['precision']:.4f},{m['recall']:.4f},{m['f1']:.4f},{m['support']}\n"
            )
    files["confused_pairs"] = out / "confused_pairs.json"
    files["confused_pairs"].write_text(json.dumps(confused_pairs(ev), indent=2), encoding="utf-8")

    gold = ev.gold
    labels = sorted(set(gold) | set(ev.predicted))
    index = {label: i for i, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, ev.predicted, strict=True):
        cm[index[g], index[p]] += 1
    row_sums = cm.sum(axis=1, keepdims=True).clip(min=1)
    size = max(6.0, len(labels) * 0.16)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm / row_sums, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=5)
    ax.set_yticks(range(len(labels)), labels, fontsize=5)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    acc = ev.metrics.get("accuracy", 0.0)
    ax.set_title(f"Confusion matrix (row-normalised), accuracy {acc:.2%}, n={len(gold)}")
    fig.tight_layout()
    files["confusion_matrix"] = out / "confusion_matrix.png"
    fig.savefig(files["confusion_matrix"], dpi=150)
    plt.close(fig)

    conf = np.array(ev.confidence)
    correct = np.array([g == p for g, p in zip(gold, ev.predicted, strict=True)])
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 26).tolist()
    ax.hist(conf[correct], bins=bins, alpha=0.7, label="correct")
    ax.hist(conf[~correct], bins=bins, alpha=0.7, label="wrong")
    ax.set_xlabel("calibrated confidence")
    ax.set_ylabel("messages")
    ax.set_title("Confidence of correct and wrong predictions")
    ax.legend()
    fig.tight_layout()
    files["confidence_histogram"] = out / "confidence_histogram.png"
    fig.savefig(files["confidence_histogram"], dpi=120)
    plt.close(fig)
    return files
