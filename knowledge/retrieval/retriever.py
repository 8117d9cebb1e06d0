"""`FaissRetriever`: the FAQ answers closest to a query, optionally routed by intent.

Example:
    >>> r = FaissRetriever("var/indexes/faq", SentenceTransformerEmbedder())  # doctest: +SKIP
    >>> [p.id for p in r.retrieve("my card hasn't arrived", top_k=1)]         # doctest: +SKIP
    ['card-arrival']
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from deskbot.knowledge.embedding.embedder import Embedder
from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.indexing.index import (
    CURRENT,
    LoadedIndex,
    load_version,
    read_pointer,
)
from deskbot.knowledge.indexing.ingest import embedding_texts
from deskbot.knowledge.passage import IndexedPassage, Passage
from deskbot.knowledge.retrieval.lexical import Bm25Index
from deskbot.knowledge.retrieval.ranking import best_rows, group_numbers
from deskbot.knowledge.sources.documents import section_key

logger = logging.getLogger(__name__)

# First set by benchmarks/quality/retrieval_quality.py on the demo FAQ's BANKING77 test
# queries (0.1 lifted top-1 from 92.1% to 92.9%); since chosen without a test set: the
# help-centre benchmark (benchmarks/quality/retrieval_prose.py) picks its BM25 weight on a
# validation half of its questions, and chose 0.1 among 0, 0.05, 0.1, 0.2 and 0.3.
DEFAULT_LEXICAL_WEIGHT = 0.1


#: Embeds texts as normalised float32 rows, one per text.
EmbedTexts = Callable[[Sequence[str]], np.ndarray]


class QueryEncoder(Protocol):
    """Another model that embeds the customer's message anyway: the intent classifier's
    encoder (`knowledge.query_encoder: intents`; `deskbot.bot.nlu.classifier.
    IntentSharedEncoder` is the one deskbot passes).

    Once the retriever has embedded the index with it too, a query that model already
    encoded is searched with that vector: no second encoder pass for the query.
    """

    def snapshot(self) -> tuple[str, EmbedTexts]:
        """The live model's id and a function that embeds with that very model
        (normalised float32 rows), fixed even if the live model changes meanwhile."""
        ...


#: The first name of `QueryEncoder`.
SharedEncoder = QueryEncoder


class Retriever(Protocol):
    """Finds the passages that answer a query. (`FaissRetriever.retrieve` also takes
    the vector a `QueryEncoder` computed for the query; a caller that passes it declares
    that signature itself, as the turn pipeline's `TurnRetriever` does.)"""

    def retrieve(
        self, query: str, *, top_k: int = 3, intent: str | None = None
    ) -> list[Passage]: ...


@dataclass
class _Served:
    """A loaded version with what retrieval derives from it once."""

    index: LoadedIndex
    starts: np.ndarray | None  # first vector row of each passage, when rows are grouped
    firsts: np.ndarray  # the row of each passage's main vector (its first)
    bm25: Bm25Index | None = None
    sections: np.ndarray | None = None  # a number per passage, shared by a section's pieces
    # The index's texts embedded by the shared encoder: (its model id, the vectors).
    shared: tuple[str, np.ndarray] | None = None


def lexical_text(passage: IndexedPassage) -> str:
    """What BM25 reads for a passage: its question, alternatives, title and text."""
    return " ".join((passage.question, *passage.alternatives, passage.title, passage.text))


class FaissRetriever:
    """Dense retrieval over a versioned faiss index directory, with intent routing and BM25.

    A new live version (written by `deskbot ingest`) is picked up on the next query;
    if it cannot be loaded, the version already in memory keeps serving.

    Args:
        index_dir: the index directory (see `deskbot.knowledge.indexing.index`).
        embedder: must be the embedder the index was built with.
        intent_bonus: added to the rank of passages tagged with the predicted intent:
            enough to break near-ties, not enough to hide a clearly better match.
        lexical_weight: weight of the BM25 score (0..1, by the query's best passage)
            added to the rank; 0 turns BM25 off. The default is what
            benchmarks/quality/retrieval_quality.py found best on the demo FAQ.
        main_weight: with several vectors a passage (alternatives, `question+sentences`),
            its dense rank is `main_weight` x the cosine of its main vector + the rest x
            its best vector's; 0: the best vector alone. On the help-centre questions 0.5
            ranked better than 0 for both encoders measured (benchmarks/quality/
            retrieval_prose.py): a sentence that matches well in a passage about
            something else counts for less. `Passage.score` stays the best cosine.
        min_score: under this cosine a passage is not `answerable`; None: all are.
        max_lexical_passages: BM25 is built in memory; above this many passages it is
            skipped (with a warning) rather than slowing every reload.
        shared_encoder: the intent model's encoder (`knowledge.query_encoder: intents`):
            the index's texts are embedded with it too, once per index version and
            model version (in the background after a change), and `retrieve` then takes
            the vector the classifier computed for the message (`vector_model` names its
            model). Until those vectors are ready, queries are embedded by `embedder` as
            usual. The search over them is exact (one matrix-vector product).
        distinct_sections: return at most one piece of a document section (its best);
            the next section takes the place a second piece would have had. FAQ
            entries are never cut, so this changes nothing for them.

    Example:
        >>> r = FaissRetriever("var/indexes/faq", SentenceTransformerEmbedder(), min_score=0.5)  # doctest: +SKIP
        >>> best = r.retrieve("my card hasn't arrived", top_k=3, intent="card_arrival")[0]  # doctest: +SKIP
        >>> best.id, best.answerable                                                  # doctest: +SKIP
        ('card-arrival', True)
    """

    def __init__(
        self,
        index_dir: str | Path,
        embedder: Embedder,
        *,
        intent_bonus: float = 0.1,
        lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
        main_weight: float = 0.0,
        min_score: float | None = None,
        max_lexical_passages: int = 200_000,
        shared_encoder: QueryEncoder | None = None,
        distinct_sections: bool = True,
    ) -> None:
        if not 0.0 <= lexical_weight <= 1.0:
            raise ValueError(f"lexical_weight must be within 0..1, got {lexical_weight}")
        if not 0.0 <= main_weight <= 1.0:
            raise ValueError(f"main_weight must be within 0..1, got {main_weight}")
        if min_score is not None and not -1.0 <= min_score <= 1.0:
            raise ValueError(f"min_score is a cosine, within -1..1; got {min_score}")
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.intent_bonus = intent_bonus
        self.lexical_weight = lexical_weight
        self.main_weight = main_weight
        self.min_score = min_score
        self.max_lexical_passages = max_lexical_passages
        self.distinct_sections = distinct_sections
        self._served: _Served | None = None
        self._refused: str | None = (
            None  # a live version that failed to load: not retried per query
        )
        self._problem: str | None = None  # why `_refused` could not be loaded
        self._lock = threading.Lock()
        self.shared_encoder = shared_encoder
        self._pointer_path = str(self.index_dir / CURRENT)
        # The live pointer as last read, with its file's (inode, mtime, size): a query
        # costs one stat() instead of reading the file (ingest replaces it by a rename).
        self._pointer: tuple[tuple[int, int, int], str | None] | None = None
        self._sharing: threading.Thread | None = None
        self._shared_failed: tuple[str, str] | None = None  # (index version, model) that failed

    @property
    def version(self) -> str | None:
        """The index version being served (None before the first load)."""
        return self._served.index.manifest.version if self._served else None

    @property
    def problem(self) -> str | None:
        """Why the live version is not the one served (it could not be loaded), else None."""
        return self._problem

    def warm_up(self) -> None:
        """Load the embedder and the live version now rather than on the first query.

        Raises:
            IndexCorrupt: the live version cannot be loaded (the embedder is loaded anyway).
        """
        self.embedder.warm_up()
        self._current()
        if self.shared_encoder is not None:
            self.share(wait=True)

    @property
    def shared_model(self) -> str | None:
        """The shared encoder's model whose vectors of the index are ready, else None."""
        served = self._served
        return served.shared[0] if served is not None and served.shared else None

    def share(self, *, wait: bool = False) -> None:
        """Embed the served index with the shared encoder's live model, unless done.

        In a background thread (one at a time); `wait` blocks until it is done. A model
        that failed on an index version is not tried again on that version.
        """
        if self.shared_encoder is None:
            return
        with self._lock:
            thread = self._sharing
            if thread is None or not thread.is_alive():
                served = self._served
                model = self.shared_encoder.snapshot()[0]
                if served is not None and (
                    (served.shared is not None and served.shared[0] == model)
                    or self._shared_failed == (served.index.manifest.version, model)
                ):
                    return
                thread = threading.Thread(target=self._share, name="faq-share", daemon=True)
                self._sharing = thread
                thread.start()
        if wait:
            thread.join()

    def _share(self) -> None:
        assert self.shared_encoder is not None
        try:
            served = self._current()
        except IndexCorrupt:
            return  # nothing to serve: the query that follows reports it
        loaded = served.index
        model, embed = self.shared_encoder.snapshot()
        if served.shared is not None and served.shared[0] == model:
            return
        try:
            texts = [
                t for p in loaded.passages for t in embedding_texts(p, loaded.manifest.embedding)
            ]
            if len(texts) != len(loaded.vectors):
                raise IndexCorrupt(
                    f"index {loaded.manifest.version}: {len(texts)} texts for "
                    f"{len(loaded.vectors)} vectors"
                )
            started = time.perf_counter()
            logger.info(
                "embedding index %s with %s (%d texts) for shared queries",
                loaded.manifest.version,
                model,
                len(texts),
            )
            parts = [embed(texts[i : i + 256]) for i in range(0, len(texts), 256)]
            vectors = (
                np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
                if parts
                else np.zeros((0, loaded.vectors.shape[1]), dtype=np.float32)
            )
            if vectors.shape[0] != len(texts):
                raise ValueError(f"{model} returned {vectors.shape[0]} rows for {len(texts)} texts")
        except Exception:
            # Queries keep being embedded by the retriever's own embedder: slower, not wrong.
            logger.exception("embedding index %s with %s failed", loaded.manifest.version, model)
            self._shared_failed = (loaded.manifest.version, model)
            return
        served.shared = (model, vectors)
        logger.info(
            "index %s ready for %s queries (%.1f s)",
            loaded.manifest.version,
            model,
            time.perf_counter() - started,
        )

    def _live(self) -> str | None:
        """The live version's name (read again only when the pointer file changed)."""
        try:
            st = os.stat(self._pointer_path)
        except FileNotFoundError:
            self._pointer = None
            return None
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        known = self._pointer
        if known is not None and known[0] == signature:
            return known[1]
        live = read_pointer(self.index_dir)
        self._pointer = (signature, live)
        return live

    def _current(self) -> _Served:
        live = self._live()
        served = self._served
        if served is not None and live in (served.index.manifest.version, self._refused):
            return served
        if served is None and live is not None and live == self._refused:
            # Nothing to serve and the live version is known to be broken: fail at once
            # instead of reading it again on every query (a new version is picked up).
            raise IndexCorrupt(self._problem or f"index version {live} cannot be loaded")
        with self._lock:
            if self._served is not None and self._served.index.manifest.version == live:
                return self._served
            try:
                fresh = load_version(self.index_dir)
            except IndexCorrupt as exc:
                self._refused, self._problem = live, str(exc)
                if self._served is None:
                    logger.error("index version %s unreadable, nothing to serve: %s", live, exc)
                    raise
                logger.exception(
                    "index version %s unreadable; still serving %s",
                    live,
                    self._served.index.manifest.version,
                )
                return self._served
            if fresh.manifest.embedder != self.embedder.model_id:
                raise IndexCorrupt(
                    f"{fresh.path}: built with embedder {fresh.manifest.embedder!r}, "
                    f"but the retriever uses {self.embedder.model_id!r}; re-ingest"
                )
            self._served = self._prepare(fresh)
            self._refused = self._problem = None
            logger.info("serving index version %s", fresh.manifest.version)
            return self._served

    def _prepare(self, loaded: LoadedIndex) -> _Served:
        owners = loaded.owners
        starts = None
        if len(owners) and bool(np.all(np.diff(owners) >= 0)) and owners[0] == 0:
            starts = np.flatnonzero(np.r_[True, np.diff(owners) > 0])
            if len(starts) != len(loaded.passages):
                starts = None
        bm25 = None
        if self.lexical_weight > 0:
            if len(loaded.passages) <= self.max_lexical_passages:
                bm25 = Bm25Index([lexical_text(p) for p in loaded.passages])
            else:
                logger.warning(
                    "index %s has %d passages: BM25 off (max_lexical_passages=%d)",
                    loaded.manifest.version,
                    len(loaded.passages),
                    self.max_lexical_passages,
                )
        firsts = starts if starts is not None else np.unique(owners, return_index=True)[1]
        sections = group_numbers([section_key(p) for p in loaded.passages])
        return _Served(index=loaded, starts=starts, firsts=firsts, bm25=bm25, sections=sections)

    def retrieve(
        self,
        query: str,
        *,
        top_k: int = 3,
        intent: str | None = None,
        query_vector: np.ndarray | None = None,
        vector_model: str | None = None,
    ) -> list[Passage]:
        """The `top_k` passages for `query`, best first.

        Args:
            query: the customer's words.
            top_k: how many passages.
            intent: the predicted intent, if any: passages tagged with it get
                `intent_bonus`.
            query_vector: `query` already embedded (normalised), to skip embedding it.
            vector_model: the shared encoder's model that computed `query_vector`
                (None: the retriever's own embedder did). When the index's vectors for
                that model are not ready, `query` is embedded by the embedder instead.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        served = self._current()
        passages = served.index.passages
        if not passages:
            return []
        shared = self._shared_vectors(served, vector_model)
        if shared is None and vector_model is not None:
            query_vector = None  # its model's vectors of the index are not ready
        q = self.embedder.embed([query]) if query_vector is None else query_vector
        q = np.ascontiguousarray(q, dtype=np.float32).reshape(-1)
        dense = _dense_scores(served, q, shared, top_k)
        rank = dense.astype(np.float64)
        if self.main_weight:
            rank = _with_main(served, q, shared, rank, self.main_weight)
        if intent is not None and self.intent_bonus:
            tagged = np.fromiter((p.intent == intent for p in passages), bool, count=len(passages))
            rank = rank + self.intent_bonus * tagged
        lexical = np.zeros(len(passages)) if served.bm25 is None else served.bm25.scores(query)
        rank = rank + self.lexical_weight * lexical
        return [
            found_passage(
                passages[row],
                float(dense[row]),
                float(rank[row]),
                float(lexical[row]),
                self.min_score,
            )
            for row in best_rows(
                rank, top_k, groups=served.sections if self.distinct_sections else None
            )
        ]

    def _shared_vectors(self, served: _Served, vector_model: str | None) -> np.ndarray | None:
        """The index embedded by the shared encoder's `vector_model`, if ready; if not
        (the classifier's model changed, or the index did), they are made meanwhile."""
        if vector_model is None:
            return None
        if served.shared is not None and served.shared[0] == vector_model:
            return served.shared[1]
        if self.shared_encoder is not None:
            self.share()
        return None

    def passages(self) -> tuple[IndexedPassage, ...]:
        """The live version's passages, in index order.

        Raises:
            IndexCorrupt: the live version cannot be loaded.
        """
        return tuple(self._current().index.passages)

    def vectors(self) -> np.ndarray:
        """The live version's stored vectors (one row per vector, see `owners`)."""
        return self._current().index.vectors


def _dense_scores(
    served: _Served, q: np.ndarray, shared: np.ndarray | None, top_k: int
) -> np.ndarray:
    """Each passage's best cosine with the query vector `q` (-inf: not searched)."""
    loaded = served.index
    n = len(loaded.passages)
    dense = np.full(n, -np.inf, dtype=np.float32)
    if shared is not None:
        sims = shared @ q
        if served.starts is not None:
            return np.maximum.reduceat(sims, served.starts)
        np.maximum.at(dense, loaded.owners, sims)
        return dense
    if loaded.exact and served.starts is not None:
        return np.maximum.reduceat(loaded.vectors @ q, served.starts)
    # Search wider than top_k so that several vectors of one passage, and a tagged
    # passage just outside top_k, still leave top_k distinct candidates.
    per_passage = -(-len(loaded.owners) // n)
    k = min(len(loaded.owners), max(top_k * 4, 20) * per_passage, 4096)
    scores, rows = loaded.index.search(q.reshape(1, -1), k)
    valid = rows[0] >= 0
    np.maximum.at(dense, loaded.owners[rows[0][valid]], scores[0][valid])
    return dense


def _with_main(
    served: _Served, q: np.ndarray, shared: np.ndarray | None, dense: np.ndarray, weight: float
) -> np.ndarray:
    """`dense` mixed with the cosine of each searched passage's main vector."""
    rows = np.flatnonzero(np.isfinite(dense))
    if len(served.firsts) != len(dense):  # a passage without vectors: nothing to mix
        return dense
    vectors = served.index.vectors if shared is None else shared
    out = dense.copy()
    out[rows] = (1 - weight) * dense[rows] + weight * (vectors[served.firsts[rows]] @ q)
    return out


def found_passage(
    p: IndexedPassage,
    score: float,
    rank: float | None = None,
    lexical: float = 0.0,
    min_score: float | None = None,
) -> Passage:
    """What a search returns for the stored passage `p` (`rank` defaults to `score`)."""
    return Passage(
        id=p.id,
        text=p.text,
        score=score,
        source=p.source,
        question=p.question,
        intent=p.intent,
        url=p.url,
        title=p.title,
        tags=p.tags,
        line=p.line,
        position=p.position,
        rank_score=score if rank is None else rank,
        lexical_score=lexical,
        answerable=min_score is None or score >= min_score,
    )
