"""The retrieved unit of knowledge."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of knowledge a reply can cite by `id`.

    `text` is what the bot may say (an FAQ answer, a document section); `question` is
    the FAQ question it answers, empty for document passages.
    """

    id: str
    text: str
    score: float
    source: str
    question: str = ""
    intent: str | None = None
    url: str | None = None
