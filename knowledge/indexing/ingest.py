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
import re
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
# embeds the answer too. benchmarks/quality/retrieval_quality.py measures both.
# "question+sentences": FAQ entries as "question"; a document passage also gets one
# vector per sentence (with its title), so a question about one fact in a long
# paragraph meets that fact's sentence instead of the paragraph's average meaning
# (benchmarks/quality/retrieval_prose.py measures it on the help-centre articles).
EMBEDDINGS = ("question", "question+answer", "question+sentences")
# A sentence ends at ". ", "! " or "? " before a capital, digit or quote, or before a
# list item's line; pieces shorter than this many characters are not worth a vector.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+(?=\s*(?:[-*+]|\d+[.)])\s)")
_MIN_SENTENCE_CHARS = 20


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
    head = f"{passage.title}\n" if passage.title else ""
    texts = [f"{head}{passage.text}"]
    if embedding == "question+sentences":
        texts += [f"{head}{t}" for t in sentences(passage.text) if t != passage.text]
    return texts


def sentences(text: str) -> list[str]:
    """`text`'s sentences and list items, without the very short ones (in order)."""
    pieces = (" ".join(t.split()).lstrip("-*+ ") for t in _SENTENCE_END.split(text))
    return list(dict.fromkeys(t for t in pieces if len(t) >= _MIN_SENTENCE_CHARS))


def embedding_text(passage: IndexedPassage) -> str:
    """The main text embedded for `passage` (kept for callers of the first version)."""
    return embedding_texts(passage)[0]


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _fail(problems: Sequence[RowProblem]) -> SourceError:
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return SourceError("; ".join(str(p) for p in problems[:5]) + more)


@dataclass
class _Gathered:
    """What the sources gave: passages, the rows skipped, and a digest of each file read."""

    passages: list[IndexedPassage] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


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
    got = _gather(paths, strict, max_chars, examples, examples_per_intent)
    previous, previous_ids = _previous_vectors(index_dir, embedder.model_id)
    done = _embed(got.passages, embedding, embedder, previous, batch_size, show_progress)
    manifest = _write(index_dir, got, done, embedder.model_id, index_type, embedding)
    return IngestReport(
        manifest,
        embedded=done.embedded,
        reused=done.reused,
        removed=len(previous_ids - {p.id for p in got.passages}),
        problems=got.problems,
        passages=len(got.passages),
        vectors=len(done.vectors),
        embed_seconds=done.seconds,
        seconds=time.perf_counter() - started,
    )


def _write(
    index_dir: Path,
    got: _Gathered,
    done: _Embedded,
    embedder_id: str,
    index_type: str,
    embedding: str,
) -> IndexManifest:
    """Write the new version and make it the live one."""
    return write_version(
        index_dir,
        vectors=done.vectors,
        passages=got.passages,
        owners=done.owners,
        embedder=embedder_id,
        sources=got.sources,
        stats=done.stats(problems=len(got.problems)),
        index_type=index_type,
        embedding=embedding,
    )


def _gather(
    paths: Sequence[str | Path],
    strict: bool,
    max_chars: int,
    examples: Sequence[str | Path],
    per_intent: int | None,
) -> _Gathered:
    """The passages of `paths` (ids unique), with `examples` attached."""
    got = _read_sources(expand_paths(paths), strict=strict, max_chars=max_chars)
    got.passages = _unique(got.passages, got.problems, strict=strict)
    if not got.passages:
        raise SourceError(
            f"no usable passage in {', '.join(map(str, paths))}"
            + (f": {got.problems[0]}" if got.problems else "")
        )
    if examples:
        _attach_examples(got, examples, per_intent, strict=strict)
    return got


def _read_sources(files: Sequence[Path], *, strict: bool, max_chars: int) -> _Gathered:
    """Every file's passages; a file or row that cannot be read is a problem (with
    `strict`, an error)."""
    got = _Gathered()
    for path in files:
        try:
            passages, bad = read_source(path, max_chars=max_chars)
        except SourceError as exc:
            if strict:
                raise
            got.problems.append(RowProblem(str(path), None, str(exc).removeprefix(f"{path}: ")))
            continue
        if strict and bad:
            raise _fail(bad)
        got.passages.extend(passages)
        got.problems.extend(bad)
        got.sources[str(path)] = _file_digest(path)
    return got


def _unique(
    passages: list[IndexedPassage], problems: list[RowProblem], *, strict: bool
) -> list[IndexedPassage]:
    """`passages` without a second passage of an id (a problem each, or with `strict`
    an error)."""
    seen: dict[str, IndexedPassage] = {}
    for p in passages:
        first = seen.get(p.id)
        if first is None:
            seen[p.id] = p
            continue
        where = f"{first.source}:{first.line}" if first.line else first.source
        problems.append(
            RowProblem(p.source, p.line, f"duplicate id {p.id!r} across files (first in {where})")
        )
        if strict:
            raise _fail(problems[-1:])
    return list(seen.values())


def _previous_vectors(index_dir: Path, model_id: str) -> tuple[dict[str, np.ndarray], set[str]]:
    """The live version's vectors by text key (when `model_id` made them), and its ids."""
    if read_pointer(index_dir) is None:
        return {}, set()
    try:
        old = load_version(index_dir)
    except IndexCorrupt as exc:
        logger.warning("previous index unreadable, re-embedding everything: %s", exc)
        return {}, set()
    ids = {p.id for p in old.passages}
    if old.manifest.embedder != model_id:
        return {}, ids
    old_texts = [t for p in old.passages for t in embedding_texts(p, old.manifest.embedding)]
    if len(old_texts) != len(old.vectors):
        return {}, ids
    return {_key(t): old.vectors[i] for i, t in enumerate(old_texts)}, ids


@dataclass
class _Embedded:
    """The vectors of the passages, whose owners, and how many were embedded (not reused)."""

    vectors: np.ndarray
    owners: np.ndarray
    embedded: int
    seconds: float

    @property
    def reused(self) -> int:
        return len(self.vectors) - self.embedded

    def stats(self, *, problems: int) -> dict[str, float]:
        """What the manifest records about this ingest."""
        return {
            "embedded": self.embedded,
            "reused": self.reused,
            "problems": problems,
            "embed_s": round(self.seconds, 3),
        }


def _embed(
    passages: list[IndexedPassage],
    embedding: str,
    embedder: Embedder,
    previous: dict[str, np.ndarray],
    batch_size: int,
    show_progress: bool,
) -> _Embedded:
    """The vectors of `passages`, reused from `previous` where the text is the same."""
    texts, owners = _texts(passages, embedding)
    vectors, todo = _reused(texts, previous, embedder.dim)
    started = time.perf_counter()
    _embed_rows(embedder, texts, todo, vectors, batch_size=batch_size, show_progress=show_progress)
    return _Embedded(vectors, owners, len(todo), time.perf_counter() - started)


def _texts(passages: list[IndexedPassage], embedding: str) -> tuple[list[str], np.ndarray]:
    """The texts to embed, and for each the row of its passage in `passages`."""
    texts: list[str] = []
    owners: list[int] = []
    for i, p in enumerate(passages):
        for t in embedding_texts(p, embedding):
            texts.append(t)
            owners.append(i)
    return texts, np.array(owners, dtype=np.int32)


def _reused(
    texts: list[str], previous: dict[str, np.ndarray], dim: int
) -> tuple[np.ndarray, list[int]]:
    """A vector per text, filled from `previous` where it has the text; and the rows
    still to embed."""
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    todo: list[int] = []
    for row, t in enumerate(texts):
        cached = previous.get(_key(t))
        if cached is None:
            todo.append(row)
        else:
            vectors[row] = cached
    return vectors, todo


def _embed_rows(
    embedder: Embedder,
    texts: list[str],
    rows: list[int],
    vectors: np.ndarray,
    *,
    batch_size: int,
    show_progress: bool,
) -> None:
    """Embed `texts[rows]` into `vectors[rows]`, `batch_size` texts a call."""
    with tqdm(total=len(rows), desc="embedding", unit="text", disable=not show_progress) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            vectors[batch] = embedder.embed([texts[r] for r in batch])
            bar.update(len(batch))


def _attach_examples(
    got: _Gathered,
    examples: Sequence[str | Path],
    per_intent: int | None,
    *,
    strict: bool,
) -> None:
    """Give each FAQ passage with an intent that intent's utterances as alternatives."""
    by_intent: dict[str, list[str]] = {}
    for path in examples:
        found, bad = read_examples(path, per_intent=per_intent)
        if strict and bad:
            raise _fail(bad)
        got.problems.extend(bad)
        for intent, texts in found.items():
            by_intent.setdefault(intent, []).extend(texts)
        got.sources[str(path)] = _file_digest(path)
    out = []
    for p in got.passages:
        extra = by_intent.get(p.intent or "") if p.question else None
        if extra:
            merged = tuple(dict.fromkeys((*p.alternatives, *extra)))
            merged = tuple(a for a in merged if a != p.question)
            p = dataclasses.replace(p, alternatives=merged)
        out.append(p)
    got.passages = out
