"""Moving a claimed handoff: back to the queue (release) or to another agent (transfer).

Only the agent who has the handoff, or an admin, may move it. Each move is one
conditional UPDATE, as a claim is (`HandoffRepository.claim_handoff`): of an agent
releasing and an admin transferring at once, in any processes, exactly one changes the
row, and the other is told what happened instead.

A released handoff keeps its `created_at`, so it goes back to its old place in the
queue (near the front: it has waited longest) and the customer's widget says so.
"""

from __future__ import annotations

import logging

from sqlalchemy import ColumnElement, and_, true, update
from sqlmodel import col, select

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.canned import NotAllowed
from deskbot.bot.store.models import Agent, AgentTeam, Handoff

logger = logging.getLogger(__name__)

__all__ = ["HandoffTransferRepository"]


def _movable_by(agent: Agent) -> ColumnElement[bool]:
    """The handoffs `agent` may move: claimed, and by them unless they are an admin."""
    mine = true() if agent.role == "admin" else col(Handoff.claimed_by) == agent.username
    return and_(col(Handoff.status) == "claimed", mine)


class HandoffTransferRepository(SqlRepository):
    """Release and transfer of claimed handoffs; the agents one may go to."""

    def agents(self) -> list[Agent]:
        """The console accounts that are not disabled, by display name (whom a handoff
        may go to)."""
        return self._all(
            select(Agent)
            .where(col(Agent.disabled).is_(False))
            .order_by(col(Agent.display_name), col(Agent.username))
        )

    def release_handoff(self, handoff_id: int, by: Agent) -> Handoff:
        """Put the claimed handoff back in the queue, unclaimed; the handoff as it is now.

        Raises:
            NotAllowed: `by` neither has the handoff nor is an admin.
            StoreError: no such handoff, or it is not claimed (queued, resolved).
        """
        return self._move(handoff_id, by, status="queued", claimed_by=None, claimed_at=None)

    def transfer_handoff(self, handoff_id: int, by: Agent, to: str) -> Handoff:
        """Give the claimed handoff to agent `to`; the handoff as it is now. It keeps its
        `claimed_at`: how long the customer waited for a person does not change.

        Raises:
            NotAllowed: `by` neither has the handoff nor is an admin.
            StoreError: no such handoff or agent `to`, `to` is disabled, has it already
                or is neither an admin nor in the handoff's team, or the handoff is not
                claimed.
        """
        with self.session() as s:
            target = s.get(Agent, to)
        if target is None:
            raise StoreError(f"there is no agent {to!r}; pick one from the list")
        if target.disabled:
            raise StoreError(f"agent {to!r} is disabled and cannot answer; pick another")
        with self.session() as s:
            h = s.get(Handoff, handoff_id)
            member = h is None or s.get(AgentTeam, (to, h.team)) is not None
        if not member and target.role != "admin" and h is not None:
            # They would hold a conversation they cannot see (`deskbot.bot.store.teams`).
            raise StoreError(
                f"agent {to!r} is not in team {h.team!r}, where conversation #{handoff_id} "
                "waits; pick one of its members, or ask an admin to add them to it"
            )
        return self._move(handoff_id, by, claimed_by=to, extra=col(Handoff.claimed_by) != to)

    def _move(
        self,
        handoff_id: int,
        by: Agent,
        *,
        extra: ColumnElement[bool] | None = None,
        **values: object,
    ) -> Handoff:
        where = [col(Handoff.id) == handoff_id, _movable_by(by)]
        if extra is not None:
            where.append(extra)
        with self._changing_transaction() as conn:
            moved = conn.execute(update(Handoff).where(*where).values(**values)).rowcount
        with self.session() as s:
            now = s.get(Handoff, handoff_id)
        if moved == 1 and now is not None:
            logger.info("handoff %s moved by %s: %s", handoff_id, by.username, sorted(values))
            return now
        raise _why_not(handoff_id, now, by, values.get("claimed_by"))


def _why_not(handoff_id: int, now: Handoff | None, by: Agent, to: object) -> StoreError:
    """Why a move changed no row, as the agent should read it."""
    if now is None:
        return StoreError(f"no handoff {handoff_id}")
    if now.status != "claimed":
        return StoreError(f"conversation #{handoff_id} is {now.status}, not claimed by anyone")
    if to is not None and now.claimed_by == to:
        return StoreError(f"conversation #{handoff_id} is already with {to}")
    if by.role == "admin" or now.claimed_by == by.username:
        return StoreError(f"conversation #{handoff_id} changed meanwhile; look again")
    logger.warning("agent %s was refused moving handoff %s", by.username, handoff_id)
    return NotAllowed(
        f"conversation #{handoff_id} is claimed by {now.claimed_by}; only they or an admin "
        "may release or transfer it"
    )
