"""The encoder being fine-tuned: loading it, and mean-pooled embeddings of token ids.

Pooling is the served classifier's (`deskbot.bot.nlu.classifier`, whose import also
keeps the model hub offline, as serving does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deskbot.bot.nlu.classifier import mean_pool

Ids = Sequence[Sequence[int]]

if TYPE_CHECKING:
    import torch
    from torch import Tensor


@dataclass
class Encoder:
    """A transformer encoder and its tokenizer on one device.

    Attributes:
        model: the `transformers` model (trained in place).
        tokenizer: its tokenizer.
        device: a `torch.device`.
        max_length: token ids per text at most.
    """

    model: Any
    tokenizer: Any
    device: torch.device
    max_length: int

    @classmethod
    def load(
        cls, source: str, device: torch.device, *, max_length: int, freeze_embeddings: bool
    ) -> Encoder:
        """Load from a model folder; the pooler (unused) and token embeddings frozen."""
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModel.from_pretrained(source, local_files_only=True).to(device)
        if getattr(model, "pooler", None) is not None:
            model.pooler.requires_grad_(False)  # mean pooling: the pooler is unused
        if freeze_embeddings:
            for name, p in model.embeddings.named_parameters():
                if "LayerNorm" not in name:
                    p.requires_grad_(False)
        return cls(model, tokenizer, device, max_length)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def ids(self, texts: list[str]) -> list[list[int]]:
        ids: list[list[int]] = self.tokenizer(texts, truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        return ids

    def pad(self, seqs: Ids) -> tuple[Tensor, Tensor]:
        """A batch of token id sequences as a padded id matrix and its attention mask,
        on the encoder's device."""
        import torch

        pad_id = self.tokenizer.pad_token_id or 0
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        return ids.to(self.device), mask.to(self.device)

    def embed(self, seqs: Ids) -> Tensor:
        """Mean-pooled embeddings of a batch, with gradients (training mode as set)."""
        batch_ids, mask = self.pad(seqs)
        hidden = self.model(input_ids=batch_ids, attention_mask=mask).last_hidden_state
        pooled: Tensor = mean_pool(hidden, mask)
        return pooled

    def embed_all(self, all_ids: Ids) -> Tensor:
        """Float32 CPU embeddings of every sequence, in eval mode, batched by length."""
        import torch

        self.model.eval()
        order = sorted(range(len(all_ids)), key=lambda i: len(all_ids[i]))
        out = torch.zeros((len(all_ids), self.hidden_size))
        with torch.inference_mode():
            for s0 in range(0, len(order), 128):
                part = order[s0 : s0 + 128]
                out[part] = self.embed([all_ids[i] for i in part]).float().cpu()
        return out
