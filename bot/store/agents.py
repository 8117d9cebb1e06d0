"""Agents (the people who may use the console) and their labels of bot turns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Unpack

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.audit import AuditEntry, write_audit
from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import (
    Agent,
    AgentLabel,
    AgentSession,
    AgentTeam,
    LabelFields,
    Team,
    utcnow,
)

__all__ = ["AgentRepository"]


class AgentRepository(SqlRepository):
    """Console accounts, and agents' corrections of bot turns (the nightly job's data)."""

    def add_agent(self, agent: Agent, *, teams: Sequence[str] | None = None) -> None:
        """Add the account, a member of `teams` (`deskbot.bot.store.teams`; None: the
        default team, as the migration to teams put every agent).

        Raises:
            StoreError: the agent exists, or one of `teams` does not.
        """
        teams = [self.default_team] if teams is None else teams
        with self._write_session() as s:
            for team in teams:
                if s.get(Team, team) is None:
                    raise StoreError(f"there is no team {team!r} (see `deskbot teams list`)")
            s.add(agent)
            s.add_all(AgentTeam(username=agent.username, team=team) for team in set(teams))
            try:
                s.commit()
            except IntegrityError as exc:
                raise StoreError(f"agent {agent.username!r} already exists") from exc

    def get_agent(self, username: str) -> Agent | None:
        with self.session() as s:
            return s.get(Agent, username)

    def start_agent_session(
        self,
        session_id: str,
        username: str,
        *,
        expires_at: datetime,
        address: str | None,
        now: datetime | None = None,
    ) -> AgentSession:
        """Record a console login (`session_id`: the SHA-256 of the cookie's token)."""
        now = now or utcnow()
        row = AgentSession(
            id=session_id,
            username=username,
            expires_at=expires_at,
            address=address,
            created_at=now,
            last_seen_at=now,
        )
        with self._write_session() as s:
            s.add(row)
            s.commit()
        return row

    def agent_session(self, session_id: str) -> tuple[AgentSession, Agent] | None:
        """The session and its agent: one lookup by primary key, joined."""
        with self.session() as s:
            row = s.exec(
                select(AgentSession, Agent)
                .join(Agent, col(Agent.username) == col(AgentSession.username))
                .where(AgentSession.id == session_id)
            ).first()
        return (row[0], row[1]) if row is not None else None

    def touch_agent_session(self, session_id: str, when: datetime) -> None:
        """Mark the session used at `when` (its idle expiry counts from there)."""
        with self._write_session() as s:
            s.execute(
                update(AgentSession)
                .where(col(AgentSession.id) == session_id)
                .values(last_seen_at=when)
            )
            s.commit()

    def end_agent_sessions(
        self, username: str | None = None, *, session_id: str | None = None, keep: str | None = None
    ) -> int:
        """Delete sessions: one (`session_id`), or all of `username`'s but `keep`.
        Returns how many ended."""
        statement = delete(AgentSession)
        if session_id is not None:
            statement = statement.where(col(AgentSession.id) == session_id)
        if username is not None:
            statement = statement.where(col(AgentSession.username) == username)
        if keep is not None:
            statement = statement.where(col(AgentSession.id) != keep)
        if session_id is None and username is None:
            raise ValueError("name a session or an agent")
        with self._write_transaction() as conn:
            return int(conn.execute(statement).rowcount)

    def agent_sessions(self, username: str) -> list[AgentSession]:
        """`username`'s sessions, newest first (expired ones included until pruned)."""
        return self._all(
            select(AgentSession)
            .where(AgentSession.username == username)
            .order_by(col(AgentSession.created_at).desc())
        )

    def prune_agent_sessions(self, now: datetime | None = None, *, idle: timedelta) -> int:
        """Delete sessions past their absolute expiry or idle for longer than `idle`."""
        now = now or utcnow()
        statement = delete(AgentSession).where(
            (col(AgentSession.expires_at) < now) | (col(AgentSession.last_seen_at) < now - idle)
        )
        with self._write_transaction() as conn:
            return int(conn.execute(statement).rowcount)

    def update_agent(self, username: str, **values: object) -> bool:
        """Set columns of `username`'s row (`password_hash`, `disabled`); False if unknown."""
        statement = update(Agent).where(col(Agent.username) == username).values(**values)
        with self._write_transaction() as conn:
            return int(conn.execute(statement).rowcount) == 1

    def add_label(
        self,
        turn_id: int,
        agent: str,
        *,
        audit: AuditEntry | None = None,
        **values: Unpack[LabelFields],
    ) -> AgentLabel:
        """Store `agent`'s correction of turn `turn_id`: the right intent, and whether (and
        how) the answer was wrong (with `audit`'s row, in the same transaction)."""
        label = AgentLabel(turn_id=turn_id, agent=agent, **values)
        with self._write_session() as s:
            s.add(label)
            if audit is not None:
                write_audit(s, audit)
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
