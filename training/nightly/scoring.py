"""Scoring a model on the night's sets (validation and test), live model's cached."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deskbot.training.data.datasets import IntentDataset

if TYPE_CHECKING:
    from deskbot.bot.nlu.classifier import TransformerIntentClassifier
    from deskbot.training.intents.evaluation import Evaluation


def evaluations(
    model_dir: Path,
    datasets: Sequence[IntentDataset],
    cache: Path | None = None,
    version: str | None = None,
) -> list[Evaluation]:
    """`model_dir`'s evaluation on each dataset, the model loaded once (if at all).

    With `cache` and `version`, an evaluation is read from and written to
    `cache/<version>-<dataset sha>.json`: a model's predictions on a set change only
    with the model, so the live model is scored once per set. An empty set gets empty
    predictions and the figures of no rows.
    """
    from deskbot.training.intents.evaluation import Evaluation, compute_metrics, evaluate

    clf: TransformerIntentClassifier | None = None
    out = []
    for data in datasets:
        path = cache / f"{version}-{data.sha256[:16]}.json" if cache and version else None
        if path is not None and path.is_file():
            out.append(Evaluation(**json.loads(path.read_text(encoding="utf-8"))))
            continue
        if not len(data):
            out.append(Evaluation([], [], [], compute_metrics([], [])))
            continue
        if clf is None:
            from deskbot.bot.nlu.classifier import TransformerIntentClassifier

            clf = TransformerIntentClassifier(model_dir)
        ev = evaluate(clf, data)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(dataclasses.asdict(ev)), encoding="utf-8")
        out.append(ev)
    return out
