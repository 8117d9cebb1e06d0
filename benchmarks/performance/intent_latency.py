"""Inference speed of the intent classifier on BANKING77 test messages.

    python -m benchmarks.performance.intent_latency --model DIR [--threads 1 2] [--runtimes onnx torch torch-int8]

Single message: median over 300 real messages, one at a time (tokenise, encode,
head, kNN score). Batch: messages/s over batches of 64. Target: <= 8 ms median for
one message and >= 500 messages/s for batches of 64 on this 2-core machine.
Runtimes: "onnx" (ONNX Runtime, fp32: the default), "onnx-int8" (ONNX Runtime with
dynamically quantised MatMuls), "torch" (PyTorch eager, fp32) and "torch-int8"
(PyTorch with dynamically quantised linear layers). Each run reports its own test
accuracy: a faster runtime is only worth what it keeps of the model.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import banking, emit, machine
from deskbot.bot.nlu.classifier import TransformerIntentClassifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--singles", type=int, default=300)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument(
        "--runtimes",
        nargs="+",
        default=["onnx", "onnx-int8", "torch", "torch-int8"],
        choices=["onnx", "onnx-int8", "torch", "torch-int8"],
    )
    args = ap.parse_args()
    load_before = round(os.getloadavg()[0], 2)
    _, test = banking()
    texts = list(test.texts)
    rng = random.Random(0)
    runs = []
    for runtime in args.runtimes:
        precision = "int8" if runtime.endswith("-int8") else "fp32"
        for threads in args.threads:
            clf = TransformerIntentClassifier(
                args.model,
                num_threads=threads,
                precision=precision,
                runtime=runtime.split("-")[0],
            )
            clf.predict(texts[:64])  # warm-up
            single = []
            for text in rng.sample(texts, args.singles):
                t = time.perf_counter()
                clf.predict([text])
                single.append((time.perf_counter() - t) * 1000)
            rates = []
            for _ in range(args.batches):
                batch = rng.sample(texts, 64)
                t = time.perf_counter()
                clf.predict(batch)
                rates.append(64 / (time.perf_counter() - t))
            acc = sum(
                p.ranking[0][0] == y for p, y in zip(clf.predict(texts), test.labels, strict=True)
            ) / len(texts)
            runs.append(
                {
                    "runtime": runtime,
                    "threads": threads,
                    "single_ms_median": round(statistics.median(single), 2),
                    "single_ms_p95": round(sorted(single)[int(0.95 * len(single))], 2),
                    "batch64_msgs_per_s_median": round(statistics.median(rates), 1),
                    "test_accuracy": round(acc, 4),
                }
            )
    emit(
        {
            "benchmark": "intent_latency",
            "command": "python -m benchmarks.performance.intent_latency " + " ".join(sys.argv[1:]),
            "model": str(args.model),
            "runs": runs,
            "load_average_1m_before": load_before,
            **machine(),
        },
        "intent_latency",
    )


if __name__ == "__main__":
    main()
