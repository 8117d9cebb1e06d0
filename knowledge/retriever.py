"""`FaissRetriever`: the FAQ answers closest to a query, optionally routed by intent.

Example:
    >>> r = FaissRetriever("var/indexes/faq", SentenceTransformerEmbedder())  # doctest: +SKIP
    >>> [p.id for p in r.retrieve("my card hasn't arrived", top_k=1)]         # doctest: +SKIP
    ['card-arrival']
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from deskbot.knowledge.embedder import Embedder
from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.index import LoadedIndex, load_version, read_pointer
from deskbot.knowledge.passage import Passage

logger = logging.getLogger(__name__)


class Retriever(Protocol):
    def retrieve(
        self, query: str, *, top_k: int = 3, intent: str | None = None
    ) -> list[Passage]: ...


class FaissRetriever:
    """Dense retrieval over a versioned faiss index directory.

    A new live version (written by `deskbot ingest`) is picked up on the next query;
    if it cannot be loaded, the version already in memory keeps serving.

    Args:
        index_dir: the index directory (see `deskbot.knowledge.index`).
        embedder: must be the embedder the index was built with.
        intent_bonus: added to the score of passages tagged with the predicted intent:
            enough to break near-ties, not enough to hide a clearly better match.
    """

    def __init__(
        self, index_dir: str | Path, embedder: Embedder, *, intent_bonus: float = 0.1
    ) -> None:
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.intent_bonus = intent_bonus
        self._loaded: LoadedIndex | None = None
        self._refused: str | None = (
            None  # a live version that failed to load: not retried per query
        )
        self._lock = threading.Lock()

    @property
    def version(self) -> str | None:
        return self._loaded.manifest.version if self._loaded else None

    def warm_up(self) -> None:
        self._current()

    def _current(self) -> LoadedIndex:
        live = read_pointer(self.index_dir)
        loaded = self._loaded
        if loaded is not None and live in (loaded.manifest.version, self._refused):
            return loaded
        with self._lock:
            if self._loaded is not None and self._loaded.manifest.version == live:
                return self._loaded
            try:
                fresh = load_version(self.index_dir)
            except IndexCorrupt:
                if self._loaded is None:
                    raise
                self._refused = live
                logger.exception(
                    "index version %s unreadable; still serving %s",
                    live,
                    self._loaded.manifest.version,
                )
                return self._loaded
            if fresh.manifest.embedder != self.embedder.model_id:
                raise IndexCorrupt(
                    f"{fresh.path}: built with embedder {fresh.manifest.embedder!r}, "
                    f"but the retriever uses {self.embedder.model_id!r}; re-ingest"
                )
            self._loaded = fresh
            logger.info("serving index version %s", fresh.manifest.version)
            return fresh

    def retrieve(self, query: str, *, top_k: int = 3, intent: str | None = None) -> list[Passage]:
        loaded = self._current()
        if not loaded.passages:
            return []
        q = self.embedder.embed([query])
        # Search wider than top_k so that an intent-tagged passage just outside it can move up.
        k = min(len(loaded.passages), max(top_k * 4, 20))
        scores, rows = loaded.index.search(q, k)
        ranked: list[tuple[float, float, int]] = []
        for score, row in zip(scores[0], rows[0], strict=True):
            if row < 0:
                continue
            p = loaded.passages[row]
            bonus = self.intent_bonus if intent is not None and p.intent == intent else 0.0
            ranked.append((float(score) + bonus, float(score), int(row)))
        ranked.sort(key=lambda t: -t[0])
        out = []
        for _, raw, row in ranked[:top_k]:
            p = loaded.passages[row]
            out.append(
                Passage(
                    id=p.id,
                    text=p.text,
                    score=raw,
                    source=p.source,
                    question=p.question,
                    intent=p.intent,
                    url=p.url,
                )
            )
        return out

    def vectors(self) -> np.ndarray:
        return self._current().vectors
