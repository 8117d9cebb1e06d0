"""Who is typing in a conversation right now: the customer, or the agent who has it.

Typing is ephemeral: a mark lives `TYPING_TTL_S` seconds unless the typer's page
renews it (every `RENEW_S` while keys are pressed) and is cleared at once when the
message is sent. It is never stored in a table: a row written and deleted every two
seconds per typing person would cost more than the turns themselves and would be
erased, backed up and replicated for nothing.

Each process keeps the marks in memory. What a process hears of, by the database:

- PostgreSQL (replicas sharing one database, `docker/compose.yaml`): a mark is sent to
  every process with `NOTIFY deskbot_typing` (its own channel, so typing never wakes the
  consoles' change feed, `deskbot.bot.store.changes`, which redraws whole queues). A
  process listens while it has readers (a console showing a conversation), on a thread
  that ends after `LISTEN_IDLE_S` without one. The customer's widget and the agent's
  console may so be served by different replicas. The expiry is counted by each reader
  from when the mark arrived, so replicas need no shared clock.
- SQLite (one host's, in practice one process's store): the memory of this process.

Example:
    >>> board = TypingBoard(engine)                          # doctest: +SKIP
    >>> board.start("c1", "agent", "Alice Martin")           # doctest: +SKIP
    >>> board.typing("c1", "agent")                          # doctest: +SKIP
    'Alice Martin'
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Literal

from sqlalchemy import Engine, text

from deskbot.bot.store.base import SqlRepository

logger = logging.getLogger(__name__)

__all__ = ["TYPING_TTL_S", "PresenceRepository", "Side", "TypingBoard"]

Side = Literal["customer", "agent"]
SIDES: tuple[Side, ...] = ("customer", "agent")
CHANNEL = "deskbot_typing"
# A typer's page renews its mark at most this often while keys are pressed; a mark
# outlives two renewals, so a slow request does not make the indicator blink.
RENEW_S = 2.0
TYPING_TTL_S = 5.0
# How long a listener thread stays without a reader before it ends.
LISTEN_IDLE_S = 60.0
_LISTEN_POLL_S = 1.0
_RECONNECT_S = 2.0
_MAX_NAME_CHARS = 128
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class TypingBoard:
    """Who types where, for `TYPING_TTL_S` after their last key.

    Args:
        engine: the store's engine; on PostgreSQL marks travel between processes.
        ttl_s: how long a mark lives without renewal.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        ttl_s: float = TYPING_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        # (conversation id, side) -> (the typer's name, when the mark expires)
        self._marks: dict[tuple[str, Side], tuple[str, float]] = {}
        # (conversation id, side) -> (the name this process last sent, when)
        self._sent: dict[tuple[str, Side], tuple[str, float]] = {}
        self._last_read = 0.0
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        # Marks this board sent come back to its own listener too: it knows them already,
        # and an echo of a start arriving after the stop would set the mark again.
        self._origin = secrets.token_hex(8)

    @property
    def across_processes(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def start(self, conversation_id: str, side: Side, name: str = "") -> None:
        """`side` types in the conversation (`name`: who, as the other side sees it)."""
        name = name[:_MAX_NAME_CHARS]
        now = self.clock()
        key = (conversation_id, side)
        with self._lock:
            sent = self._sent.get(key)
            # Sent a moment ago (a second tab, a fast page): the others know already.
            fresh = sent is not None and sent[0] == name and now - sent[1] < RENEW_S / 2
            if not fresh:
                self._sent[key] = (name, now)
            self._put(conversation_id, side, name, now)
        if not fresh:
            self._send(conversation_id, side, name, on=True)

    def stop(self, conversation_id: str, side: Side) -> None:
        """`side` stopped typing (sent the message, emptied the box)."""
        with self._lock:
            held = self._marks.pop((conversation_id, side), None)
            self._sent.pop((conversation_id, side), None)
        if held is not None or self.across_processes:
            self._send(conversation_id, side, "", on=False)

    def typing(self, conversation_id: str, side: Side) -> str | None:
        """The name of whoever of `side` types in the conversation now (the customer's
        is ""), or None if nobody does."""
        now = self.clock()
        self._listen(now)
        with self._lock:
            held = self._marks.get((conversation_id, side))
            if held is None:
                return None
            if held[1] <= now:
                del self._marks[(conversation_id, side)]
                return None
            return held[0]

    def close(self) -> None:
        """Stop listening to other processes (the thread ends within a second)."""
        self._stop.set()

    # -- within and between processes ----------------------------------------------------

    def _put(self, conversation_id: str, side: Side, name: str, now: float) -> None:
        """Set a mark (the lock held), dropping the expired ones."""
        for key in [k for k, (_, until) in self._marks.items() if until <= now]:
            del self._marks[key]
            self._sent.pop(key, None)
        self._marks[(conversation_id, side)] = (name, now + self.ttl_s)

    def _send(self, conversation_id: str, side: Side, name: str, *, on: bool) -> None:
        if not self.across_processes:
            return
        mark = {"c": conversation_id, "s": side, "n": name, "on": on, "o": self._origin}
        payload = json.dumps(mark)
        try:
            with self.engine.begin() as conn:
                conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})
        except Exception as exc:  # an indicator is not worth failing a page's event over
            logger.warning("could not send a typing mark (%s)", type(exc).__name__)

    def _heard(self, payload: str) -> None:
        """A mark another board sent (this board's own are ignored)."""
        try:
            mark = json.loads(payload)
            if mark.get("o") == self._origin:
                return
            conversation_id, side = str(mark["c"]), mark["s"]
            name, on = str(mark.get("n", "")), bool(mark.get("on"))
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("ignored a malformed typing mark")
            return
        if side not in SIDES:
            return
        with self._lock:
            if on:
                self._put(conversation_id, side, name[:_MAX_NAME_CHARS], self.clock())
            else:
                self._marks.pop((conversation_id, side), None)

    def _listen(self, now: float) -> None:
        """Note a reader; on PostgreSQL, start the listener thread if none runs."""
        self._last_read = now
        if not self.across_processes or self._stop.is_set():
            return
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            self._listener = threading.Thread(
                target=self._listen_while_read, name="store-typing", daemon=True
            )
            self._listener.start()

    def _idle(self) -> bool:
        return self.clock() - self._last_read > LISTEN_IDLE_S

    def _listen_while_read(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while not self._stop.is_set() and not self._idle():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set() and not self._idle():
                        for note in conn.notifies(timeout=_LISTEN_POLL_S):
                            self._heard(note.payload)
            except psycopg.Error as exc:
                logger.warning("listening for typing marks failed (%s); retrying", exc)
                self._stop.wait(_RECONNECT_S)


class PresenceRepository(SqlRepository):
    """The store's `typing` board (see `TypingBoard`), over the same engine."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.typing = TypingBoard(engine)
