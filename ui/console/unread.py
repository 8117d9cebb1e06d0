"""What is new for an agent since they last looked: handoffs that joined the queue, and
customers' messages in the conversations the agent has claimed.

The state is per browser page (a Gradio `State`, JSON-like), updated on every refresh
of the queue. A conversation the agent is reading (picked, page in view) has nothing
new; picking one reads it.

Example:
    >>> state = Unread.load(entries)                   # doctest: +SKIP
    >>> state = state.update(entries, agent="alice", reading=None)   # doctest: +SKIP
    >>> state.total                                    # doctest: +SKIP
    1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from deskbot.ui.console.actions import QueueEntry

__all__ = ["MARKER", "Unread"]

MARKER = "● new"


@dataclass(frozen=True)
class Unread:
    """Open handoffs the page knows, the customer turn each of the agent's conversations
    was read up to, and how many new things each handoff has (handoff id -> count)."""

    known: frozenset[int] = frozenset()
    read_up_to: dict[int, int] = field(default_factory=dict)
    new: dict[int, int] = field(default_factory=dict)

    @classmethod
    def load(cls, entries: Sequence[QueueEntry]) -> Unread:
        """What the page starts with: everything open already counts as seen."""
        return cls(
            known=frozenset(e.id for e in entries),
            read_up_to={e.id: max(e.customer_turns, default=0) for e in entries},
        )

    @property
    def total(self) -> int:
        return sum(self.new.values())

    def marker(self, handoff_id: int) -> str:
        return MARKER if self.new.get(handoff_id) else ""

    def update(self, entries: Sequence[QueueEntry], *, agent: str, reading: int | None) -> Unread:
        """The state after a refresh that found `entries` open; `reading` is the handoff
        the agent has in view (its news are read)."""
        new = {e.id: self.new.get(e.id, 0) for e in entries}
        read_up_to = dict(self.read_up_to)
        for e in entries:
            last = max(e.customer_turns, default=0)
            if e.id not in self.known and e.handoff.status == "queued":
                new[e.id] += 1
            elif e.handoff.claimed_by == agent and e.id in read_up_to:
                new[e.id] += sum(1 for t in e.customer_turns if t > read_up_to[e.id])
            read_up_to[e.id] = last
        if reading in new:
            new[reading] = 0
        return Unread(
            known=frozenset(e.id for e in entries),
            read_up_to={k: v for k, v in read_up_to.items() if k in new},
            new={k: n for k, n in new.items() if n},
        )

    def read(self, handoff_id: int | None) -> Unread:
        """The state once the agent opened `handoff_id`."""
        if handoff_id is None or handoff_id not in self.new:
            return self
        return replace(self, new={k: n for k, n in self.new.items() if k != handoff_id})
