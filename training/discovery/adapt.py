"""The encoder adapted to a team's own unlabelled messages: neighbour-contrastive learning.

As CLNN (Zhang et al., 2022) without its labelled part: each message's nearest
neighbours in the frozen encoder's space are taken as its likely same-intent peers; a
short fine-tune pulls a message and a sampled neighbour (each with random token dropout)
together and pushes the rest of the batch away (a supervised-contrastive loss whose
positives are the pairs in each other's neighbour lists). Clusters then form on the
adapted, mean-pooled embeddings; the small projection head is thrown away.

Only the top layers are adapted, over the lower layers' output computed once
(`LayerCache`): on two CPU cores a full fine-tune step costs about three times as much.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from deskbot.training.intents.encoding import Encoder

if TYPE_CHECKING:
    import torch
    from torch import Tensor

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class AdaptArgs:
    """How the encoder is adapted.

    Attributes:
        steps: optimiser steps (0: the frozen encoder).
        batch_size: anchors a step (each brings one neighbour: twice as many texts).
        neighbours: nearest neighbours mined per message.
        lr: AdamW learning rate of the encoder (the head gets ten times this).
        temperature: of the contrastive softmax.
        token_dropout: chance that a word piece is left out of a view.
        max_length: word pieces per message at most.
        train_layers: transformer layers adapted, from the top (the rest stay frozen).
        seed: for sampling, dropout and the head's initial weights.
    """

    steps: int = 200
    batch_size: int = 32
    neighbours: int = 20
    lr: float = 5e-5
    temperature: float = 0.07
    token_dropout: float = 0.2
    max_length: int = 32
    train_layers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be 0 or more, not {self.steps}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be 2 or more, not {self.batch_size}")
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be 1 or more, not {self.neighbours}")
        if not 0.0 <= self.token_dropout < 1.0:
            raise ValueError(f"token_dropout must be in [0, 1), not {self.token_dropout}")
        if self.train_layers < 1:
            raise ValueError(f"train_layers must be 1 or more, not {self.train_layers}")
        if not 8 <= self.max_length <= 256:
            raise ValueError(f"max_length must be between 8 and 256, not {self.max_length}")


def normalised(x: np.ndarray) -> np.ndarray:
    out = np.asarray(x, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return np.asarray(out / norms, dtype=np.float32)


def nearest_neighbours(vectors: np.ndarray, k: int, *, cells: int = 32 * 1024 * 1024) -> np.ndarray:
    """Indices of each row's `k` nearest other rows by cosine (rows L2-normalised),
    computed a block of rows at a time: at most `cells` similarities at once (128 MB,
    plus twice that for the partition's indices), whatever the number of rows."""
    n = len(vectors)
    k = min(k, n - 1)
    out = np.zeros((n, max(k, 0)), dtype=np.int64)
    if k <= 0:
        return out
    block = max(1, cells // n)
    for s in range(0, n, block):
        sims = vectors[s : s + block] @ vectors.T
        rows = np.arange(sims.shape[0])
        sims[rows, rows + s] = -np.inf  # not its own neighbour
        part = np.argpartition(sims, n - k, axis=1)[:, n - k :]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[s : s + block] = np.take_along_axis(part, order, axis=1)
    return out


class LayerCache:
    """The frozen lower layers' output for every message, computed once.

    Only the top `train_layers` transformer layers are adapted: the layers below run
    once per message (not once per step), which makes a step about a third of a full
    fine-tune's on a 6-layer encoder. States are kept in float16, without padding.
    """

    def __init__(self, encoder: Encoder, ids: list[list[int]], train_layers: int) -> None:
        import torch

        layers = encoder.model.encoder.layer
        self.encoder = encoder
        self.split = max(0, len(layers) - train_layers)
        for layer in layers[: self.split]:
            layer.requires_grad_(False)
        encoder.model.embeddings.requires_grad_(False)
        # One buffer for every message's states, each message a view of it: 100,000
        # small tensors allocated between the batches' large ones fragmented the heap
        # to five times their size.
        offsets = np.concatenate([[0], np.cumsum([len(x) for x in ids])]).tolist()
        flat = torch.empty((offsets[-1], encoder.hidden_size), dtype=torch.float16)
        self.states: list[Tensor] = [flat[offsets[i] : offsets[i + 1]] for i in range(len(ids))]
        encoder.model.eval()
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        with torch.inference_mode():
            for s0 in range(0, len(order), 128):
                part = order[s0 : s0 + 128]
                batch, mask = encoder.pad([ids[i] for i in part])
                h = encoder.model.embeddings(input_ids=batch)
                for layer in layers[: self.split]:
                    h = _run(layer, h, mask)
                for row, i in enumerate(part):
                    self.states[i].copy_(h[row, : len(ids[i])])

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for layer in self.top for p in layer.parameters()]

    @property
    def top(self) -> list[torch.nn.Module]:
        return list(self.encoder.model.encoder.layer[self.split :])

    def forward(self, rows: list[Tensor]) -> Tensor:
        """Mean-pooled output of the top layers for cached (or dropped-out) states."""
        import torch

        from deskbot.bot.nlu.classifier import mean_pool

        width = max(len(r) for r in rows)
        h = torch.zeros((len(rows), width, rows[0].shape[-1]))
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            h[j, : len(r)] = r.float()
            mask[j, : len(r)] = 1
        h, mask = h.to(self.encoder.device), mask.to(self.encoder.device)
        for layer in self.top:
            h = _run(layer, h, mask)
        pooled: Tensor = mean_pool(h, mask)
        return pooled

    def embed_all(self) -> np.ndarray:
        """L2-normalised embeddings of every message through the (adapted) top layers."""
        import torch

        for layer in self.top:
            layer.eval()
        order = sorted(range(len(self.states)), key=lambda i: len(self.states[i]))
        out = np.zeros((len(order), self.encoder.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for s0 in range(0, len(order), 256):
                part = order[s0 : s0 + 256]
                out[part] = self.forward([self.states[i] for i in part]).float().cpu().numpy()
        return normalised(out)


def _run(layer: torch.nn.Module, h: Tensor, mask: Tensor) -> Tensor:
    """One transformer layer with padding masked out (an additive mask, as BERT's own)."""
    import torch

    additive = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
    out = layer(h, attention_mask=additive)
    result: Tensor = out[0] if isinstance(out, tuple) else out
    return result


def _drop_tokens(state: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """A view of one message: its first and last positions ([CLS], [SEP]) kept, each
    word piece between them dropped with chance `p` (at least one kept)."""
    import torch

    n = len(state)
    if n <= 3 or p == 0:
        return state
    keep = torch.rand(n, generator=gen) >= p
    keep[0] = keep[-1] = True
    if not keep[1:-1].any():
        keep[1 + int(torch.randint(n - 2, (1,), generator=gen))] = True
    return state[keep]


def _contrastive_loss(z: Tensor, positives: Tensor, temperature: float) -> Tensor:
    """Mean over anchors of -log p(positive) among the rest of the batch."""
    import torch

    logits = z @ z.t() / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = positives & ~eye
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(1)) / pos.sum(1).clamp(min=1)
    return per_anchor.mean()


def adapt(
    encoder: Encoder,
    ids: list[list[int]],
    args: AdaptArgs,
    *,
    progress: Progress | None = None,
) -> np.ndarray:
    """Adapt the top layers of `encoder` to `ids` (in place); return the messages'
    L2-normalised embeddings after adaptation (before it, when `args.steps` is 0)."""
    import torch

    cache = LayerCache(encoder, ids, args.train_layers)
    start = cache.embed_all()
    if args.steps == 0 or len(ids) < 3:
        return start
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    knn = nearest_neighbours(start, args.neighbours)
    hidden = encoder.hidden_size
    head = torch.nn.Sequential(
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 128)
    ).to(encoder.device)
    trainable = cache.trainable()
    optimiser = torch.optim.AdamW(
        [{"params": trainable, "lr": args.lr}, {"params": head.parameters(), "lr": args.lr * 10}],
        weight_decay=0.01,
    )
    warm = max(1, args.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / warm) * max(0.0, 1 - step / args.steps)
    )
    m = min(args.batch_size, len(ids))
    order = rng.permutation(len(ids))
    at = 0
    for layer in cache.top:
        layer.train()
    for step in range(args.steps):
        if at + m > len(order):
            order, at = rng.permutation(len(ids)), 0
        anchors = order[at : at + m]
        at += m
        peers = knn[anchors, rng.integers(0, knn.shape[1], m)]
        batch = np.concatenate([anchors, peers])
        # Positives: the same message, or one in the other's neighbour list.
        same = batch[:, None] == batch[None, :]
        listed = (knn[batch][:, :, None] == batch[None, None, :]).any(axis=1)
        positives = torch.from_numpy(same | listed | listed.T)
        pair = torch.arange(2 * m)
        positives[pair, (pair + m) % (2 * m)] = True  # a message and its sampled neighbour
        views = [_drop_tokens(cache.states[i], args.token_dropout, gen) for i in batch]
        z = torch.nn.functional.normalize(head(cache.forward(views)), dim=-1)
        loss = _contrastive_loss(z, positives.to(encoder.device), args.temperature)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimiser.step()
        schedule.step()
        if step % 50 == 0:
            logger.info("adapt step %d/%d loss %.3f", step, args.steps, loss.item())
        if progress is not None:
            progress(step + 1, args.steps)
    return cache.embed_all()


def load_encoder(model: str, max_length: int) -> Encoder:
    """The project's encoder (a model folder or a package carrying one) on the CPU."""
    import torch

    from deskbot.knowledge.embedding.embedder import resolve_model_path

    path = resolve_model_path(model)
    return Encoder.load(
        str(path), torch.device("cpu"), max_length=max_length, freeze_embeddings=True
    )
