"""`ChangeFeed`: tells waiting readers (the agent console) the moment the store's turns or
handoffs change, so they redraw on a push instead of polling.

Every write of a turn or a handoff raises the feed's version. Readers wait for a version
newer than the one they drew, in asyncio (`changed`), so an open console holds no
thread. A change reaches readers by one path, chosen by the database:

- PostgreSQL (the replicas of `docker/compose.yaml` share one database): the write
  sends `NOTIFY deskbot_changes` in its own transaction, delivered when it commits, to
  a listener thread in every process that has readers (this one included), which
  raises its feed;
- SQLite (one host's, in practice one process's store): the writer raises the feed
  after its commit; another process's writes are not heard.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from sqlalchemy import Connection, Engine, text

logger = logging.getLogger(__name__)

__all__ = ["CHANNEL", "ChangeFeed"]

CHANNEL = "deskbot_changes"
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', '')")
# How often the listener thread looks up from its wait to see whether it should stop.
_LISTEN_POLL_S = 1.0
# After losing its connection, the listener waits this long before connecting again.
_RECONNECT_S = 2.0


class ChangeFeed:
    """A version number raised by every change, and the asyncio readers waiting for one.

    Args:
        engine: the store's engine; on PostgreSQL, changes of other processes arrive
            through LISTEN/NOTIFY (started with the first reader).

    Example:
        >>> feed = ChangeFeed(engine)                      # doctest: +SKIP
        >>> seen = feed.version
        >>> seen = await feed.changed(seen, timeout=10)    # doctest: +SKIP
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._version = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def version(self) -> int:
        return self._version

    @property
    def across_processes(self) -> bool:
        """Whether other processes' changes reach this feed (PostgreSQL)."""
        return self.engine.dialect.name == "postgresql"

    def wrote(self, conn: Connection | Any) -> None:
        """Called inside a write transaction (a connection or session): on PostgreSQL,
        every process's readers hear of it when it commits."""
        if self.across_processes:
            conn.execute(_NOTIFY)

    def committed(self) -> None:
        """Called after a write transaction committed: on SQLite, wakes this process's
        readers (on PostgreSQL the NOTIFY of `wrote` does)."""
        if not self.across_processes:
            self.notify()

    def notify(self) -> None:
        """Raise the version and wake every waiting reader (from any thread)."""
        with self._lock:
            self._version += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # its loop has closed; the reader is gone
                self._waiters.discard((loop, event))

    async def changed(self, seen: int, *, timeout: float) -> int:
        """The version once it differs from `seen`, or after `timeout` seconds anyway."""
        self._listen()
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._version != seen:
                return self._version
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        return self._version

    def close(self) -> None:
        """Stop listening to other processes (the thread ends within a second)."""
        self._stop.set()

    def _listen(self) -> None:
        """Start the LISTEN thread once, on PostgreSQL."""
        if not self.across_processes or self._listener is not None:
            return
        with self._lock:
            if self._listener is not None:
                return
            self._listener = threading.Thread(
                target=self._listen_forever, name="store-changes", daemon=True
            )
        self._listener.start()

    def _listen_forever(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.notify()  # what changed while no one listened
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=_LISTEN_POLL_S):
                            self.notify()
            except psycopg.Error as exc:
                logger.warning("listening for store changes failed (%s); retrying", exc)
                self._stop.wait(_RECONNECT_S)
