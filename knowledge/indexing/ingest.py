"""Build a new index version from knowledge files, re-embedding only what changed.

Example:
    >>> report = ingest(["faq.yaml", "help/"], "var/indexes/faq", embedder)  # doctest: +SKIP
    >>> report.manifest.index_type, report.embedded                          # doctest: +SKIP
    ('flat-ip', 77)
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from deskbot.knowledge.embedding.embedder import Embedder
from deskbot.knowledge.errors import IndexCorrupt, SourceError
from deskbot.knowledge.indexing.index import (
    IndexManifest,
    load_version,
    read_pointer,
    write_version,
)
from deskbot.knowledge.passage import IndexedPassage
from deskbot.knowledge.sources.documents import DEFAULT_MAX_CHARS
from deskbot.knowledge.sources.faq import RowProblem
from deskbot.knowledge.sources.loading import expand_paths, read_examples, read_source

logger = logging.getLogger(__name__)

# What is embedded for an FAQ entry. "question": the question and each alternative, one
# vector each (the best one scores the entry); "question+answer": the first vector
# embeds the answer too. benchmarks/retrieval_quality.py measures both.
EMBEDDINGS = ("question", "question+answer")


@dataclass
class IngestReport:
    """What an ingest did; `problems` are the rows (or files) it skipped, with where."""

    manifest: IndexManifest
    embedded: int
    reused: int
    removed: int
    problems: list[RowProblem] = field(default_factory=list)
    passages: int = 0
    vectors: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0


def embedding_texts(passage: IndexedPassage, embedding: str = "question") -> list[str]:
    """The texts embedded for `passage`, one vector each (the first is its main one)."""
    if passage.question:
        first = passage.question
        if embedding == "question+answer":
            first = f"{passage.question}\n{passage.text}"
        return [first, *passage.alternatives]
    return [f"{passage.title}\n{passage.text}" if passage.title else passage.text]


def embedding_text(passage: IndexedPassage) -> str:
    """The main text embedded for `passage` (kept for callers of the first version)."""
    return embedding_texts(passage)[0]


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _fail(problems: Sequence[RowProblem]) -> SourceError:
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return SourceError("; ".join(str(p) for p in problems[:5]) + more)


def ingest(
    paths: Sequence[str | Path],
    index_dir: str | Path,
    embedder: Embedder,
    *,
    strict: bool = False,
    show_progress: bool = True,
    examples: Sequence[str | Path] = (),
    examples_per_intent: int | None = None,
    embedding: str = "question",
    index_type: str = "auto",
    max_chars: int = DEFAULT_MAX_CHARS,
    batch_size: int = 256,
) -> IngestReport:
    """Read `paths`, embed new or changed passages, and make a new live version.

    Args:
        paths: FAQ files, documents, or folders of them.
        index_dir: the versioned index directory.
        embedder: what embeds; an index built by another embedder is not reused.
        strict: fail on the first bad row or file instead of skipping and reporting it.
        show_progress: a progress bar on stderr.
        examples: CSV files of intent-labelled utterances (`text,category`); each FAQ
            entry with an intent gets its intent's utterances as alternative questions.
            Use training data only: never the utterances you evaluate on.
        examples_per_intent: at most this many utterances per intent (None: all).
        embedding: one of `EMBEDDINGS`.
        index_type: "auto" (exact when small, HNSW when large), "flat" or "hnsw".
        max_chars: documents are split into passages of at most this many characters.
        batch_size: texts per call to the embedder.

    Raises:
        SourceError: with `strict`, any bad row or file; always, when no passage at all
            is usable. Nothing is written then.
    """
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding {embedding!r}: choose one of {', '.join(EMBEDDINGS)}")
    started = time.perf_counter()
    index_dir = Path(index_dir)
    files = expand_paths(paths)
    passages: list[IndexedPassage] = []
    problems: list[RowProblem] = []
    sources: dict[str, str] = {}
    for path in files:
        try:
            got, bad = read_source(path, max_chars=max_chars)
        except SourceError as exc:
            if strict:
                raise
            problems.append(RowProblem(str(path), None, str(exc).removeprefix(f"{path}: ")))
            continue
        if strict and bad:
            raise _fail(bad)
        passages.extend(got)
        problems.extend(bad)
        sources[str(path)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]

    seen: dict[str, IndexedPassage] = {}
    unique: list[IndexedPassage] = []
    for p in passages:
        if p.id in seen:
            first = seen[p.id]
            problems.append(
                RowProblem(
                    p.source,
                    p.line,
                    f"duplicate id {p.id!r} across files (first in {first.source}"
                    + (f":{first.line})" if first.line else ")"),
                )
            )
            if strict:
                raise _fail(problems[-1:])
            continue
        seen[p.id] = p
        unique.append(p)
    if not unique:
        raise SourceError(
            f"no usable passage in {', '.join(map(str, paths))}"
            + (f": {problems[0]}" if problems else "")
        )

    if examples:
        unique = _attach_examples(unique, examples, examples_per_intent, strict, problems, sources)

    previous: dict[str, np.ndarray] = {}
    previous_ids: set[str] = set()
    if read_pointer(index_dir) is not None:
        try:
            old = load_version(index_dir)
            previous_ids = {p.id for p in old.passages}
            if old.manifest.embedder == embedder.model_id:
                old_texts = [
                    t for p in old.passages for t in embedding_texts(p, old.manifest.embedding)
                ]
                if len(old_texts) == len(old.vectors):
                    previous = {_key(t): old.vectors[i] for i, t in enumerate(old_texts)}
        except IndexCorrupt as exc:
            logger.warning("previous index unreadable, re-embedding everything: %s", exc)

    texts: list[str] = []
    owners: list[int] = []
    for i, p in enumerate(unique):
        for t in embedding_texts(p, embedding):
            texts.append(t)
            owners.append(i)
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    todo: list[int] = []
    for row, t in enumerate(texts):
        cached = previous.get(_key(t))
        if cached is None:
            todo.append(row)
        else:
            vectors[row] = cached
    t_embed = time.perf_counter()
    with tqdm(total=len(todo), desc="embedding", unit="text", disable=not show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            rows = todo[start : start + batch_size]
            vectors[rows] = embedder.embed([texts[r] for r in rows])
            bar.update(len(rows))
    embed_s = time.perf_counter() - t_embed
    manifest = write_version(
        index_dir,
        vectors=vectors,
        passages=unique,
        owners=np.array(owners, dtype=np.int32),
        embedder=embedder.model_id,
        sources=sources,
        stats={
            "embedded": len(todo),
            "reused": len(texts) - len(todo),
            "problems": len(problems),
            "embed_s": round(embed_s, 3),
        },
        index_type=index_type,
        embedding=embedding,
    )
    removed = len(previous_ids - set(seen))
    return IngestReport(
        manifest,
        embedded=len(todo),
        reused=len(texts) - len(todo),
        removed=removed,
        problems=problems,
        passages=len(unique),
        vectors=len(texts),
        embed_seconds=embed_s,
        seconds=time.perf_counter() - started,
    )


def _attach_examples(
    passages: list[IndexedPassage],
    examples: Sequence[str | Path],
    per_intent: int | None,
    strict: bool,
    problems: list[RowProblem],
    sources: dict[str, str],
) -> list[IndexedPassage]:
    by_intent: dict[str, list[str]] = {}
    for path in examples:
        got, bad = read_examples(path, per_intent=per_intent)
        if strict and bad:
            raise _fail(bad)
        problems.extend(bad)
        for intent, texts in got.items():
            by_intent.setdefault(intent, []).extend(texts)
        sources[str(path)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    out = []
    for p in passages:
        extra = by_intent.get(p.intent or "") if p.question else None
        if extra:
            merged = tuple(dict.fromkeys((*p.alternatives, *extra)))
            merged = tuple(a for a in merged if a != p.question)
            p = dataclasses.replace(p, alternatives=merged)
        out.append(p)
    return out
