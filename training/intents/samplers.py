"""How one epoch's batches are drawn, and the word-dropout augmentation."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def label_text(label: str) -> str:
    """An intent's name as words: "card_arrival" -> "card arrival"."""
    return " ".join(label.replace("-", "_").split("_")).strip().lower() or label


def word_dropout(text: str, p: float, rng: random.Random) -> str:
    """`text` with each word dropped with probability `p` (texts of 3+ words)."""
    words = text.split()
    if len(words) < 3:
        return text
    kept = [w for w in words if rng.random() >= p]
    return " ".join(kept) if kept else text


def pk_batches(y: Sequence[int], n_classes: int, k: int, rng: random.Random) -> list[list[int]]:
    """Batches of `n_classes` intents x `k` examples: every example has positives in its batch."""
    by: dict[int, list[int]] = {}
    for i, c in enumerate(y):
        by.setdefault(c, []).append(i)
    pools = {c: rng.sample(v, len(v)) for c, v in by.items()}
    classes = sorted(by)
    batches = []
    for _ in range(math.ceil(len(y) / (n_classes * k))):
        batch = []
        for c in rng.sample(classes, min(n_classes, len(classes))):
            for _ in range(k):
                if not pools[c]:
                    pools[c] = rng.sample(by[c], len(by[c]))
                batch.append(pools[c].pop())
        batches.append(batch)
    return batches


def length_bucketed_batches(
    encoded: Sequence[Sequence[int]], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Shuffled batches of similar length: little padding, still random order."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(encoded[i]))
        batches.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches
