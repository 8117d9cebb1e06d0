"""The gate's own evaluation set: a validation stream of the store's examples.

The nightly gate must not choose on the test set (`intents.test_data`): picking, night
after night, whichever model scores best on one fixed set overfits that set, and its
score stops saying how good the live model is. So the gate decides on examples of its
own, and the test set is only scored and reported.

**The split.** A share (`validation_share`, 20% by default) of the exported examples,
agent labels and confirmed turns alike, is validation: never trained on, never
replayed. Which share is decided by a salted hash of the example's `text_key`, so it
is the same every night and on every machine: an example never moves between training
and validation, and the stream grows as agents label and customers confirm. A
validation-side text some earlier model was already trained on (it is in the live
model's known examples, e.g. from before this split existed or because
`validation_share` grew) is of no use to validate: it stays on the training side and is
counted as `trained_before`. Nothing else ever becomes known, so the split is stable.

**The refresh: a rolling window.** The gate scores both models on the newest
`gate_window` validation examples (by customer turn, newest first). A re-salted split
would move examples the live model was trained on into validation, and validation
examples into training, which breaks the one promise that matters (never trained on).
A rolling window keeps that promise and still retires every example: once
`gate_window` newer ones arrived, an example no longer takes part in any decision, so
no fixed set is selected on for ever, and the window follows what customers ask now.
Confirmed turns were predicted by a model that was live at the time, which favours the
live model a little: the gate is then conservative, never lenient.

**The decision.** The accuracy check uses a paired bootstrap on the window's rows (as
`f1_margins` does for the per-intent F1): both models are scored on the same resampled
rows, and the candidate passes when the one-sided lower bound of its accuracy gain is at
least `-accuracy_tolerance`. Fewer than `gate_min_examples` validation examples: the
night is not promoted, whatever the models score.

**The guard.** `assert_disjoint` refuses to gate on a set that shares any text
(`text_key`) with the test data: such a gate would be choosing on the test set again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deskbot.bot.core.errors import DataError
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.data.export import Example, ExportResult, text_key
from deskbot.training.nightly.settings import RetrainSettings

VALIDATION = "validation"
TRAIN = "train"
# Changing the salt would move examples between the sides: it never changes.
SALT = "deskbot-validation-v1"


def side(key: str, share: float) -> str:
    """Which side an example (its `text_key`) is on: the same for ever, for a given share."""
    digest = hashlib.sha256(f"{SALT}\t{key}".encode()).digest()
    return VALIDATION if int.from_bytes(digest[:8], "big") / 2**64 < share else TRAIN


@dataclass
class Stream:
    """The night's exported examples, split: what may be trained on, what validates."""

    train: ExportResult  # the export without the validation examples
    window: list[Example]  # the newest `gate_window` validation examples
    total: int  # validation examples in the store
    trained_before: int  # validation-side texts some earlier model was trained on

    def dataset(self) -> IntentDataset:
        """The window as a dataset (what the gate scores both models on)."""
        texts = tuple(e.text for e in self.window)
        labels = tuple(e.intent for e in self.window)
        digest = hashlib.sha256(
            "\n".join(f"{e.key}\t{e.intent}" for e in self.window).encode()
        ).hexdigest()
        return IntentDataset(texts, labels, "validation stream", digest)

    def summary(self) -> dict[str, Any]:
        return {
            "examples": self.total,
            "in_window": len(self.window),
            "trained_before": self.trained_before,
            "oldest_turn_in_window": min((e.turn_id for e in self.window), default=None),
        }


def split_stream(exported: ExportResult, known: dict[str, str], s: RetrainSettings) -> Stream:
    """Split the export (see the module docstring); `known`: what the live model learnt."""
    train: list[Example] = []
    validation: list[Example] = []
    trained_before = 0
    for e in exported.examples:
        if side(e.key, s.validation_share) == TRAIN:
            train.append(e)
        elif e.key in known:
            trained_before += 1
            train.append(e)
        else:
            validation.append(e)
    newest = sorted(validation, key=lambda e: e.turn_id, reverse=True)[: s.gate_window]
    return Stream(
        train=dataclasses.replace(exported, examples=train),
        window=newest,
        total=len(validation),
        trained_before=trained_before,
    )


def assert_disjoint(evaluation: IntentDataset, test_keys: frozenset[str]) -> None:
    """Refuse to gate on a set that equals or overlaps the test data (by `text_key`).

    Raises:
        DataError: saying how many texts are shared.
    """
    shared = sum(text_key(t) in test_keys for t in evaluation.texts)
    if shared:
        same = " (it is the test data)" if shared == len(evaluation) else ""
        raise DataError(
            f"the gate's evaluation set ({evaluation.source}, {len(evaluation)} texts) shares "
            f"{shared} texts with the test data{same}: the gate never decides on the test "
            "set, which is scored and reported only. Keep the test texts out of the "
            "validation stream."
        )


def bootstrap_lower(d: np.ndarray, *, reps: int, alpha: float, seed: int) -> float:
    """The `alpha` quantile of the mean of `d` over `reps` bootstrap resamples of its rows.

    `d` holds paired per-row differences (candidate minus live on the same row), so rows
    on which both do alike add no noise. Seeded: the same rows give the same bound.
    """
    n = len(d)
    if not n or not d.any():
        return float(d.mean()) if n else 0.0
    rng = np.random.default_rng(seed)
    means = [
        d[rng.integers(0, n, size=(min(100, reps - start), n))].mean(axis=1)
        for start in range(0, reps, 100)  # chunks keep memory at ~100 x n
    ]
    return float(np.quantile(np.concatenate(means), alpha))


def accuracy_gain(
    gold: Sequence[str],
    live_predicted: Sequence[str],
    candidate_predicted: Sequence[str],
    s: RetrainSettings,
) -> dict[str, Any]:
    """The candidate's accuracy gain over live on the same rows, with its lower bound.

    Paired bootstrap: `f1_bootstrap` resamples of the rows (seeded with `s.seed`), both
    models scored on the same resampled rows; rows both get right or both get wrong add
    no noise. `lower` is the `gate_alpha` quantile of the resampled gains.
    """
    if not len(gold) == len(live_predicted) == len(candidate_predicted):
        raise DataError("accuracy_gain: gold and both predictions must have the same length")
    n = len(gold)
    d = np.array(
        [
            int(c == g) - int(v == g)
            for g, v, c in zip(gold, live_predicted, candidate_predicted, strict=True)
        ],
        dtype=np.int64,
    )
    return {
        "n": n,
        "gain": float(d.mean()) if n else 0.0,
        "lower": bootstrap_lower(d, reps=s.f1_bootstrap, alpha=s.gate_alpha, seed=s.seed),
        "confidence": 1 - s.gate_alpha,
        "better": int((d > 0).sum()),
        "worse": int((d < 0).sum()),
    }
