"""BANKING77 10-shot: 10 examples per intent drawn from train (seed 0), scored on test.

    python -m benchmarks.quality.intent_fewshot [--shots 10] [--epochs 20] [--bf16]
        [--base-model DIR] [--out DIR]

Target: >= 88% test accuracy. `--base-model` trains another encoder folder (e.g. the
all-mpnet-base-v2 that `benchmarks/tools/install_mpnet.py` unpacks); `--bf16` runs the
training steps in bfloat16 where the CPU has bf16 units.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import banking, cpu_seconds, emit, log, machine
from deskbot.bot.nlu.classifier import TransformerIntentClassifier
from deskbot.training.intents.trainer import IntentTrainer, TrainingArgs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="the draw of the examples")
    ap.add_argument("--base-model", default=TrainingArgs.base_model)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="keep the model here")
    args = ap.parse_args()
    train, test = banking()
    few = train.few_shot(args.shots, seed=args.seed)
    out = args.out or Path(tempfile.mkdtemp()) / "model"
    log(f"{args.shots}-shot: {len(few)} examples, {args.epochs} epochs")
    wall, cpu = time.perf_counter(), cpu_seconds()
    targs = TrainingArgs(
        epochs=args.epochs, patience=args.epochs, base_model=args.base_model, bf16=args.bf16
    )
    result = IntentTrainer(targs).train(few, out, progress=False)
    train_wall, train_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    preds = TransformerIntentClassifier(out).predict(list(test.texts))
    acc = sum(p.ranking[0][0] == y for p, y in zip(preds, test.labels, strict=True)) / len(test)
    emit(
        {
            "benchmark": "intent_fewshot",
            "shots": args.shots,
            "base_model": Path(args.base_model).name,
            "bf16": args.bf16,
            "command": "python -m benchmarks.quality.intent_fewshot " + " ".join(sys.argv[1:]),
            "train_examples": len(few),
            "test_examples": len(test),
            "test_accuracy": round(acc, 4),
            "knn_alpha": result.manifest.knn_alpha,
            "epochs_run": result.manifest.metrics["epochs_run"],
            "train_wall_minutes": round(train_wall / 60, 2),
            "train_cpu_minutes": round(train_cpu / 60, 2),
            **machine(),
        },
        "intent_fewshot",
    )


if __name__ == "__main__":
    main()
