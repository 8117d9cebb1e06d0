"""Handoffs: conversations queued for a human agent, claimed by one, resolved."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.audit import AuditEntry, write_audit
from deskbot.bot.store.base import SqlRepository, set_conversation_status
from deskbot.bot.store.models import Handoff, HandoffStatus, TurnRecord, utcnow

__all__ = ["CustomerTurn", "HandoffRepository"]

OPEN: tuple[HandoffStatus, ...] = ("queued", "claimed")
# The customer turns of a conversation the console's queue reads (its last message,
# intent, and what is new since the agent looked).
QUEUE_TURNS = 20


class CustomerTurn(NamedTuple):
    """A customer's message as the queue reads it."""

    id: int
    text: str
    intent: str | None


def _open_handoffs(conversation_id: str) -> SelectOfScalar[Handoff]:
    """The conversation's queued or claimed handoffs, newest first."""
    return (
        select(Handoff)
        .where(Handoff.conversation_id == conversation_id, col(Handoff.status).in_(OPEN))
        .order_by(col(Handoff.id).desc())
    )


class HandoffRepository(SqlRepository):
    """The queue of conversations waiting for (or owned by) a person."""

    def open_handoff(
        self,
        conversation_id: str,
        reason: str,
        *,
        intent: str | None = None,
        team: str | None = None,
    ) -> Handoff:
        """Queue the conversation for a human in `team`'s queue (the default team's for
        None); an already open handoff is returned as is."""
        with self._write_session() as s:
            existing = s.exec(_open_handoffs(conversation_id)).first()
            if existing is not None:
                return existing
            handoff = Handoff(
                conversation_id=conversation_id,
                reason=reason,
                intent=intent,
                team=team or self.default_team,
            )
            s.add(handoff)
            s.execute(set_conversation_status(conversation_id, "handoff"))
            self.changes.wrote(s)
            s.commit()
        self.changes.committed()
        return handoff

    def get_handoff(self, handoff_id: int) -> Handoff | None:
        with self.session() as s:
            return s.get(Handoff, handoff_id)

    def active_handoff(self, conversation_id: str) -> Handoff | None:
        """The conversation's queued or claimed handoff, if it has one."""
        with self.session() as s:
            return s.exec(_open_handoffs(conversation_id)).first()

    def handoff_queue(
        self,
        *,
        statuses: Sequence[HandoffStatus] = ("queued",),
        teams: Collection[str] | None = None,
    ) -> list[Handoff]:
        """The handoffs in any of `statuses`, oldest first; only those of `teams` unless
        None (every team's)."""
        query = select(Handoff).where(col(Handoff.status).in_(tuple(statuses)))
        if teams is not None:
            query = query.where(col(Handoff.team).in_(tuple(teams)))
        return self._all(query.order_by(col(Handoff.created_at)))

    def queue_customer_turns(
        self, conversation_ids: Collection[str], *, last: int = QUEUE_TURNS
    ) -> dict[str, list[CustomerTurn]]:
        """The `last` customer turns of each conversation, oldest first, in one query:
        what the console's queue shows and counts as new for every open handoff.

        One statement for the whole queue, not one per handoff: with 1,000 handoffs
        queued, a query each took 0.4 ms, 400 ms per refresh of an admin's console
        (`benchmarks/performance/console_refresh.py`), and a refresh runs on every
        change of any conversation.
        """
        if not conversation_ids:
            return {}
        newest = (
            func.row_number()
            .over(partition_by=TurnRecord.conversation_id, order_by=col(TurnRecord.seq).desc())
            .label("newest")
        )
        # SQLAlchemy's select: the query is of columns, more than sqlmodel's types take.
        ranked = (
            sa.select(
                col(TurnRecord.conversation_id),
                col(TurnRecord.id),
                col(TurnRecord.seq),
                col(TurnRecord.text),
                col(TurnRecord.intent),
                newest,
            )
            .where(
                col(TurnRecord.conversation_id).in_(tuple(conversation_ids)),
                col(TurnRecord.role) == "user",
            )
            .subquery()
        )
        query = (
            sa.select(ranked.c.conversation_id, ranked.c.id, ranked.c.text, ranked.c.intent)
            .where(ranked.c.newest <= last)
            .order_by(ranked.c.conversation_id, ranked.c.seq)
        )
        turns: dict[str, list[CustomerTurn]] = {}
        with self.session() as s:
            for conversation_id, turn_id, text, intent in s.execute(query):
                turns.setdefault(conversation_id, []).append(CustomerTurn(turn_id, text, intent))
        return turns

    def claim_handoff(
        self,
        handoff_id: int,
        agent: str,
        *,
        team: str | None = None,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Give the handoff to `agent`; False if someone else already has it, or (with
        `team`) it no longer waits in that team's queue.

        One conditional UPDATE decides: of two agents (in any number of processes)
        claiming at once, exactly one changes the row; and a handoff an admin moved to
        another team after the agent's team was checked is not claimed. `audit` is
        written in the same transaction when the claim succeeds.
        """
        where = [col(Handoff.id) == handoff_id, col(Handoff.status) == "queued"]
        if team is not None:
            where.append(col(Handoff.team) == team)
        with self._changing_transaction() as conn:
            result = conn.execute(
                update(Handoff)
                .where(*where)
                .values(status="claimed", claimed_by=agent, claimed_at=utcnow())
            )
            if audit is not None and result.rowcount == 1:
                write_audit(conn, audit)
        return result.rowcount == 1

    def resolve_handoff(
        self, handoff_id: int, *, back_to_bot: bool = True, audit: AuditEntry | None = None
    ) -> None:
        """Close the handoff; the conversation returns to the bot or is closed (and
        `audit` is written in the same transaction)."""
        with self._write_session() as s:
            handoff = s.get(Handoff, handoff_id)
            if handoff is None:
                raise StoreError(f"no handoff {handoff_id}")
            handoff.status = "resolved"
            handoff.resolved_at = utcnow()
            s.add(handoff)
            s.execute(
                set_conversation_status(
                    handoff.conversation_id, "open" if back_to_bot else "closed"
                )
            )
            if audit is not None:
                write_audit(s, audit)
            self.changes.wrote(s)
            s.commit()
        self.changes.committed()
