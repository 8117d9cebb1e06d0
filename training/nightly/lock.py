"""Two nightly runs never train at once: a file lock in the registry, and on PostgreSQL a
session advisory lock too."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from deskbot.bot.core.errors import DeskbotError

# The nightly job's working folder inside the registry (its lock file lives there too).
WORK_DIR = ".retrain"


class RetrainBusy(DeskbotError):
    """Another retraining run holds the lock."""


def _write_holder(fd: int) -> None:
    """Put who holds the lock into the lock file, for the message a second run gets."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    holder = f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n"
    os.write(fd, holder.encode("utf-8"))


class RetrainLock:
    """Two runs never train at once.

    A non-blocking exclusive `flock` on a file in the registry (`filelock`, with its soft
    fallback off: the kernel releases the lock when the holder dies, however it dies, so
    a stale lock cannot outlive its process); the file holds the holder's pid and host
    for the error message. On PostgreSQL a session advisory lock is taken too, so jobs
    on different machines sharing the database exclude each other as well.
    """

    def __init__(self, path: str | Path, *, engine: Any = None, key: int = 0x6465736B) -> None:
        self.path = Path(path)
        self.engine = engine
        self.key = key
        self._file: FileLock | None = None
        self._conn: Any = None

    def __enter__(self) -> RetrainLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(
            self.path,
            blocking=False,
            fallback_to_soft=False,
            preserve_lock_file=True,
            on_acquired=_write_holder,
        )
        try:
            lock.acquire()
        except Timeout:
            holder = self._holder()
            raise RetrainBusy(
                f"another retrain run holds {self.path} ({holder}); wait for it to finish"
            ) from None
        self._file = lock
        if self.engine is not None and self.engine.dialect.name == "postgresql":
            self._take_advisory_lock()
        return self

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def _take_advisory_lock(self) -> None:
        from sqlalchemy import text

        conn = self.engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        if not got:
            conn.close()
            self._release_file()
            raise RetrainBusy("another retrain run holds the database's advisory lock; wait for it")
        self._conn = conn

    def _release_file(self) -> None:
        if self._file is not None:
            self._file.release()
            self._file = None

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            from sqlalchemy import text

            with contextlib.suppress(Exception):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.close()
            self._conn = None
        self._release_file()
