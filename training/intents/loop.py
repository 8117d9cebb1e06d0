"""The epoch loop: AdamW with warm-up and linear decay, early stopping on validation.

The best epoch on validation is kept (encoder weights and head).
"""

from __future__ import annotations

import copy
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from deskbot.training.intents.args import TrainingArgs
from deskbot.training.intents.encoding import Encoder
from deskbot.training.intents.losses import batch_loss
from deskbot.training.intents.samplers import length_bucketed_batches, pk_batches, word_dropout

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from torch import Tensor
    from torch.nn import Module
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler


@dataclass
class TrainingSet:
    """What the loop trains on: texts, their token ids and targets, and the validation rows."""

    texts: list[str]
    ids: list[list[int]]
    targets: Tensor  # label ids, on the device
    valid_ids: list[list[int]]
    valid_y: Tensor  # label ids, on the CPU
    few_shot: bool


@dataclass
class _Progress:
    step: int = 0
    best_acc: float = -1.0
    best_state: tuple[dict[str, Any], Tensor] | None = None
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def _optimizer(
    enc: Encoder, head: Tensor, args: TrainingArgs, total_steps: int
) -> tuple[Optimizer, LRScheduler]:
    """AdamW (no decay on biases and LayerNorm, a higher rate for the head) and its schedule."""
    import torch

    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    named = [(n, p) for n, p in enc.model.named_parameters() if p.requires_grad]
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
    return optim, sched


def fine_tune(
    enc: Encoder,
    head: Tensor,
    data: TrainingSet,
    args: TrainingArgs,
    *,
    progress: bool,
    on_epoch: Callable[[dict[str, float]], None] | None,
) -> tuple[Tensor, list[dict[str, float]], int]:
    """Train `enc` and `head` for up to `args.epochs`; return the best head, the history
    and the optimiser steps taken (the encoder holds the best epoch's weights)."""
    import torch

    dropout = torch.nn.Dropout(0.1)
    total_steps = math.ceil(len(data.texts) / args.batch_size) * args.epochs
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    optim, sched = _optimizer(enc, head, args, total_steps)
    rng = random.Random(args.seed)
    state = _Progress()
    bar = tqdm(total=total_steps, desc="fine-tuning", unit="step", disable=not progress)
    for epoch in range(1, args.epochs + 1):
        running, n_batches = _train_epoch(
            enc, head, data, args, (optim, sched, dropout), rng, state, bar, epoch
        )
        record = {
            "epoch": float(epoch),
            "step": float(state.step),
            "train_loss": running / max(1, n_batches),
            "valid_accuracy": _valid_accuracy(enc, head, data, args),
        }
        state.history.append(record)
        if on_epoch:
            on_epoch(record)
        logger.info("epoch %d: valid accuracy %.4f", epoch, record["valid_accuracy"])
        if _should_stop(state, record["valid_accuracy"], enc, head, args):
            break
    bar.close()
    if state.best_state is not None:
        enc.model.load_state_dict(state.best_state[0])
        head = torch.nn.Parameter(state.best_state[1])
    return head, state.history, state.step


def _should_stop(
    state: _Progress, val_acc: float, enc: Encoder, head: Tensor, args: TrainingArgs
) -> bool:
    """Keep the best epoch; stop after `patience` epochs without improvement or at `max_steps`."""
    if val_acc > state.best_acc:
        state.best_acc, state.bad_epochs = val_acc, 0
        state.best_state = (copy.deepcopy(enc.model.state_dict()), head.detach().clone())
    else:
        state.bad_epochs += 1
        if state.bad_epochs > args.patience:
            return True
    return bool(args.max_steps and state.step >= args.max_steps)


def _epoch_batches(
    enc: Encoder, data: TrainingSet, args: TrainingArgs, rng: random.Random
) -> tuple[list[list[int]], list[list[int]]]:
    """This epoch's token ids (words dropped anew) and its batches of row indices."""
    epoch_ids = data.ids
    if args.word_dropout > 0:
        epoch_ids = enc.ids([word_dropout(t, args.word_dropout, rng) for t in data.texts])
    if data.few_shot:
        batches = pk_batches(data.targets.tolist(), max(1, args.batch_size // 4), 4, rng)
    else:
        batches = length_bucketed_batches(epoch_ids, args.batch_size, rng)
    return epoch_ids, batches


def _train_epoch(
    enc: Encoder,
    head: Tensor,
    data: TrainingSet,
    args: TrainingArgs,
    optimiser: tuple[Optimizer, LRScheduler, Module],
    rng: random.Random,
    state: _Progress,
    bar: Any,
    epoch: int,
) -> tuple[float, int]:
    """One pass over the batches; returns the summed loss and the number of batches."""
    import torch

    optim, sched, dropout = optimiser
    enc.model.train()
    epoch_ids, batches = _epoch_batches(enc, data, args, rng)
    running = 0.0
    for batch in batches:
        with torch.autocast(enc.device.type, dtype=torch.bfloat16, enabled=args.bf16):
            emb = enc.embed([epoch_ids[i] for i in batch])
        loss = batch_loss(emb.float(), data.targets[batch], head, dropout, args)
        optim.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_([*enc.model.parameters(), head], 1.0)
        optim.step()
        sched.step()
        state.step += 1
        running += loss.item()
        bar.update(1)
        bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
        if args.max_steps and state.step >= args.max_steps:
            break
    return running, len(batches)


def _valid_accuracy(enc: Encoder, head: Tensor, data: TrainingSet, args: TrainingArgs) -> float:
    from deskbot.bot.nlu.classifier import cosine_logits

    if not len(data.valid_y):
        return 0.0
    val_emb = enc.embed_all(data.valid_ids)
    predicted = cosine_logits(val_emb, head.detach().cpu(), args.cos_scale).argmax(-1)
    return float((predicted == data.valid_y).float().mean())
