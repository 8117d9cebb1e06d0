"""Examples as token ids, the prompt masked: the model learns the reply only.

The prompt is rendered with the model's chat template exactly as the served generator
renders it (`apply_chat_template(..., add_generation_prompt=True)`, then tokenised
without special tokens); the reply is what the template writes after it for the
assistant's message (its end-of-turn marker included, so the model learns to stop).

The loss and the accuracy are taken on the reply's tokens only, and the output layer
is applied to those positions alone (a 49k-word vocabulary over every prompt token
would cost about a fifth of the forward pass for nothing).

The examples of a batch share the start of their prompt (the rules at least, and the
passages too when they were retrieved alike): that shared prefix is run once, its keys
and values given to every example, and only the rest is run per example. The loss and
the gradients are the same as running each example whole (to 1e-7 on the demo's
examples); a batch of three examples with the same passages took 5.1 s instead of 9.7 s
for a forward and backward pass on 2 cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deskbot.bot.core.errors import DataError
from deskbot.training.generator.chat_jsonl import ChatExample

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["IGNORE", "Encoded", "ReplyScore", "collate", "encode", "reply_score", "shared_prefix"]

IGNORE = -100
# A shared prefix shorter than this is not worth a second pass of the model.
_MIN_SHARED = 32


@dataclass(frozen=True)
class Encoded:
    """One example's token ids; the reply starts at `prompt_len`."""

    input_ids: tuple[int, ...]
    prompt_len: int
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


def encode(example: ChatExample, tok: PreTrainedTokenizerBase, max_length: int) -> Encoded:
    """The example's ids, at most `max_length`: the reply kept (up to half of it), the
    middle of the prompt cut (its start, the rules and first passages, and its end, the
    customer's latest message and the assistant's header, stay).

    Raises:
        DataError: the chat template does not render the prompt as the start of the
            whole conversation (the reply's tokens could not be told apart).
    """
    prompt_text = tok.apply_chat_template(
        example.prompt, add_generation_prompt=True, tokenize=False
    )
    whole = tok.apply_chat_template(list(example.messages), tokenize=False)
    if not whole.startswith(prompt_text):
        raise DataError(
            "the generator's chat template does not start the whole conversation with the "
            "prompt it renders for a reply; its reply tokens cannot be masked"
        )
    prompt = tok(prompt_text, add_special_tokens=False)["input_ids"]
    reply = tok(whole[len(prompt_text) :], add_special_tokens=False)["input_ids"]
    if len(prompt) + len(reply) <= max_length:
        return Encoded(tuple(prompt + reply), len(prompt))
    reply = reply[: max(max_length // 2, max_length - len(prompt))]
    budget = max_length - len(reply)
    if len(prompt) > budget:
        tail = budget // 4
        prompt = prompt[: budget - tail] + prompt[len(prompt) - tail :]
    return Encoded(tuple(prompt + reply), len(prompt), truncated=True)


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, the attention mask, and labels (IGNORE on prompt and padding)."""
    import torch

    width = max(len(e) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, e.prompt_len : n] = ids[i, e.prompt_len : n]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@dataclass(frozen=True)
class ReplyScore:
    """A batch's summed reply-token loss, and its reply tokens and correct predictions."""

    loss_sum: torch.Tensor
    tokens: int
    correct: int


def shared_prefix(batch: Sequence[Encoded]) -> int:
    """The tokens every example of `batch` starts with, within every prompt and short of
    its last token (whose output predicts the reply's first); 0 when not worth sharing."""
    if len(batch) < 2:
        return 0
    limit = min(e.prompt_len for e in batch) - 1
    first = batch[0].input_ids
    n = 0
    while n < limit and all(e.input_ids[n] == first[n] for e in batch[1:]):
        n += 1
    return n if n >= _MIN_SHARED else 0


def reply_score(
    model: PreTrainedModel, batch: dict[str, torch.Tensor], prefix: int = 0
) -> ReplyScore:
    """Cross-entropy of the reply tokens (each predicted from the tokens before it).

    `prefix`: tokens all the batch's rows share (`shared_prefix`), run once.
    """
    import torch.nn.functional as F

    if prefix:
        hidden = _after_shared_prefix(model, batch, prefix)
        labels = batch["labels"][:, prefix:]
    else:
        hidden = model.get_decoder()(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        labels = batch["labels"]
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = model.get_output_embeddings()(hidden[:, :-1][keep]).float()
    wanted = targets[keep]
    loss_sum = F.cross_entropy(logits, wanted, reduction="sum")
    correct = int((logits.detach().argmax(dim=-1) == wanted).sum())
    return ReplyScore(loss_sum, int(keep.sum()), correct)


def _after_shared_prefix(
    model: PreTrainedModel, batch: dict[str, torch.Tensor], prefix: int
) -> torch.Tensor:
    """The hidden states of the tokens after `prefix`: the prefix run once (batch 1), its
    keys and values expanded to every row (gradients flow back through them)."""
    import torch
    from transformers import DynamicCache

    decoder = model.get_decoder()
    ids = batch["input_ids"]
    rows = ids.shape[0]
    shared = decoder(input_ids=ids[:1, :prefix], use_cache=True).past_key_values
    cache = DynamicCache(config=model.config)
    for i, layer in enumerate(shared.layers):
        cache.update(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1), i)
    positions = torch.arange(prefix, ids.shape[1], device=ids.device).expand(rows, -1)
    hidden: torch.Tensor = decoder(
        input_ids=ids[:, prefix:],
        attention_mask=batch["attention_mask"],
        past_key_values=cache,
        position_ids=positions,
        use_cache=True,
    ).last_hidden_state
    return hidden
