"""Fine-tuning the intent classifier, calibrating it, and writing a model version.

The steps live beside this module: `args` (what to do), `encoding` (the encoder),
`samplers` and `losses` (the batches and what they minimise), `loop` (the epochs),
`calibration` (temperature, neighbour vote, out-of-scope threshold).

Example:
    >>> data = load_intents("train.csv")                                 # doctest: +SKIP
    >>> trainer = IntentTrainer(TrainingArgs(epochs=3))                  # doctest: +SKIP
    >>> manifest = trainer.train(data, out_dir="var/models/intents/versions/v1")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deskbot.bot.core.errors import DataError
from deskbot.bot.nlu.registry import MANIFEST, IntentModelManifest
from deskbot.knowledge.embedding.embedder import resolve_model_path
from deskbot.knowledge.files.fsutil import staged_dir
from deskbot.training.data.context_pairs import context_pairs
from deskbot.training.data.datasets import OOS_LABEL, IntentDataset, check_trainable
from deskbot.training.intents.args import TrainingArgs, bf16_supported
from deskbot.training.intents.calibration import (
    FEW_SHOT_KNN_ALPHA,
    Calibration,
    calibrate,
    choose_oos_threshold,
    fit_temperature,
)
from deskbot.training.intents.encoding import Encoder
from deskbot.training.intents.loop import TrainingSet, fine_tune
from deskbot.training.intents.samplers import label_text

__all__ = [
    "FEW_SHOT_KNN_ALPHA",
    "FEW_SHOT_PER_INTENT",
    "IntentTrainer",
    "TrainResult",
    "TrainingArgs",
    "bf16_supported",
    "choose_oos_threshold",
    "fit_temperature",
    "label_text",
    "seed_everything",
    "write_metrics",
]

FEW_SHOT_PER_INTENT = 20  # under this many examples per intent the few-shot recipe applies

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class TrainResult:
    manifest: IntentModelManifest
    path: Path
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _few_examples(data: IntentDataset) -> bool:
    """Whether the intents have so few examples that the few-shot recipe applies."""
    counts = data.counts()
    per_intent = sum(counts[x] for x in data.intents) / max(1, len(data.intents))
    return per_intent < FEW_SHOT_PER_INTENT


class IntentTrainer:
    """Fine-tunes a transformer encoder with a cosine classification head.

    Full fine-tuning with AdamW (a higher learning rate for the head), linear warm-up
    and decay, dynamic padding and length-bucketed batches (BANKING77 messages are
    ~16 tokens: padding to 64 would waste most of the work). The head starts from the
    class-mean embeddings, so the first steps already classify. With few examples per
    intent, batches hold 8 intents x 4 examples (the contrastive term needs positives)
    and a nearest-neighbour vote is mixed into the probabilities. The best epoch on
    validation is kept; temperature and the out-of-scope threshold are fitted on it.
    """

    def __init__(self, args: TrainingArgs | None = None) -> None:
        self.args = args or TrainingArgs()

    def train(
        self,
        data: IntentDataset,
        out_dir: str | Path,
        *,
        valid: IntentDataset | None = None,
        version: str | None = None,
        extra_manifest: dict[str, Any] | None = None,
        init_model: str | Path | None = None,
        progress: bool = True,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
    ) -> TrainResult:
        """Train on `data`, write a complete model version to `out_dir`, return its manifest.

        `out_dir` must not exist; it appears only when the model is complete.
        `init_model` continues from an earlier model (its labels kept, new ones added).
        """
        args = self.args
        out = Path(out_dir)
        if out.exists():
            raise DataError(f"{out}: already exists; choose a new output directory")
        check_trainable(data)
        few = args.few_shot if args.few_shot is not None else _few_examples(data)
        if valid is None:
            data, valid = data.split(args.valid_fraction, seed=args.seed)
        started = time.perf_counter()
        enc, init_labels, old_head = self._load(init_model)
        labels = init_labels + [x for x in data.intents if x not in init_labels]
        label2id = {label: i for i, label in enumerate(labels)}
        train_set = self._training_set(enc, data, valid, label2id, few)
        head = self._initial_head(enc, train_set, len(labels), old_head)
        head, history, steps = fine_tune(
            enc, head, train_set, args, progress=progress, on_epoch=on_epoch
        )
        head_cpu = head.detach().float().cpu()
        cal = calibrate(
            enc,
            head_cpu,
            (data, train_set.ids, train_set.targets),
            (valid, train_set.valid_ids, train_set.valid_y),
            args,
            n_labels=len(labels),
            few=few,
        )
        elapsed = time.perf_counter() - started
        manifest = self._manifest(
            labels, cal, data, valid, init_model, version, extra_manifest, elapsed, history
        )
        manifest.metrics.update({"epochs_run": len(history), "steps": steps, "few_shot": few})
        _write_model_dir(out, enc, head_cpu, cal, manifest)
        return TrainResult(manifest=manifest, path=out, history=history, seconds=elapsed)

    def _load(self, init_model: str | Path | None) -> tuple[Encoder, list[str], Tensor | None]:
        """Seed, pick the device, load the encoder (and an earlier model's labels and head:
        its labels come first, in their order)."""
        import torch
        from safetensors.torch import load_file

        args = self.args
        seed_everything(args.seed)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cpu":
            torch.set_num_threads(args.num_threads or max(1, min(os.cpu_count() or 1, 4)))
        labels: list[str] = []
        old_head = None
        source = str(resolve_model_path(args.base_model))
        if init_model is not None:
            from deskbot.bot.nlu.registry import HEAD_FILE, read_manifest

            labels = list(read_manifest(init_model).labels)
            old_head = load_file(Path(init_model) / HEAD_FILE)["weight"]
            source = str(init_model)
        enc = Encoder.load(
            source, device, max_length=args.max_length, freeze_embeddings=args.freeze_embeddings
        )
        return enc, labels, old_head

    def _training_set(
        self,
        enc: Encoder,
        data: IntentDataset,
        valid: IntentDataset,
        label2id: dict[str, int],
        few: bool,
    ) -> TrainingSet:
        """The in-scope texts (and intent names as examples, if on) and the validation rows."""
        import torch

        args = self.args
        rows = [i for i, y in enumerate(data.labels) if y != OOS_LABEL]
        texts = [data.texts[i] for i in rows]
        targets = [label2id[data.labels[i]] for i in rows]
        if args.label_examples if args.label_examples is not None else few:
            intent_names = [x for x in data.intents if x != OOS_LABEL]
            texts += [label_text(x) for x in intent_names]
            targets += [label2id[x] for x in intent_names]
        if args.context_pairs > 0:
            labels = [data.labels[i] for i in rows]
            more, their = context_pairs(texts, labels, ratio=args.context_pairs, seed=args.seed)
            texts += more
            targets += [label2id[y] for y in their]
        y_all = torch.tensor(targets, device=enc.device)
        ids = enc.ids(texts)
        valid_rows = [i for i, y in enumerate(valid.labels) if y in label2id]
        valid_ids = enc.ids([valid.texts[i] for i in valid_rows])
        valid_y = torch.tensor([label2id[valid.labels[i]] for i in valid_rows])
        return TrainingSet(texts, ids, y_all, valid_ids, valid_y, few)

    @staticmethod
    def _initial_head(
        enc: Encoder, train_set: TrainingSet, n_labels: int, old_head: Tensor | None
    ) -> Tensor:
        """The head starts at the class means (prototypes); an earlier model's rows are kept."""
        import torch

        y_cpu = train_set.targets.cpu()
        protos = torch.zeros(n_labels, enc.hidden_size)
        protos.index_add_(0, y_cpu, enc.embed_all(train_set.ids))
        protos /= torch.bincount(y_cpu, minlength=n_labels).clamp(min=1)[:, None].float()
        if old_head is not None:
            protos[: old_head.shape[0]] = old_head
        return torch.nn.Parameter(protos.to(enc.device))

    def _manifest(
        self,
        labels: list[str],
        cal: Calibration,
        data: IntentDataset,
        valid: IntentDataset,
        init_model: str | Path | None,
        version: str | None,
        extra_manifest: dict[str, Any] | None,
        elapsed: float,
        history: list[dict[str, float]],
    ) -> IntentModelManifest:
        args = self.args
        return IntentModelManifest(
            version=version
            or time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6],
            labels=tuple(labels),
            temperature=cal.temperature,
            oos_method=cal.oos_method,
            oos_threshold=cal.oos_threshold,
            oos_k=args.oos_k,
            max_length=args.max_length,
            cos_scale=args.cos_scale,
            knn_alpha=cal.knn_alpha,
            base_model=args.base_model
            if init_model is None
            else f"{args.base_model} via {init_model}",
            metrics=dict(cal.metrics),
            data={"train": data.sha256, "valid": valid.sha256},
            training={
                **asdict(args),
                "seconds": round(elapsed, 1),
                "history": history,
                **(extra_manifest or {}),
            },
        )


def _write_model_dir(
    out: Path, enc: Encoder, head: Tensor, cal: Calibration, manifest: IntentModelManifest
) -> None:
    """Write everything under a temporary name, then rename: no half-written model is ever visible."""
    from safetensors.torch import save_file

    from deskbot.bot.nlu.registry import HEAD_FILE, KNN_FILE

    with staged_dir(out) as tmp:
        enc.model.save_pretrained(tmp)
        enc.tokenizer.save_pretrained(tmp)
        save_file({"weight": head.contiguous()}, str(tmp / HEAD_FILE))
        banks = {
            "embeddings": cal.bank.half().contiguous(),
            "labels": cal.bank_labels.int().contiguous(),
        }
        if cal.oos_bank is not None:
            banks["oos_embeddings"] = cal.oos_bank.half().contiguous()
        save_file(banks, str(tmp / KNN_FILE))
        (tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True), encoding="utf-8")
