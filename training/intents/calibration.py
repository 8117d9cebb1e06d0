"""After training: the temperature, the neighbour vote's weight, the neighbour banks and
the out-of-scope threshold, all chosen on validation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deskbot.training.data.datasets import OOS_LABEL, IntentDataset
from deskbot.training.intents.args import TrainingArgs
from deskbot.training.intents.encoding import Encoder

FEW_SHOT_KNN_ALPHA = 0.5  # weight of the neighbour vote in the few-shot regime

if TYPE_CHECKING:
    from torch import Tensor


def fit_temperature(logits: Tensor, targets: Tensor) -> float:
    """The temperature that minimises validation NLL (Guo et al., 2017)."""
    import torch

    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)
    logits = logits.detach().float()

    def closure() -> Tensor:
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


@dataclass
class Calibration:
    """What the served classifier needs beyond the weights, and how it did on validation."""

    temperature: float
    knn_alpha: float
    oos_method: str
    oos_threshold: float
    bank: Tensor
    bank_labels: Tensor
    oos_bank: Tensor | None
    metrics: dict[str, Any]


@dataclass
class _Scorer:
    """Probabilities and in-scope scores of embeddings, as the served classifier makes them."""

    head: Tensor
    bank: Tensor
    bank_labels: Tensor
    n_labels: int
    oos_bank: Tensor | None
    oos_method: str
    args: TrainingArgs
    temperature: float = 1.0
    alpha: float = 0.0

    def knn(self, emb: Tensor) -> tuple[Tensor, Tensor]:
        from deskbot.bot.nlu.classifier import knn_vote

        probs, sim = knn_vote(emb, self.bank, self.bank_labels, self.n_labels, 10, 0.05)
        return probs, sim

    def probs(self, emb: Tensor, knn_probs: Tensor) -> Tensor:
        import torch

        from deskbot.bot.nlu.classifier import cosine_logits

        logits = cosine_logits(emb, self.head, self.args.cos_scale)
        softmax = torch.softmax(logits / self.temperature, dim=-1)
        return (1 - self.alpha) * softmax + self.alpha * knn_probs

    def in_scope(self, emb: Tensor, knn_sim: Tensor, probs: Tensor) -> Tensor:
        from deskbot.bot.nlu.classifier import nearest_mean

        if self.oos_method == "knn":
            return knn_sim
        if self.oos_method == "knn_contrast":
            nearest_oos: Tensor = nearest_mean(emb, self.oos_bank, self.args.oos_k)
            return knn_sim - nearest_oos
        return probs.max(-1).values


def _knn_alpha(args: TrainingArgs, few: bool) -> float:
    if args.knn_alpha is not None:
        return args.knn_alpha
    # An equal mix, chosen without the test split: with about one validation example
    # per intent a training run cannot choose it itself, so it was chosen once, for
    # every few-shot run, on 10 other train examples per intent over three 10-shot
    # draws (0.5 and 0.75 tied at 86.8% mean validation accuracy; 0 gave 86.0%):
    # benchmarks/quality/intent_fewshot_seeds.py.
    return FEW_SHOT_KNN_ALPHA if few else 0.0


def _scorer(
    enc: Encoder,
    head: Tensor,
    ids: list[list[int]],
    targets: Tensor,
    data: IntentDataset,
    args: TrainingArgs,
    n_labels: int,
) -> _Scorer:
    """The neighbour bank of the training texts, and the out-of-scope one if any."""
    import torch.nn.functional as F

    bank = F.normalize(enc.embed_all(ids), dim=-1)
    # Out-of-scope training examples make a second bank: a message nearer to them
    # than to any intent's examples is out of scope (the score is the difference).
    oos_train = [t for t, y in zip(data.texts, data.labels, strict=True) if y == OOS_LABEL]
    oos_bank, oos_method = None, args.oos_method
    if oos_train and oos_method == "knn":
        oos_bank = F.normalize(enc.embed_all(enc.ids(oos_train)), dim=-1)
        oos_method = "knn_contrast"
    return _Scorer(head, bank, targets.cpu(), n_labels, oos_bank, oos_method, args)


def calibrate(
    enc: Encoder,
    head: Tensor,
    train: tuple[IntentDataset, list[list[int]], Tensor],
    valid: tuple[IntentDataset, list[list[int]], Tensor],
    args: TrainingArgs,
    *,
    n_labels: int,
    few: bool,
) -> Calibration:
    """Fit temperature, vote weight and out-of-scope threshold on validation.

    Args:
        train: the training data, its token ids and targets (the neighbour bank).
        valid: the validation data, the token ids and targets of its in-scope rows.
    """
    import torch
    import torch.nn.functional as F

    from deskbot.bot.nlu.classifier import cosine_logits

    scorer = _scorer(enc, head, train[1], train[2], train[0], args, n_labels)
    valid_data, valid_ids, valid_y = valid
    val_emb = enc.embed_all(valid_ids)
    n_valid = len(valid_y)
    val_logits = cosine_logits(val_emb, head, args.cos_scale)
    scorer.temperature = fit_temperature(val_logits, valid_y) if n_valid > 1 else 1.0
    knn_probs, knn_sim = scorer.knn(val_emb)
    scorer.alpha = _knn_alpha(args, few)
    probs = scorer.probs(val_emb, knn_probs)
    bank, bank_labels = scorer.bank, scorer.bank_labels
    if n_valid and (args.bank_with_valid if args.bank_with_valid is not None else few):
        bank = torch.cat([bank, F.normalize(val_emb, dim=-1)])
        bank_labels = torch.cat([bank_labels, valid_y])
    in_correct = (probs.argmax(-1) == valid_y).numpy()
    in_score = scorer.in_scope(val_emb, knn_sim, probs).numpy()
    oos_score = _oos_scores(enc, scorer, valid_data)
    threshold = (
        choose_oos_threshold(in_score, in_correct, oos_score, max_drop=args.oos_target_drop)
        if n_valid
        else -1.0
    )
    metrics = _valid_metrics(in_correct, in_score, oos_score, threshold)
    return Calibration(
        scorer.temperature,
        scorer.alpha,
        scorer.oos_method,
        threshold,
        bank,
        bank_labels,
        scorer.oos_bank,
        metrics,
    )


def _valid_metrics(
    in_correct: np.ndarray, in_score: np.ndarray, oos_score: np.ndarray | None, threshold: float
) -> dict[str, Any]:
    n_valid = len(in_correct)
    return {
        "valid_accuracy": float(in_correct.mean()) if n_valid else 0.0,
        "valid_accuracy_with_threshold": float((in_correct & (in_score >= threshold)).mean())
        if n_valid
        else 0.0,
        "valid_oos_recall": float((oos_score < threshold).mean())
        if oos_score is not None
        else None,
        "valid_n": n_valid,
    }


def _oos_scores(enc: Encoder, scorer: _Scorer, valid: IntentDataset) -> np.ndarray | None:
    """In-scope scores of the validation set's out-of-scope examples (None: it has none)."""
    oos_rows = [i for i, y in enumerate(valid.labels) if y == OOS_LABEL]
    if not oos_rows:
        return None
    oos_emb = enc.embed_all(enc.ids([valid.texts[i] for i in oos_rows]))
    knn_probs, knn_sim = scorer.knn(oos_emb)
    score: np.ndarray = scorer.in_scope(oos_emb, knn_sim, scorer.probs(oos_emb, knn_probs)).numpy()
    return score
