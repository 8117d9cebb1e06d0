"""Teams: groups of agents, each with its own queue of handoffs.

A handoff waits in one team's queue (`Handoff.team`, chosen when it opens by the
config's `teams` routes); an agent sees and claims the handoffs of their teams, an
admin all of them (`deskbot.ui.console.actions`). The default team (`default_team`,
"general" unless configured) is where new agents go and where a handoff that no route
takes waits; it cannot be deleted, and neither can a team that still has open handoffs
(they would wait in a queue nobody sees).

Example:
    >>> store.create_team("billing").name            # doctest: +SKIP
    'billing'
    >>> store.join_team("alice", "billing")           # doctest: +SKIP
    >>> store.agent_teams("alice")                    # doctest: +SKIP
    ['billing', 'general']
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from deskbot.bot.core.config_teams import check_team_name
from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import Agent, AgentTeam, Handoff, Team

logger = logging.getLogger(__name__)

__all__ = ["TeamRepository", "readable_by"]


def readable_by(conversation_id: Any, teams: Iterable[str]) -> ColumnElement[bool]:
    """The SQL condition that the conversation `conversation_id` (a column) is one the
    agents of `teams` may read: it never had a handoff (no team), or its latest handoff
    waits in one of them. Find, the customer panel and the review queue apply it (an
    admin's reads skip it)."""
    handoff_of = col(Handoff.conversation_id) == conversation_id
    latest_team = (
        select(Handoff.team)
        .where(handoff_of)
        .order_by(col(Handoff.id).desc())
        .limit(1)
        .scalar_subquery()
    )
    return or_(~exists().where(handoff_of), latest_team.in_(list(teams)))


_OPEN = ("queued", "claimed")


class TeamRepository(SqlRepository):
    """Teams, their members, and which team's queue a handoff waits in."""

    def teams(self) -> list[Team]:
        """Every team, by name."""
        return self._all(select(Team).order_by(col(Team.name)))

    def team_members(self) -> dict[str, list[str]]:
        """Team name -> the usernames of its members, each sorted (empty teams too)."""
        members: dict[str, list[str]] = {t.name: [] for t in self.teams()}
        rows = self._all(select(AgentTeam).order_by(col(AgentTeam.username)))
        for row in rows:
            members.setdefault(row.team, []).append(row.username)
        return members

    def create_team(self, name: str) -> Team:
        """Add an empty team.

        Raises:
            StoreError: the name cannot name a team, or the team exists.
        """
        try:
            team = Team(name=check_team_name(name))
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        with self._write_session() as s:
            s.add(team)
            try:
                s.commit()
            except IntegrityError:
                raise StoreError(f"team {name!r} already exists") from None
        logger.info("team %s created", name)
        return team

    def ensure_teams(self, names: Iterable[str]) -> None:
        """Create those of `names` that do not exist (the teams the config routes to)."""
        have = {t.name for t in self.teams()}
        for name in names:
            if name not in have:
                try:
                    self.create_team(name)
                except StoreError:  # another process made it meanwhile
                    if name not in {t.name for t in self.teams()}:
                        raise

    def delete_team(self, name: str) -> None:
        """Delete a team and its memberships.

        Raises:
            StoreError: no such team, it is the default team, or handoffs still wait
                in (or are claimed from) its queue.
        """
        if name == self.default_team:
            raise StoreError(f"{name!r} is the default team and cannot be deleted")
        with self._write_session() as s:
            if s.get(Team, name) is None:
                raise StoreError(f"there is no team {name!r} (see `deskbot teams list`)")
            waiting = s.exec(
                select(func.count())
                .select_from(Handoff)
                .where(Handoff.team == name, col(Handoff.status).in_(_OPEN))
            ).one()
            if waiting:
                raise StoreError(
                    f"team {name!r} has {waiting} open handoff(s); move them to another team "
                    "first (`deskbot teams move`)"
                )
            s.execute(delete(AgentTeam).where(col(AgentTeam.team) == name))
            s.execute(delete(Team).where(col(Team.name) == name))
            s.commit()
        logger.info("team %s deleted", name)

    def join_team(self, username: str, team: str) -> bool:
        """Make `username` a member of `team`; False if they already were.

        Raises:
            StoreError: no such agent or team.
        """
        with self._write_session() as s:
            self._check(s.get(Agent, username) is not None, f"there is no agent {username!r}")
            self._check(s.get(Team, team) is not None, f"there is no team {team!r}")
            if s.get(AgentTeam, (username, team)) is not None:
                return False
            s.add(AgentTeam(username=username, team=team))
            try:
                s.commit()
            except IntegrityError:  # joined by another process meanwhile
                return False
        logger.info("agent %s joined team %s", username, team)
        return True

    def leave_team(self, username: str, team: str) -> bool:
        """End `username`'s membership of `team`; False if they were no member."""
        with self._write_transaction() as conn:
            gone = conn.execute(
                delete(AgentTeam).where(
                    col(AgentTeam.username) == username, col(AgentTeam.team) == team
                )
            ).rowcount
        if gone:
            logger.info("agent %s left team %s", username, team)
        return bool(gone)

    def agent_teams(self, username: str) -> list[str]:
        """The names of the teams `username` belongs to, sorted."""
        return self._all(
            select(AgentTeam.team)
            .where(AgentTeam.username == username)
            .order_by(col(AgentTeam.team))
        )

    def conversation_team(self, conversation_id: str) -> str | None:
        """The team of the conversation's latest handoff (None if it never had one):
        whose agents may read it."""
        with self.session() as s:
            return s.exec(
                select(Handoff.team)
                .where(Handoff.conversation_id == conversation_id)
                .order_by(col(Handoff.id).desc())
                .limit(1)
            ).first()

    def move_handoff_to_team(self, handoff_id: int, team: str) -> Handoff:
        """Put an open handoff in `team`'s queue; a claimed one goes back unclaimed (its
        agent may not be of that team), keeping its place by `created_at`.

        Raises:
            StoreError: no such team or handoff, or the handoff is resolved.
        """
        with self.session() as s:
            self._check(s.get(Team, team) is not None, f"there is no team {team!r}")
        with self._changing_transaction() as conn:
            moved = conn.execute(
                update(Handoff)
                .where(col(Handoff.id) == handoff_id, col(Handoff.status).in_(_OPEN))
                .values(team=team, status="queued", claimed_by=None, claimed_at=None)
            ).rowcount
        with self.session() as s:
            now = s.get(Handoff, handoff_id)
        if now is None:
            raise StoreError(f"no handoff {handoff_id}")
        if not moved:
            raise StoreError(f"handoff {handoff_id} is {now.status}; only an open one moves")
        logger.info("handoff %s moved to team %s", handoff_id, team)
        return now

    @staticmethod
    def _check(ok: bool, message: str) -> None:
        if not ok:
            raise StoreError(message)
