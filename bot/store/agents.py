"""Agents (the people who may use the console) and their labels of bot turns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import Agent, AgentLabel, LabelFields

__all__ = ["AgentRepository"]


class AgentRepository(SqlRepository):
    """Console accounts, and agents' corrections of bot turns (the nightly job's data)."""

    def add_agent(self, agent: Agent) -> None:
        with self._write_session() as s:
            s.add(agent)
            try:
                s.commit()
            except IntegrityError as exc:
                raise StoreError(f"agent {agent.username!r} already exists") from exc

    def get_agent(self, username: str) -> Agent | None:
        with self.session() as s:
            return s.get(Agent, username)

    def add_label(self, turn_id: int, agent: str, **values: Unpack[LabelFields]) -> AgentLabel:
        """Store `agent`'s correction of turn `turn_id`: the right intent, and whether (and
        how) the answer was wrong."""
        label = AgentLabel(turn_id=turn_id, agent=agent, **values)
        with self._write_session() as s:
            s.add(label)
            self.changes.wrote(s)  # the console marks the turn labelled
            s.commit()
        self.changes.committed()
        return label

    def labels(self) -> list[AgentLabel]:
        """Every label, oldest first."""
        return self._all(select(AgentLabel).order_by(col(AgentLabel.id)))

    def labels_for(self, turn_ids: Sequence[int]) -> list[AgentLabel]:
        """The labels of the given turns, oldest first."""
        if not turn_ids:
            return []
        return self._all(
            select(AgentLabel)
            .where(col(AgentLabel.turn_id).in_(tuple(turn_ids)))
            .order_by(col(AgentLabel.id))
        )
