"""Versioned faiss indexes on disk.

Layout of an index directory::

    INDEX_DIR/
      CURRENT                 # the live version's name, replaced atomically
      versions/
        20261122T215501-3f9a/ # one complete version
          manifest.json       # format, embedder, dim, index type and parameters, counts
          index.faiss
          vectors.npy         # kept so the next ingest re-embeds only what changed
          owners.npy          # row i of vectors.npy belongs to passages[owners[i]]
          passages.jsonl

A passage can have several vectors (an FAQ question and its alternative phrasings);
its dense score is the best of them.

A version is written under a temporary name and renamed into place when complete,
then `CURRENT` is swapped (write, fsync, rename). A reader therefore sees the old
version or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.files.fsutil import atomic_write_text, fsync_dir
from deskbot.knowledge.passage import IndexedPassage

logger = logging.getLogger(__name__)

FORMAT = "deskbot.faiss-index/2"
READABLE_FORMATS = ("deskbot.faiss-index/1", FORMAT)
CURRENT = "CURRENT"
# Up to this many vectors exact inner-product search is fast enough (~3 ms at 50k x 384).
EXACT_LIMIT = 50_000
# HNSW settings measured by benchmarks/performance/ann_scale.py at 1M x 384 (synthetic clustered
# vectors, one search thread): recall@10 0.96-0.99 at 0.2-0.3 ms median per query, build
# about 26 s on 16 cores, about 1.6 GB for the index (its own copy of the vectors plus
# the graph). efSearch 128 holds recall@10 >= 0.95 on the harder data set there too.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 128
INDEX_TYPES = ("auto", "flat", "hnsw")


@dataclass(frozen=True)
class IndexManifest:
    """What a version holds and how it was built (`index_type`, `index_params`)."""

    format: str
    version: str
    embedder: str
    dim: int
    index_type: str
    count: int
    created_at: float
    sources: dict[str, str] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    vector_count: int = -1  # -1: one vector per passage (format 1)
    index_params: dict[str, int] = field(default_factory=dict)
    embedding: str = "question"


@dataclass
class LoadedIndex:
    """One version in memory."""

    manifest: IndexManifest
    index: faiss.Index
    vectors: np.ndarray
    passages: list[IndexedPassage]
    path: Path
    owners: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    @property
    def exact(self) -> bool:
        """Whether the index is exact (all vectors can be scored directly)."""
        return self.manifest.index_type.startswith("flat")


def choose_index(
    vectors: np.ndarray, kind: str = "auto", *, params: dict[str, int] | None = None
) -> tuple[faiss.Index, str, dict[str, int]]:
    """Build the index for `vectors`: exact inner product when small, HNSW when large.

    Returns the index, its type name and the parameters it was built with (all three
    go into the manifest).
    """
    if kind not in INDEX_TYPES:
        raise ValueError(f"index type {kind!r}: choose one of {', '.join(INDEX_TYPES)}")
    n, dim = vectors.shape
    used: dict[str, int] = {}
    index: faiss.Index
    if kind == "flat" or (kind == "auto" and n <= EXACT_LIMIT):
        index = faiss.IndexFlatIP(dim)
        name = "flat-ip"
    else:
        used = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH}
        used.update(params or {})
        hnsw = faiss.IndexHNSWFlat(dim, int(used["M"]), faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = int(used["efConstruction"])
        hnsw.hnsw.efSearch = int(used["efSearch"])
        index, name = hnsw, f"hnsw{used['M']}-ip"
    if n:
        index.add(vectors)
    return index, name, used


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
    owners: np.ndarray | None = None,
    sources: dict[str, str] | None = None,
    stats: dict[str, float] | None = None,
    index_type: str = "auto",
    index_params: dict[str, int] | None = None,
    embedding: str = "question",
    make_live: bool = True,
) -> IndexManifest:
    """Write a complete new version, then (by default) make it the live one.

    Args:
        vectors: float32, one row per vector, L2-normalised.
        passages: what the vectors belong to.
        owners: for each vector row, the index of its passage in `passages`
            (default: one vector per passage, in order).
        index_type: "auto" (by size), "flat" or "hnsw"; recorded in the manifest.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    owners = _checked_owners(owners, len(vectors), len(passages))
    versions = index_dir / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    version = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    with _staged(versions / version) as tmp:
        t0 = time.perf_counter()
        index, kind, params = choose_index(vectors, index_type, params=index_params)
        build_s = time.perf_counter() - t0
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
            vector_count=len(vectors),
            index_params=params,
            embedding=embedding,
        )
        _write_files(tmp, manifest, index, vectors, owners, passages)
    if make_live:
        write_pointer(index_dir, version)
    logger.info(
        "index version %s written (%d passages, %d vectors, %s)",
        version,
        len(passages),
        len(vectors),
        kind,
    )
    return manifest


@contextlib.contextmanager
def _staged(folder: Path) -> Iterator[Path]:
    """A temporary folder beside `folder`, renamed to it when the block completes (and
    removed when it fails): readers never see half a version."""
    tmp = folder.with_name(f".tmp-{folder.name}")
    tmp.mkdir()
    try:
        yield tmp
        os.replace(tmp, folder)
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _checked_owners(owners: np.ndarray | None, vectors: int, passages: int) -> np.ndarray:
    """`owners` as int32 (default: one vector per passage), checked against the counts."""
    if owners is None:
        owners = np.arange(passages, dtype=np.int32)
    owners = np.ascontiguousarray(owners, dtype=np.int32)
    if vectors != len(owners):
        raise ValueError(f"{vectors} vectors for {len(owners)} owners")
    if len(owners) and (owners.min() < 0 or owners.max() >= passages):
        raise ValueError("owners must index into passages")
    if passages and len(np.unique(owners)) != passages:
        raise ValueError("every passage needs at least one vector")
    return owners


def _write_files(
    folder: Path,
    manifest: IndexManifest,
    index: faiss.Index,
    vectors: np.ndarray,
    owners: np.ndarray,
    passages: Sequence[IndexedPassage],
) -> None:
    """A version's files in `folder`, each synced to disk."""
    faiss.write_index(index, str(folder / "index.faiss"))
    np.save(folder / "vectors.npy", vectors)
    np.save(folder / "owners.npy", owners)
    with open(folder / "passages.jsonl", "w", encoding="utf-8") as fh:
        for p in passages:
            fh.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
    (folder / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def load_version(index_dir: Path, version: str | None = None) -> LoadedIndex:
    """Load `version` (default: the live one), checking that it is complete and consistent.

    Raises:
        IndexCorrupt: no live version, a missing or damaged file, or counts that disagree.
    """
    version = version or read_pointer(index_dir)
    if version is None:
        raise IndexCorrupt(f"{index_dir}: no index yet (build one with `deskbot ingest`)")
    path = index_dir / "versions" / version
    manifest = _read_manifest(path)
    try:
        index = faiss.read_index(str(path / "index.faiss"))
        vectors = np.load(path / "vectors.npy")
        if manifest.vector_count < 0:
            owners = np.arange(manifest.count, dtype=np.int32)
        else:
            owners = np.load(path / "owners.npy")
        passages = _read_passages(path / "passages.jsonl")
    except FileNotFoundError as exc:
        raise IndexCorrupt(
            f"{path}: missing {Path(exc.filename or '').name}; rebuild it with `deskbot ingest`"
        ) from exc
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        raise IndexCorrupt(
            f"{path}: cannot be read ({exc}); rebuild it with `deskbot ingest`"
        ) from exc
    _check_counts(path, manifest, index, vectors, owners, len(passages))
    if "efSearch" in manifest.index_params and isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = int(manifest.index_params["efSearch"])
    return LoadedIndex(
        manifest=manifest,
        index=index,
        vectors=vectors,
        passages=passages,
        path=path,
        owners=owners.astype(np.int64),
    )


def _read_manifest(path: Path) -> IndexManifest:
    try:
        raw = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        manifest = IndexManifest(**raw)
    except FileNotFoundError as exc:
        raise IndexCorrupt(f"{path}: missing {Path(exc.filename or '').name}") from exc
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{path}/manifest.json is corrupted: {exc}") from exc
    if manifest.format not in READABLE_FORMATS:
        raise IndexCorrupt(f"{path}: format {manifest.format!r}, this deskbot reads {FORMAT!r}")
    return manifest


def _read_passages(file: Path) -> list[IndexedPassage]:
    passages = []
    with open(file, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            d["tags"] = tuple(d.get("tags") or ())
            d["alternatives"] = tuple(d.get("alternatives") or ())
            passages.append(IndexedPassage(**d))
    return passages


def _check_counts(
    path: Path,
    manifest: IndexManifest,
    index: faiss.Index,
    vectors: np.ndarray,
    owners: np.ndarray,
    passages: int,
) -> None:
    """`IndexCorrupt` unless the files of a version agree with each other and the manifest."""
    n_vectors = manifest.count if manifest.vector_count < 0 else manifest.vector_count
    if not (
        index.ntotal == len(vectors) == len(owners) == n_vectors
        and passages == manifest.count
        and (not len(owners) or (owners.min() >= 0 and owners.max() < passages))
    ):
        raise IndexCorrupt(
            f"{path}: inconsistent ({index.ntotal} vectors in index, {len(vectors)} stored, "
            f"{passages} passages; manifest says {manifest.count} passages, "
            f"{n_vectors} vectors); rebuild it with `deskbot ingest`"
        )


def list_versions(index_dir: Path) -> list[str]:
    versions = index_dir / "versions"
    if not versions.is_dir():
        return []
    return sorted(p.name for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))
