"""Which in-scope score finds out-of-scope messages: 10 BANKING77 intents held out.

    python benchmarks/intent_oos_scores.py [--model-dir var/bench/oos-model]

Trains (once; the model is kept in --model-dir) on the 67 other intents, then compares
in-scope scores, each with the threshold chosen on the trainer's validation split so
that in-scope accuracy drops by at most `max_drop` there:

- without out-of-scope data: mean similarity to the 10 (knn10) or 1 (knn1) nearest
  training examples, and the calibrated top probability (msp);
- with out-of-scope examples (half of the held-out intents' train messages, seed 1; the
  other half is the out-of-scope validation set): knn similarity minus the similarity
  to the nearest out-of-scope examples (what `oos_method: knn_contrast` computes).

Test: the held-out intents' test messages are out of scope; nothing of test is seen.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from _intent_common import banking, emit, log, machine

from deskbot.bot.intents import TransformerIntentClassifier
from deskbot.training.intents import IntentTrainer, TrainingArgs, choose_oos_threshold


def main() -> None:
    import torch
    import torch.nn.functional as F

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", type=Path, default=Path("../var/bench/oos-model"))
    args = ap.parse_args()
    train, test = banking()
    held = set(random.Random(0).sample(train.intents, 10))
    in_scope = train.without_intents(held, as_oos=False)
    train_minutes = None
    if not args.model_dir.exists():
        log(f"training on {len(in_scope)} examples of 67 intents -> {args.model_dir}")
        wall = time.perf_counter()
        IntentTrainer(TrainingArgs(epochs=4)).train(in_scope, args.model_dir, progress=False)
        train_minutes = round((time.perf_counter() - wall) / 60, 2)
    clf = TransformerIntentClassifier(args.model_dir)
    m = clf.manifest
    _, valid = in_scope.split(TrainingArgs().valid_fraction, seed=TrainingArgs().seed)
    held_rows = [i for i, y in enumerate(train.labels) if y in held]
    random.Random(1).shuffle(held_rows)
    oos_fit = [train.texts[i] for i in held_rows[: len(held_rows) // 2]]
    oos_valid = [train.texts[i] for i in held_rows[len(held_rows) // 2 :]]

    def embed(texts: list[str]) -> torch.Tensor:
        return F.normalize(clf.embed(texts), dim=-1)

    e_valid, e_fit, e_oos_valid = embed(list(valid.texts)), embed(oos_fit), embed(oos_valid)
    e_test = embed(list(test.texts))
    index = {label: i for i, label in enumerate(m.labels)}
    y_valid = torch.tensor([index[y] for y in valid.labels])
    test_in = [i for i, y in enumerate(test.labels) if y not in held]
    test_oos = [i for i, y in enumerate(test.labels) if y in held]
    y_test = torch.tensor([index[test.labels[i]] for i in test_in])
    head = F.normalize(clf._head, dim=-1)

    def probs(e: torch.Tensor) -> torch.Tensor:
        return torch.softmax(m.cos_scale * e @ head.t() / m.temperature, -1)

    def near(e: torch.Tensor, bank: torch.Tensor, k: int) -> torch.Tensor:
        return (e @ bank.t()).topk(min(k, bank.shape[0]), dim=1).values.mean(1)

    bank = clf._bank
    scores = {
        "knn10": lambda e: near(e, bank, 10),
        "knn1": lambda e: near(e, bank, 1),
        "msp": lambda e: probs(e).max(-1).values,
        "knn10_minus_oos10 (knn_contrast)": lambda e: near(e, bank, 10) - near(e, e_fit, 10),
        "knn5_minus_oos5": lambda e: near(e, bank, 5) - near(e, e_fit, 5),
    }
    rows = []
    for name, score in scores.items():
        s_valid, s_oos_valid, s_test = (
            score(e_valid).numpy(),
            score(e_oos_valid).numpy(),
            score(e_test).numpy(),
        )
        correct_valid = (probs(e_valid).argmax(-1) == y_valid).numpy()
        correct_test = (probs(e_test).argmax(-1)[test_in] == y_test).numpy()
        for max_drop in (0.008, 0.01):
            t = choose_oos_threshold(s_valid, correct_valid, s_oos_valid, max_drop=max_drop)
            kept = correct_test & (s_test[test_in] >= t)
            rows.append(
                {
                    "score": name,
                    "uses_oos_examples": "oos" in name,
                    "valid_max_drop": max_drop,
                    "valid_oos_recall": round(float((s_oos_valid < t).mean()), 4),
                    "test_in_scope_accuracy": round(float(correct_test.mean()), 4),
                    "test_in_scope_drop_points": round(
                        100 * float(correct_test.mean() - kept.mean()), 2
                    ),
                    "test_oos_recall": round(float((s_test[test_oos] < t).mean()), 4),
                }
            )
    emit(
        {
            "benchmark": "intent_oos_scores",
            "held_out_intents": sorted(held),
            "oos_examples": len(oos_fit),
            "train_wall_minutes": train_minutes,
            "rows": rows,
            **machine(),
        },
        "intent_oos_scores",
    )


if __name__ == "__main__":
    main()
