"""The training losses: cross-entropy on the cosine head plus a supervised-contrastive term."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor
    from torch.nn import Module

    from deskbot.training.intents.args import TrainingArgs


def supcon_loss(emb: Tensor, y: Tensor, temp: float) -> Tensor:
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


def batch_loss(emb: Tensor, y: Tensor, head: Tensor, dropout: Module, args: TrainingArgs) -> Tensor:
    """Cross-entropy of the cosine head (with dropout on the embeddings), plus
    `args.supcon` times the supervised-contrastive loss."""
    import torch.nn.functional as F

    from deskbot.bot.nlu.classifier import cosine_logits

    logits = cosine_logits(dropout(emb), head, args.cos_scale)
    loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
    if args.supcon > 0:
        loss = loss + args.supcon * supcon_loss(emb, y, args.supcon_temp)
    return loss
