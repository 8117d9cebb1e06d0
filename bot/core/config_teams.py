"""The `teams` section of deskbot.yaml: which team's queue a handoff waits in.

A handoff goes to the team that its reason routes to, else to the team that the
conversation's last intent routes to, else to the `default` team. The reason comes
first because it says what the customer needs now ("form_failed" needs whoever fixes
forms, whatever the topic); the intent says what it is about.

    teams:
      default: general          # new agents join it; handoffs no route takes wait in it
      routes:
        billing: {intents: [refund_request, invoice], reasons: [action_unavailable]}
        security: {intents: [card_stolen]}

The migration that brought teams (0009) put every agent and handoff in "general": a
file without this section works as the one-queue desk did. Teams named here are
created in the store when the bot starts; members join with `deskbot teams join`.

Example:
    >>> TeamsConfig(routes={"billing": TeamRoute(intents=("refund",))}).team_for(
    ...     "customer_request", "refund")
    'billing'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import field
from typing import Annotated, Self, get_args

from pydantic import AfterValidator, BeforeValidator, model_validator

from deskbot.bot.core.checks import Text, TextList, fail, settings
from deskbot.bot.core.types import HandoffReason

__all__ = ["DEFAULT_TEAM", "TEAM_NAME", "TeamRoute", "TeamsConfig", "check_team_name"]

DEFAULT_TEAM = "general"
# Lower case, as typed on the command line and shown in the console (the column holds 64).
TEAM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
REASONS: tuple[str, ...] = get_args(HandoffReason)


def check_team_name(name: str) -> str:
    """`name` if it can name a team; ValueError saying what a name looks like."""
    if not TEAM_NAME.fullmatch(name):
        raise ValueError(
            f"{name[:80]!r} cannot name a team: use 1 to 64 lower-case letters, digits, "
            "'-' or '_', starting with a letter or digit (e.g. 'billing')"
        )
    return name


def _team_name(name: str) -> str:
    try:
        return check_team_name(name)
    except ValueError as exc:
        raise fail(f": {exc}") from None


def _reasons(reasons: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [r for r in reasons if r not in REASONS]
    if unknown:
        raise fail(f"has unknown handoff reason(s) {unknown}; known: {list(REASONS)}")
    return reasons


def _team_keys(routes: object) -> object:
    # Checked before the values, so that a misspelt team reads as a bad name, not as
    # a mapping of the wrong type.
    if isinstance(routes, dict):
        for name in routes:
            if isinstance(name, str):
                _team_name(name)
    return routes


TeamName = Annotated[Text, AfterValidator(_team_name)]


@settings("teams.routes")
class TeamRoute:
    """What routes a handoff to one team: its reason, or the conversation's last intent."""

    intents: TextList = ()
    reasons: Annotated[TextList, AfterValidator(_reasons)] = ()


@settings("teams")
class TeamsConfig:
    """Teams with their own queues, and what routes a handoff to each."""

    # The team of new agents, and of handoffs that no route takes.
    default: TeamName = DEFAULT_TEAM
    # Team name -> the intents and handoff reasons routed to it.
    routes: Annotated[dict[TeamName, TeamRoute], BeforeValidator(_team_keys)] = field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _one_team_each(self) -> Self:
        # Two teams for one intent would make the file's order decide: say so instead.
        for kind in ("intents", "reasons"):
            seen: dict[str, str] = {}
            for team, route in self.routes.items():
                for value in getattr(route, kind):
                    if value in seen and seen[value] != team:
                        raise fail(
                            f"teams.routes: {kind[:-1]} {value!r} is routed to both "
                            f"{seen[value]!r} and {team!r}; keep it in one team",
                            whole=True,
                        )
                    seen[value] = team
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """The default team, then the routed teams."""
        return (self.default, *(t for t in self.routes if t != self.default))

    def unknown_intents(self, labels: Iterable[str]) -> list[str]:
        """The routed intents that are none of `labels` (the live model's), sorted: a
        typo, or an intent of a model not trained yet. They route nothing until a
        model predicts them, so the bot starts and says so (`Bot.warm_up`)."""
        known = set(labels)
        return sorted({i for r in self.routes.values() for i in r.intents} - known)

    def team_for(self, reason: str, intent: str | None) -> str:
        """The team whose queue a handoff for `reason`, in a conversation whose last
        intent is `intent`, waits in."""
        for team, route in self.routes.items():
            if reason in route.reasons:
                return team
        if intent:
            for team, route in self.routes.items():
                if intent in route.intents:
                    return team
        return self.default
