"""The units of knowledge: what the index stores (`IndexedPassage`) and what a search returns (`Passage`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of knowledge a reply can cite by `id` (and `source`, `line`).

    `text` is what the bot may say (an FAQ answer, a document section); `question` is
    the FAQ question it answers, empty for document passages, whose heading path is
    `title` instead.

    Scores:
        score: the cosine similarity (-1..1) between the query and the passage's
            closest vector (its question or one of its alternative phrasings; a
            document passage's title and text). No intent bonus and no lexical score
            is in it, so one threshold means the same for every query: compare it
            with the retriever's `min_score`.
        rank_score: what the results are ordered by: `score` plus the intent bonus
            and the weighted BM25 score.
        lexical_score: BM25, scaled to 0..1 by the query's best passage.
        answerable: `score >= min_score` of the retriever that found it; under it the
            bot must not answer from this passage.
    """

    id: str
    text: str
    score: float
    source: str
    question: str = ""
    intent: str | None = None
    url: str | None = None
    title: str = ""
    tags: tuple[str, ...] = ()
    line: int | None = None
    position: int = 0
    rank_score: float = 0.0
    lexical_score: float = 0.0
    answerable: bool = True


@dataclass(frozen=True, slots=True)
class IndexedPassage:
    """What the index stores about each vector (row i of the index is passages[i])."""

    id: str
    text: str
    source: str
    question: str = ""
    intent: str | None = None
    tags: tuple[str, ...] = ()
    url: str | None = None
    content_hash: str = ""
    title: str = ""
    line: int | None = None
    position: int = 0
    alternatives: tuple[str, ...] = ()
