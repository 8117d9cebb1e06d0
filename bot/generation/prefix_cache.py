"""The start every prompt shares, run through the model once: a reply waits for the rest.

Every prompt the local generator renders begins with the same tokens: the chat
template's system header and the rules, up to the first passage (about 130 of the 400
to 600 tokens of a demo prompt). `PromptPrefix` finds them (the longest common token
prefix of two prompts that differ in everything else, short of its last token, which
the tokenizer could merge with what follows), runs them once when the model loads, and
hands each prefill a copy of their keys and values; the prefill then runs only the
passages and the conversation. This is the automatic prefix caching of vLLM and
llama.cpp for the one prefix that is always there; the reply is the same (the model sees
the same tokens at the same positions).

Only a batch of one prompt without padding uses it (left padding would shift the
prefix's positions): the CPU serves one conversation at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import DynamicCache, PreTrainedModel

__all__ = ["PromptPrefix", "common_prefix"]

# A shared start shorter than this is not worth keeping.
MIN_TOKENS = 16


def common_prefix(prompts: Sequence[Sequence[int]]) -> list[int]:
    """The token ids every prompt starts with, short of the last one they share."""
    first = list(prompts[0])
    n = 0
    while n < len(first) and all(len(p) > n and p[n] == first[n] for p in prompts[1:]):
        n += 1
    return first[: max(n - 1, 0)]


@dataclass(frozen=True)
class PromptPrefix:
    """The shared start's token ids and each layer's keys and values for them."""

    ids: tuple[int, ...]
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]

    @classmethod
    def build(cls, model: PreTrainedModel, prompts: Sequence[Sequence[int]]) -> PromptPrefix | None:
        """Run the start `prompts` share through `model`; None when it is too short."""
        import torch

        ids = common_prefix(prompts)
        if len(ids) < MIN_TOKENS:
            return None
        device = next(model.parameters()).device
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
        layers = out.past_key_values.layers
        return cls(tuple(ids), tuple(x.keys for x in layers), tuple(x.values for x in layers))

    def __len__(self) -> int:
        return len(self.ids)

    def starts(self, input_ids: torch.Tensor, mask: torch.Tensor) -> bool:
        """Whether this is one unpadded prompt that begins with the prefix and goes on."""
        n = len(self.ids)
        if input_ids.shape[0] != 1 or input_ids.shape[1] <= n or not bool(mask.all()):
            return False
        return tuple(input_ids[0, :n].tolist()) == self.ids

    def cache(self, config: object) -> DynamicCache:
        """A new cache holding a copy of the prefix's keys and values."""
        from transformers import DynamicCache

        cache = DynamicCache(config=config)
        for i, (k, v) in enumerate(zip(self.keys, self.values, strict=True)):
            cache.update(k.clone(), v.clone(), i)
        return cache
