"""The customers' satisfaction survey: one answer per conversation, and CSAT for the
dashboard by intent and by agent."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any, Literal, TypedDict

from sqlalchemy import Connection, Insert, case, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import Handoff, SatisfactionAnswer, TurnRecord, utcnow

__all__ = ["SATISFIED", "CsatRow", "SatisfactionRepository"]

SCORES = range(1, 6)
# CSAT is the share of answers of 4 or 5 ("satisfied" or "very satisfied").
SATISFIED = 4
# The group of answers with no agent (the bot alone helped) or no known intent.
NO_AGENT = "(bot only)"
NO_INTENT = "(unknown)"


class CsatRow(TypedDict):
    """CSAT of one group of answers: how many, how many satisfied, their share, the mean."""

    answers: int
    satisfied: int
    csat: float
    mean_score: float


@functools.cache
def _upsert(dialect: str) -> Insert:
    """INSERT of a survey answer that replaces the conversation's earlier answer."""
    replaced = ("score", "comment", "agent_id", "intent", "created_at")
    key = ["conversation_id"]
    if dialect == "postgresql":
        pg = postgresql.insert(SatisfactionAnswer)
        return pg.on_conflict_do_update(
            index_elements=key, set_={name: pg.excluded[name] for name in replaced}
        )
    lite = sqlite.insert(SatisfactionAnswer)
    return lite.on_conflict_do_update(
        index_elements=key, set_={name: lite.excluded[name] for name in replaced}
    )


def _check_score(score: int) -> None:
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCORES:
        raise ValueError(f"a satisfaction score is a whole number from 1 to 5, not {score!r}")


class SatisfactionRepository(SqlRepository):
    """Survey answers (`record_satisfaction`) and their CSAT (`csat_by_intent`,
    `csat_by_agent`)."""

    def record_satisfaction(
        self,
        conversation_id: str,
        score: int,
        comment: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        """Store the customer's survey answer for the conversation; a second answer
        replaces the first.

        Args:
            conversation_id: the conversation answered about (StoreError if none).
            score: 1 (very unsatisfied) to 5 (very satisfied); ValueError otherwise.
            comment: what the customer wrote, if anything.
            agent_id: the agent who helped; by default the one who last claimed the
                conversation's handoff (None when the bot alone helped).
        """
        _check_score(score)
        try:
            with self._write_transaction() as conn:
                claimed_by, intent = _last_handoff(conn, conversation_id)
                values: dict[str, Any] = {
                    "conversation_id": conversation_id,
                    "score": score,
                    "comment": comment or None,
                    "agent_id": agent_id or claimed_by,
                    "intent": intent or _last_intent(conn, conversation_id),
                    "created_at": utcnow(),
                }
                conn.execute(_upsert(self.engine.dialect.name), values)
        except IntegrityError as exc:
            raise StoreError(f"no conversation {conversation_id!r}") from exc

    def satisfaction(self, conversation_id: str) -> SatisfactionAnswer | None:
        """The conversation's survey answer, if the customer gave one."""
        with self.session() as s:
            return s.get(SatisfactionAnswer, conversation_id)

    def csat_by_intent(self, *, days: int = 30) -> dict[str, CsatRow]:
        """CSAT of the last `days` days' answers by the intent of the conversation (its
        handoff's, else its customer's last classified message); `(unknown)` if none."""
        return self._csat("intent", days)

    def csat_by_agent(self, *, days: int = 30) -> dict[str, CsatRow]:
        """CSAT of the last `days` days' answers by the agent who helped; `(bot only)`
        for conversations no agent took."""
        return self._csat("agent_id", days)

    def _csat(self, by: Literal["intent", "agent_id"], days: int) -> dict[str, CsatRow]:
        group = col(getattr(SatisfactionAnswer, by))
        score = col(SatisfactionAnswer.score)
        satisfied = func.sum(case((score >= SATISFIED, 1), else_=0))
        with self.session() as s:
            rows = s.execute(
                select(group, func.count(), satisfied, func.avg(score))
                .where(col(SatisfactionAnswer.created_at) >= utcnow() - timedelta(days=days))
                .group_by(group)
                .order_by(func.count().desc(), group)
            ).all()
        missing = NO_INTENT if by == "intent" else NO_AGENT
        return {
            str(name) if name is not None else missing: CsatRow(
                answers=int(n),
                satisfied=int(ok),
                csat=round(int(ok) / int(n), 4),
                mean_score=round(float(mean), 2),
            )
            for name, n, ok, mean in rows
        }


def _last_handoff(conn: Connection, conversation_id: str) -> tuple[str | None, str | None]:
    """Who claimed the conversation's newest handoff, and its intent (None, None if none)."""
    row = conn.execute(
        select(Handoff.claimed_by, Handoff.intent)
        .where(Handoff.conversation_id == conversation_id)
        .order_by(col(Handoff.id).desc())
        .limit(1)
    ).first()
    return (row.claimed_by, row.intent) if row is not None else (None, None)


def _last_intent(conn: Connection, conversation_id: str) -> str | None:
    """The intent of the conversation's last classified turn."""
    return conn.execute(
        select(TurnRecord.intent)
        .where(TurnRecord.conversation_id == conversation_id, col(TurnRecord.intent).is_not(None))
        .order_by(col(TurnRecord.seq).desc())
        .limit(1)
    ).scalar()
