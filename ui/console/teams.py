"""Which conversations an agent may see and act on: their teams' (an admin: all).

A handoff waits in one team's queue (`deskbot.bot.store.teams`). The console shows an
agent the queues of their teams only, and every action that names a conversation (pick,
claim, reply, close, notes, canned replies, release, transfer, opening one from Find)
asks `refusal` first: the browser may send any handoff id, so hiding a row is not the
check. A conversation that never had a handoff has no team; any agent may open it.

Membership is read from the store on each request, without a cache: an agent removed
from a team (`deskbot teams leave`) stops seeing its queue at their next refresh, on
every replica.

Example:
    >>> refusal(store, alice, "billing", "Conversation #3")     # doctest: +SKIP
    "Conversation #3 waits in team 'billing', which you are not in; ..."
"""

from __future__ import annotations

import logging

from deskbot.bot.store import Agent, SqlConversationStore

logger = logging.getLogger(__name__)

__all__ = ["refusal", "teams_of"]


def teams_of(store: SqlConversationStore, agent: Agent) -> list[str] | None:
    """The teams whose queues `agent` sees; None (every team's) for an admin."""
    return None if agent.role == "admin" else store.agent_teams(agent.username)


def refusal(store: SqlConversationStore, agent: Agent, team: str | None, what: str) -> str | None:
    """None if `agent` may see `what` (a conversation of `team`); else the notice that
    says why not and who can change it."""
    if team is None:
        return None
    teams = teams_of(store, agent)
    if teams is None or team in teams:
        return None
    logger.warning("agent %s was refused a conversation of team %s", agent.username, team)
    return (
        f"{what} waits in team {team!r}, which you are not in; an admin can move it to "
        "one of your teams or add you to that team."
    )
