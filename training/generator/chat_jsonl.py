"""The generator's examples as chat-format JSONL, the format other fine-tuning tools read.

One example a line, as TRL's `SFTTrainer` and OpenAI's fine-tuning API read it, plus a
`meta` object of ours (ignored by them)::

    {"messages": [{"role": "system", "content": "You are ... Passages:\\n[1] ..."},
                  {"role": "user", "content": "my card hasn't arrived"},
                  {"role": "assistant", "content": "Cards usually arrive ... [1]."}],
     "meta": {"source": "faq", "group": "faq:card-arrival", "split": "train", ...}}

The messages before the last are the prompt exactly as the served generator builds it
(`deskbot.bot.generation.prompting.build_messages`); the last, the assistant's, is the
reply the model learns. `meta.split` is "train" or "heldout"; `meta.group` is the unit
the split was drawn by (a conversation, an FAQ entry): no group is in both splits.

Reading checks every line first and refuses the whole file with `FILE:LINE: what to
fix` at the first bad one, so a refused file trains nothing and writes nothing.

Example:
    >>> write_examples(export.examples, Path("generator.jsonl"))  # doctest: +SKIP
    >>> examples = read_examples(Path("generator.jsonl"))          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deskbot.bot.core.errors import DataError
from deskbot.bot.generation.prompting import ChatMessage
from deskbot.knowledge.files.fsutil import atomic_write_text
from deskbot.training.data.datasets import normalize_text

__all__ = ["HELDOUT", "ROLES", "TRAIN", "ChatExample", "read_examples", "write_examples"]

TRAIN, HELDOUT = "train", "heldout"
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatExample:
    """One supervised example: the served prompt's messages, then the reply.

    Attributes:
        messages: system, then the conversation (user first), the assistant's reply last.
        meta: where it came from: `source` (faq, agent, import, label), `group` (the
            split unit), `split` (train or heldout), ids of the turns and passages.
    """

    messages: tuple[ChatMessage, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> list[ChatMessage]:
        """The messages the model is given (everything but the reply)."""
        return [dict(m) for m in self.messages[:-1]]

    @property
    def reply(self) -> str:
        return self.messages[-1]["content"]

    @property
    def split(self) -> str:
        return str(self.meta.get("split", TRAIN))

    @property
    def group(self) -> str:
        return str(self.meta.get("group", ""))

    @property
    def key(self) -> str:
        """The identity of the example for de-duplication: its normalised prompt and reply
        (case and whitespace do not make two examples different)."""
        h = hashlib.sha256()
        for m in self.messages:
            h.update(m["role"].encode())
            h.update(b"\x00")
            h.update(normalize_text(m["content"]).casefold().encode("utf-8"))
            h.update(b"\x01")
        return h.hexdigest()[:32]

    def to_json(self) -> str:
        return json.dumps(
            {"messages": [dict(m) for m in self.messages], "meta": self.meta}, ensure_ascii=False
        )


def write_examples(examples: Iterable[ChatExample], path: Path) -> int:
    """Write `examples` to `path` as JSONL (atomically); returns how many."""
    lines = [e.to_json() for e in examples]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_examples(path: Path) -> list[ChatExample]:
    """The examples of a chat-format JSONL file, every line checked.

    A line without `meta.split` is a training example.

    Raises:
        DataError: the file is missing or empty, or a line is not a valid example
            (`FILE:LINE: what to fix`).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    out: list[ChatExample] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(_example(line))
        except ValueError as exc:
            raise DataError(f"{path}:{number}: {exc}") from None
    if not out:
        raise DataError(f"{path}: no examples (one JSON object a line, with 'messages')")
    return out


def _example(line: str) -> ChatExample:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object with 'messages'")
    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list of {role, content}")
    checked = tuple(_message(m, i) for i, m in enumerate(messages))
    _check_order(checked)
    meta = raw.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError("'meta' must be an object")
    if meta.get("split", TRAIN) not in (TRAIN, HELDOUT):
        raise ValueError(f"meta.split must be {TRAIN!r} or {HELDOUT!r}, not {meta['split']!r}")
    return ChatExample(checked, meta)


def _message(m: object, i: int) -> ChatMessage:
    if not isinstance(m, dict):
        raise ValueError(f"messages[{i}] must be an object with 'role' and 'content'")
    role, content = m.get("role"), m.get("content")
    if role not in ROLES:
        raise ValueError(f"messages[{i}].role must be one of {', '.join(ROLES)}, not {role!r}")
    if not isinstance(content, str) or not content.strip():
        raise ValueError(f"messages[{i}].content must be a non-empty string")
    return {"role": role, "content": content}


def _check_order(messages: Sequence[ChatMessage]) -> None:
    if messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's reply to learn")
    if not any(m["role"] == "user" for m in messages[:-1]):
        raise ValueError("no user message before the reply")
    if any(m["role"] == "system" for m in messages[1:]):
        raise ValueError("a system message may only come first")
