"""Shared set-up of the generator's training tests: short chat examples and tiny runs.

The examples are short (a one-passage system prompt, a question, a reply) so that a
run of a few steps of the real offline model (SmolLM2-135M-Instruct) takes seconds.
"""

from __future__ import annotations

from typing import Any

from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.prompting import build_messages
from deskbot.training.generator.args import GeneratorTrainingArgs
from deskbot.training.generator.chat_jsonl import HELDOUT, TRAIN, ChatExample

# (question, passage, reply): each reply is its passage's fact, cited.
_QA = (
    ("When does my card arrive?", "Cards arrive in 3 to 5 working days.", "In 3 to 5 working days [1]."),
    ("How do I freeze my card?", "Freeze a card under Cards > Freeze.", "Under Cards > Freeze [1]."),
    ("Is there a fee for top-ups?", "Top-ups by bank transfer are free.", "Bank transfer top-ups are free [1]."),
    ("Can I change my PIN?", "Change your PIN at any ATM.", "Yes, at any ATM [1]."),
    ("How long do transfers take?", "Transfers arrive within 2 hours.", "Within 2 hours [1]."),
)  # fmt: skip


def chat_example(i: int, *, split: str = TRAIN) -> ChatExample:
    """Example `i` of `_QA`, its prompt built as the served generator builds it."""
    question, text, reply = _QA[i % len(_QA)]
    passage = Passage(id=f"p{i}", text=text, score=0.9, source="faq.yaml")
    messages = build_messages([Turn("user", question)], [passage], bot_name="Northwind Bank")
    meta = {"source": "faq", "group": f"faq:p{i}", "split": split}
    return ChatExample((*messages, {"role": "assistant", "content": reply}), meta)


def tiny_examples(n_train: int = 4) -> tuple[list[ChatExample], list[ChatExample]]:
    """`n_train` training examples and one held-out example."""
    return [chat_example(i) for i in range(n_train)], [chat_example(4, split=HELDOUT)]


def tiny_args(**overrides: Any) -> GeneratorTrainingArgs:
    """A run of a few steps: two examples a step, short sequences, one thread."""
    settings: dict[str, Any] = {
        "batch_size": 2,
        "grad_accum": 1,
        "max_length": 160,
        "lr": 2e-3,
        "warmup_ratio": 0.0,
        "checkpoint_every": 0,
        "num_threads": 1,
        "device": "cpu",
    }
    return GeneratorTrainingArgs(**{**settings, **overrides})
