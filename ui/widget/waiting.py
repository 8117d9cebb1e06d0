"""Where a customer stands with the support team: their place in the agents' queue, a
wait estimate, and how their last handoff ended.

The estimate is rough and says so ("about"): the median time the last
`RECENT_HANDOFFS` claimed handoffs waited to be claimed, once per place in the queue
(the customer ahead is claimed first). With no claimed handoff yet it is
`DEFAULT_WAIT_S` a place.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.models import Handoff

RECENT_HANDOFFS = 20
DEFAULT_WAIT_S = 120.0


@dataclass(frozen=True)
class Place:
    """A queued customer's place (1: next) and the wait, in whole minutes (at least 1)."""

    position: int
    minutes: int

    def sentence(self) -> str:
        unit = "minute" if self.minutes == 1 else "minutes"
        return (
            f"You're number {self.position} in the queue; the wait is about {self.minutes} {unit}."
        )


def queue_place(store: SqlConversationStore, handoff: Handoff) -> Place | None:
    """`handoff`'s place in its team's queue of handoffs no agent has claimed; None if
    it is not queued."""
    queued = [h.id for h in store.handoff_queue(teams=[handoff.team])]
    if handoff.id not in queued:
        return None
    position = queued.index(handoff.id) + 1
    minutes = max(1, math.ceil(claim_wait_s(store) * position / 60.0))
    return Place(position, minutes)


def claim_wait_s(store: SqlConversationStore) -> float:
    """The median wait, in seconds, of the last claimed handoffs before their claim."""
    with store.session() as s:
        rows = s.exec(
            select(Handoff.created_at, Handoff.claimed_at)
            .where(col(Handoff.claimed_at).is_not(None))
            .order_by(col(Handoff.claimed_at).desc())
            .limit(RECENT_HANDOFFS)
        ).all()
    waits = [_seconds(created, claimed) for created, claimed in rows if claimed is not None]
    return statistics.median(waits) if waits else DEFAULT_WAIT_S


def _seconds(start: datetime, end: datetime) -> float:
    # SQLite gives naive datetimes back, PostgreSQL aware ones: compare like with like.
    if (start.tzinfo is None) != (end.tzinfo is None):
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return max(0.0, (end - start).total_seconds())


def last_handoff(store: SqlConversationStore, conversation_id: str) -> Handoff | None:
    """The conversation's latest handoff, whatever its status."""
    with store.session() as s:
        return s.exec(
            select(Handoff)
            .where(Handoff.conversation_id == conversation_id)
            .order_by(col(Handoff.id).desc())
        ).first()


class ConversationLocks:
    """One lock per conversation, held while a message of it is answered: two events of
    one conversation (a typed message and a clicked option, two tabs) do not interleave
    their turns. A lock lives while someone holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, conversation_id: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(conversation_id, (threading.Lock(), 0))
            self._locks[conversation_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[conversation_id]
                if users == 1:
                    del self._locks[conversation_id]
                else:
                    self._locks[conversation_id] = (lock, users - 1)
