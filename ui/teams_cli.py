"""`deskbot teams`: the teams of agents and their queues (list, add, remove, join, leave,
move), added to `deskbot` with the other UI commands (`ui.cli.register`).

A team is created by `add` or, for the teams the config's `teams` section routes to,
when the bot starts; `join` and `leave` make agents members (an agent sees and claims
the handoffs of their teams; admins see all). `move` puts one open handoff in another
team's queue, as an operator or admin decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deskbot.bot.cli import DEFAULT_CONFIG, fail, load
from deskbot.bot.core.errors import DeskbotError

teams_app = typer.Typer(help="Teams of agents, each with its own queue.", no_args_is_help=True)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="DESKBOT_CONFIG", help="The bot's config file."),
]
TeamArgument = Annotated[str, typer.Argument(help="The team's name, e.g. billing.")]
AgentArgument = Annotated[str, typer.Argument(help="The agent's login name.")]


def _store(config: Path) -> tuple[Any, Any]:
    """The config and the store it names (its configured teams created)."""
    from deskbot.bot.server.container import build_store

    cfg = load(config)
    try:
        return cfg, build_store(cfg)
    except DeskbotError as exc:
        raise fail(str(exc)) from None


def _done(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except DeskbotError as exc:
        raise fail(str(exc)) from None


@teams_app.command("list")
def teams_list(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List the teams: name, open handoffs, members (the default team marked)."""
    cfg, store = _store(config)
    open_handoffs: dict[str, int] = {}
    for h in store.handoff_queue(statuses=("queued", "claimed")):
        open_handoffs[h.team] = open_handoffs.get(h.team, 0) + 1
    for name, members in store.team_members().items():
        mark = " (default)" if name == cfg.teams.default else ""
        typer.echo(f"{name}{mark}\t{open_handoffs.get(name, 0)} open\t{','.join(members) or '-'}")


@teams_app.command("add")
def teams_add(name: TeamArgument, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Add an empty team (`join` adds its agents)."""
    _, store = _store(config)
    _done(store.create_team, name)
    typer.echo(f"team {name!r} added; add agents with `deskbot teams join {name} AGENT`")


@teams_app.command("remove")
def teams_remove(name: TeamArgument, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Remove a team and its memberships: not the default team, not one the config
    routes to, not one with open handoffs (`move` them first)."""
    cfg, store = _store(config)
    if name in cfg.teams.routes:
        raise fail(
            f"teams.routes in {config} routes handoffs to {name!r}; remove the route "
            "first, or the next handoff it takes would wait in a queue nobody sees"
        )
    _done(store.delete_team, name)
    typer.echo(f"team {name!r} removed")


@teams_app.command("join")
def teams_join(
    name: TeamArgument, username: AgentArgument, config: ConfigOption = DEFAULT_CONFIG
) -> None:
    """Make an agent a member of a team: they see and claim its handoffs."""
    _, store = _store(config)
    joined = _done(store.join_team, username, name)
    typer.echo(f"{username!r} {'joined' if joined else 'was already in'} team {name!r}")


@teams_app.command("leave")
def teams_leave(
    name: TeamArgument, username: AgentArgument, config: ConfigOption = DEFAULT_CONFIG
) -> None:
    """End an agent's membership of a team (their console stops showing its queue at
    its next refresh)."""
    _, store = _store(config)
    if not store.leave_team(username, name):
        raise fail(f"{username!r} is not in team {name!r} (see `deskbot teams list`)")
    typer.echo(f"{username!r} left team {name!r}")


@teams_app.command("move")
def teams_move(
    handoff: Annotated[int, typer.Argument(help="The handoff's number, as the console shows.")],
    name: TeamArgument,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Put an open handoff in another team's queue (a claimed one goes back unclaimed)."""
    _, store = _store(config)
    moved = _done(store.move_handoff_to_team, handoff, name)
    typer.echo(f"handoff #{moved.id} now waits in team {name!r}")
