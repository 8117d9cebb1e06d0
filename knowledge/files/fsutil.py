"""Atomic file replacement, cross-process file locks and append-only JSON-lines logs,
shared by every versioned directory and cache deskbot writes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block, waiting for it:
    one process at a time, on this host.

    `filelock`'s `flock` on Linux, its soft fallback off, so the kernel releases the lock
    if the holder dies; the file stays (unlinking it would let two waiters lock two inodes).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path, fallback_to_soft=False, preserve_lock_file=True):
        yield


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A new folder beside `out` to fill in the block; when it completes, its files are
    synced and it is renamed to `out`, and when it fails it is removed: readers see a
    version whole or not at all.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` so that readers see the old or the new content, never a mix."""
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append `record` as one JSON line to `path` (an append-only log, created if missing)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log, oldest first ([] if there is none yet)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]
