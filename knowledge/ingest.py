"""Build a new index version from FAQ files, re-embedding only what changed."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from deskbot.knowledge.embedder import Embedder
from deskbot.knowledge.errors import IndexCorrupt, SourceError
from deskbot.knowledge.faq import FaqEntry, RowProblem, read_faq
from deskbot.knowledge.index import (
    IndexedPassage,
    IndexManifest,
    load_version,
    read_pointer,
    write_version,
)

logger = logging.getLogger(__name__)


@dataclass
class IngestReport:
    manifest: IndexManifest
    embedded: int
    reused: int
    removed: int
    problems: list[RowProblem] = field(default_factory=list)


def embedding_text(entry: FaqEntry) -> str:
    """What is embedded for an FAQ entry: customers' queries are phrased like questions."""
    return entry.question


def ingest(
    paths: Sequence[str | Path],
    index_dir: str | Path,
    embedder: Embedder,
    *,
    strict: bool = False,
    show_progress: bool = True,
) -> IngestReport:
    """Read `paths`, embed new or changed entries, and make a new live version.

    Raises:
        SourceError: a file is unreadable, or (with `strict`) has a bad row, or no
            entry at all is usable. Nothing is written then.
    """
    index_dir = Path(index_dir)
    entries: list[FaqEntry] = []
    problems: list[RowProblem] = []
    sources: dict[str, str] = {}
    for path in paths:
        got, bad = read_faq(path)
        if strict and bad:
            raise SourceError(
                "; ".join(str(b) for b in bad[:5])
                + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
            )
        entries.extend(got)
        problems.extend(bad)
        sources[str(path)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    seen: set[str] = set()
    unique: list[FaqEntry] = []
    for e in entries:
        if e.id in seen:
            problems.append(RowProblem(e.source, e.line, f"duplicate id {e.id!r} across files"))
            if strict:
                raise SourceError(str(problems[-1]))
            continue
        seen.add(e.id)
        unique.append(e)
    if not unique:
        raise SourceError(f"no usable FAQ entry in {', '.join(map(str, paths))}")

    previous: dict[tuple[str, str], np.ndarray] = {}
    previous_ids: set[str] = set()
    if read_pointer(index_dir) is not None:
        try:
            old = load_version(index_dir)
            if old.manifest.embedder == embedder.model_id:
                for row, passage in enumerate(old.passages):
                    previous[(passage.id, passage.content_hash)] = old.vectors[row]
            previous_ids = {p.id for p in old.passages}
        except IndexCorrupt as exc:
            logger.warning("previous index unreadable, re-embedding everything: %s", exc)

    passages = [
        IndexedPassage(
            id=e.id,
            text=e.answer,
            source=e.source,
            question=e.question,
            intent=e.intent,
            tags=e.tags,
            url=e.url,
            content_hash=e.content_hash,
        )
        for e in unique
    ]
    todo = [i for i, p in enumerate(passages) if (p.id, p.content_hash) not in previous]
    vectors = np.zeros((len(passages), embedder.dim), dtype=np.float32)
    for i, p in enumerate(passages):
        if (p.id, p.content_hash) in previous:
            vectors[i] = previous[(p.id, p.content_hash)]
    batch = 256
    with tqdm(total=len(todo), desc="embedding", unit="passage", disable=not show_progress) as bar:
        for start in range(0, len(todo), batch):
            rows = todo[start : start + batch]
            vectors[rows] = embedder.embed([embedding_text(unique[r]) for r in rows])
            bar.update(len(rows))
    manifest = write_version(
        index_dir,
        vectors=vectors,
        passages=passages,
        embedder=embedder.model_id,
        sources=sources,
        stats={
            "embedded": len(todo),
            "reused": len(passages) - len(todo),
            "problems": len(problems),
        },
    )
    removed = len(previous_ids - seen)
    return IngestReport(
        manifest,
        embedded=len(todo),
        reused=len(passages) - len(todo),
        removed=removed,
        problems=problems,
    )
