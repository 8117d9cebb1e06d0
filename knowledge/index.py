"""Versioned faiss indexes on disk.

Layout of an index directory::

    INDEX_DIR/
      CURRENT                 # the live version's name, replaced atomically
      versions/
        20261122T215501-3f9a/ # one complete version
          manifest.json       # format, embedder, dim, index type, counts, hashes
          index.faiss
          vectors.npy         # kept so the next ingest re-embeds only what changed
          passages.jsonl

A version is written under a temporary name and renamed into place when complete,
then `CURRENT` is swapped (write, fsync, rename). A reader therefore sees the old
version or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.fsutil import atomic_write_text, fsync_dir

logger = logging.getLogger(__name__)

FORMAT = "deskbot.faiss-index/1"
CURRENT = "CURRENT"
# Up to this many vectors exact inner-product search is both fast and exact.
EXACT_LIMIT = 50_000


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


@dataclass(frozen=True)
class IndexManifest:
    format: str
    version: str
    embedder: str
    dim: int
    index_type: str
    count: int
    created_at: float
    sources: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedIndex:
    """One version in memory."""

    manifest: IndexManifest
    index: Any
    vectors: np.ndarray
    passages: list[IndexedPassage]
    path: Path


def choose_index(vectors: np.ndarray) -> tuple[Any, str]:
    """Exact inner product for small collections, HNSW for large ones."""
    n, dim = vectors.shape
    index: Any
    if n <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(dim)
        kind = "flat-ip"
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
        kind = "hnsw32-ip"
    if n:
        index.add(vectors)
    return index, kind


def write_pointer(index_dir: Path, version: str) -> None:
    """Point `CURRENT` at `version` atomically."""
    atomic_write_text(index_dir / CURRENT, version + "\n")


def read_pointer(index_dir: Path) -> str | None:
    try:
        return (index_dir / CURRENT).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def write_version(
    index_dir: Path,
    *,
    vectors: np.ndarray,
    passages: Sequence[IndexedPassage],
    embedder: str,
    sources: dict[str, str] | None = None,
    stats: dict[str, Any] | None = None,
    make_live: bool = True,
) -> IndexManifest:
    """Write a complete new version, then (by default) make it the live one."""
    if len(vectors) != len(passages):
        raise ValueError(f"{len(vectors)} vectors for {len(passages)} passages")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    versions = index_dir / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    version = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    tmp = versions / f".tmp-{version}"
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        index, kind = choose_index(vectors)
        build_s = time.perf_counter() - t0
        faiss.write_index(index, str(tmp / "index.faiss"))
        np.save(tmp / "vectors.npy", vectors)
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            for p in passages:
                fh.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
        manifest = IndexManifest(
            format=FORMAT,
            version=version,
            embedder=embedder,
            dim=int(vectors.shape[1]) if vectors.ndim == 2 else 0,
            index_type=kind,
            count=len(passages),
            created_at=time.time(),
            sources=dict(sources or {}),
            stats={"build_s": round(build_s, 4), **(stats or {})},
        )
        (tmp / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, versions / version)
        fsync_dir(versions)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if make_live:
        write_pointer(index_dir, version)
    logger.info("index version %s written (%d passages, %s)", version, len(passages), kind)
    return manifest


def load_version(index_dir: Path, version: str | None = None) -> LoadedIndex:
    """Load `version` (default: the live one), checking that it is complete and consistent."""
    version = version or read_pointer(index_dir)
    if version is None:
        raise IndexCorrupt(f"{index_dir}: no index yet (build one with `deskbot ingest`)")
    path = index_dir / "versions" / version
    try:
        raw = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        manifest = IndexManifest(**raw)
    except FileNotFoundError as exc:
        raise IndexCorrupt(f"{path}: missing {Path(exc.filename or '').name}") from exc
    except (json.JSONDecodeError, TypeError) as exc:
        raise IndexCorrupt(f"{path}/manifest.json is corrupted: {exc}") from exc
    if manifest.format != FORMAT:
        raise IndexCorrupt(f"{path}: format {manifest.format!r}, this deskbot reads {FORMAT!r}")
    try:
        index = faiss.read_index(str(path / "index.faiss"))
        vectors = np.load(path / "vectors.npy")
        passages = []
        with open(path / "passages.jsonl", encoding="utf-8") as fh:
            for line in fh:
                d = json.loads(line)
                d["tags"] = tuple(d.get("tags") or ())
                passages.append(IndexedPassage(**d))
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        raise IndexCorrupt(
            f"{path}: cannot be read ({exc}); rebuild it with `deskbot ingest`"
        ) from exc
    if not (index.ntotal == len(passages) == manifest.count == len(vectors)):
        raise IndexCorrupt(
            f"{path}: inconsistent ({index.ntotal} vectors in index, {len(passages)} passages, "
            f"manifest says {manifest.count}); rebuild it with `deskbot ingest`"
        )
    return LoadedIndex(
        manifest=manifest, index=index, vectors=vectors, passages=passages, path=path
    )


def list_versions(index_dir: Path) -> list[str]:
    versions = index_dir / "versions"
    if not versions.is_dir():
        return []
    return sorted(p.name for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))
