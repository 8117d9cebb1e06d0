"""The agent console's queries: the review queue and the dashboard's counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Subquery, UnaryExpression, exists, func
from sqlmodel import Session, col, select

from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import AgentLabel, Conversation, Handoff, TurnRecord, utcnow
from deskbot.bot.store.teams import readable_by

__all__ = ["ReviewRepository", "live_turn"]


def live_turn() -> ColumnElement[bool]:
    """A turn of a live conversation: imported past conversations (`Conversation.source`
    set, `deskbot import conversations`) are left out of every live figure.

    NOT EXISTS, not NOT IN: PostgreSQL plans it as an anti-join whatever the number of
    imported conversations, where NOT IN falls back to a scan per row once their ids
    outgrow work_mem."""
    imported = select(Conversation.id).where(
        col(Conversation.id) == col(TurnRecord.conversation_id),
        col(Conversation.source).is_not(None),
    )
    return ~exists(imported)


class ReviewRepository(SqlRepository):
    """What agents review (bot turns the bot was unsure of, or the customer disliked)
    and the dashboard's aggregates."""

    def least_confident_turns(
        self, *, limit: int = 20, teams: Sequence[str] | None = None
    ) -> list[TurnRecord]:
        """Bot turns with the lowest intent confidence that no agent has labelled yet
        (with `teams`, of conversations their agents may read)."""
        return self._unlabelled_bot_turns(
            col(TurnRecord.confidence).is_not(None),
            order_by=(col(TurnRecord.confidence).asc(), col(TurnRecord.id).desc()),
            limit=limit,
            teams=teams,
        )

    def thumbs_down_turns(
        self, *, limit: int = 20, teams: Sequence[str] | None = None
    ) -> list[TurnRecord]:
        """Bot turns the customer gave a thumbs-down, newest first, not labelled yet
        (with `teams`, of conversations their agents may read)."""
        return self._unlabelled_bot_turns(
            col(TurnRecord.feedback) == -1,
            order_by=(col(TurnRecord.id).desc(),),
            limit=limit,
            teams=teams,
        )

    def _unlabelled_bot_turns(
        self,
        condition: ColumnElement[bool],
        *,
        order_by: tuple[UnaryExpression[Any], ...],
        limit: int,
        teams: Sequence[str] | None,
    ) -> list[TurnRecord]:
        """The review queue's base query: bot turns matching `condition` without a label."""
        labelled = select(AgentLabel.turn_id)
        where: list[ColumnElement[bool]] = [
            col(TurnRecord.role) == "bot",
            condition,
            col(TurnRecord.id).not_in(labelled),
        ]
        if teams is not None:
            where.append(readable_by(col(TurnRecord.conversation_id), teams))
        return self._all(select(TurnRecord).where(*where).order_by(*order_by).limit(limit))

    def dashboard_counts(self, *, days: int = 14) -> dict[str, Any]:
        """Aggregates for the agent dashboard over the last `days` days (UTC).

        Returns a dict with `turns_per_day` ({"YYYY-MM-DD": customer messages}),
        `conversations` (those with a customer message), `handed_off` (those of them
        with a handoff), `handoff_reasons`, `bot_kinds` and `top_intents` (name -> count).
        Live conversations only: imported ones are never counted (`live_turn`).
        """
        since = utcnow() - timedelta(days=days)
        with self.session() as s:
            active = (
                select(TurnRecord.conversation_id)
                .where(TurnRecord.role == "user", col(TurnRecord.created_at) >= since, live_turn())
                .distinct()
                .subquery()
            )
            return {
                "turns_per_day": _turns_per_day(s, since),
                **_handoff_counts(s, since, active),
                **_bot_turn_counts(s, since),
            }


def _turns_per_day(s: Session, since: datetime) -> dict[str, int]:
    day = func.date(TurnRecord.created_at)
    per_day = s.execute(
        select(day, func.count())
        .where(TurnRecord.role == "user", col(TurnRecord.created_at) >= since, live_turn())
        .group_by(day)
        .order_by(day)
    ).all()
    return {str(d): int(n) for d, n in per_day}


def _handoff_counts(s: Session, since: datetime, active: Subquery) -> dict[str, Any]:
    """How many `active` conversations there were, how many were handed off, and why."""
    conversations = s.execute(select(func.count()).select_from(active)).scalar_one()
    handed_off = s.execute(
        select(func.count(func.distinct(Handoff.conversation_id))).where(
            col(Handoff.conversation_id).in_(select(active.c.conversation_id))
        )
    ).scalar_one()
    reasons = s.execute(
        select(Handoff.reason, func.count())
        .where(col(Handoff.created_at) >= since)
        .group_by(Handoff.reason)
    ).all()
    return {
        "conversations": int(conversations),
        "handed_off": int(handed_off),
        "handoff_reasons": {str(r): int(n) for r, n in reasons},
    }


def _bot_turn_counts(s: Session, since: datetime) -> dict[str, dict[str, int]]:
    """The bot's turns since `since` by kind, and its ten most frequent intents."""
    bot_recent = (TurnRecord.role == "bot", col(TurnRecord.created_at) >= since, live_turn())
    kinds = s.execute(
        select(TurnRecord.kind, func.count()).where(*bot_recent).group_by(TurnRecord.kind)
    ).all()
    intents = s.execute(
        select(TurnRecord.intent, func.count())
        .where(*bot_recent, col(TurnRecord.intent).is_not(None))
        .group_by(TurnRecord.intent)
        .order_by(func.count().desc(), col(TurnRecord.intent))
        .limit(10)
    ).all()
    return {
        "bot_kinds": {str(k): int(n) for k, n in kinds},
        "top_intents": {str(i): int(n) for i, n in intents},
    }
