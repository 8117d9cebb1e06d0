"""UI commands, added to `deskbot` as a plug-in: `serve`, `agents` (add, list,
sessions, revoke, disable, enable, passwd, unlock) and `teams` (`ui.teams_cli`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from deskbot.bot.cli import DEFAULT_CONFIG, fail, load
from deskbot.bot.cli_common import audited
from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.store.audit import (
    AGENT_ADDED,
    AGENT_DISABLED,
    AGENT_ENABLED,
    AGENT_UNLOCKED,
    PASSWORD_CHANGED,
    SESSIONS_REVOKED,
)
from deskbot.knowledge.errors import KnowledgeError
from deskbot.ui.teams_cli import teams_app

agents_app = typer.Typer(help="Agents who may use the agent console.", no_args_is_help=True)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="DESKBOT_CONFIG", help="The bot's config file."),
]
UsernameArg = Annotated[str, typer.Argument(help="The agent's login name.")]
PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(agents_app, name="agents")
    app.add_typer(teams_app, name="teams")


def serve(
    config: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[str | None, typer.Option(help="Default: server.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: server.port.")] = None,
) -> None:
    """Serve the customer chat (/), the agent console (/agent) and the HTTP API (/api)."""
    import uvicorn

    from deskbot.bot.server.api import close_api
    from deskbot.ui.server import create_app, server_config

    cfg = load(config)
    try:
        app = create_app(cfg)
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    h, p = host or cfg.server.host, port or cfg.server.port
    typer.echo(
        f"{cfg.name}: chat on http://{h}:{p}/  agent console on http://{h}:{p}/agent/  "
        f"API docs on http://{h}:{p}/docs"
    )
    try:
        uvicorn.Server(server_config(app, h, p)).run()
    finally:
        close_api(app)


@agents_app.command("add")
def agents_add(
    username: Annotated[str, typer.Argument(help="The login name, e.g. alice.")],
    config: ConfigOption = DEFAULT_CONFIG,
    name: Annotated[
        str | None, typer.Option("--name", help="Shown to customers. Default: the username.")
    ] = None,
    role: Annotated[str, typer.Option(help="agent or admin.")] = "agent",
    team: Annotated[
        list[str] | None,
        typer.Option("--team", help="A team to join (repeatable). Default: teams.default."),
    ] = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Add an agent; the password is asked for (or read from stdin) and stored as an argon2 hash."""
    from deskbot.bot.server.container import build_store
    from deskbot.ui.accounts.auth import create_agent

    cfg = load(config)
    password = _read_password(password_stdin)
    try:
        store = build_store(cfg)
        agent = create_agent(
            store, username, password, display_name=name, role=role, teams=team or None
        )
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    audited(store, AGENT_ADDED, object_type="agent", object_id=agent.username, detail=agent.role)
    typer.echo(f"agent {agent.username!r} ({agent.role}) added; log in at /agent/")


@agents_app.command("list")
def agents_list(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List the console's agents (username, display name, role)."""
    from sqlmodel import select

    from deskbot.bot.store import Agent

    store = _open_store(load(config))
    with store.session() as s:
        for agent in s.exec(select(Agent).order_by(Agent.username)).all():
            typer.echo(f"{agent.username}\t{agent.display_name}\t{agent.role}")


def _open_store(cfg: Any) -> Any:
    """The store of `cfg`, failing with the error's message when it cannot be opened."""
    from deskbot.bot.server.container import build_store

    try:
        return build_store(cfg)
    except DeskbotError as exc:
        raise fail(str(exc)) from None


def _read_password(from_stdin: bool) -> str:
    """The first line of standard input, or a password typed twice at a hidden prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _agent_store(config: Path, username: str) -> Any:
    """The store of `config`, failing with a message when `username` is not an agent."""
    store = _open_store(load(config))
    if store.get_agent(username) is None:
        raise fail(f"no agent {username!r} (see `deskbot agents list`)")
    return store


@agents_app.command("sessions")
def agents_sessions(
    username: UsernameArg,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """List an agent's console sessions: started, last used, expires, address."""
    store = _agent_store(config, username)
    for row in store.agent_sessions(username):
        typer.echo(
            f"{row.id[:12]}\t{row.created_at:%Y-%m-%d %H:%M:%S}\t"
            f"{row.last_seen_at:%Y-%m-%d %H:%M:%S}\t{row.expires_at:%Y-%m-%d %H:%M:%S}\t"
            f"{row.address or '-'}"
        )


@agents_app.command("revoke")
def agents_revoke(
    username: UsernameArg,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """End all of an agent's console sessions now, on every server."""
    store = _agent_store(config, username)
    ended = store.end_agent_sessions(username)
    audited(store, SESSIONS_REVOKED, object_type="agent", object_id=username, detail=f"{ended}")
    typer.echo(f"{ended} session(s) of {username!r} ended")


@agents_app.command("disable")
def agents_disable(
    username: UsernameArg,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Stop an agent from logging in, and end their sessions now (`enable` undoes it)."""
    store = _agent_store(config, username)
    store.update_agent(username, disabled=True)
    ended = store.end_agent_sessions(username)
    audited(store, AGENT_DISABLED, object_type="agent", object_id=username)
    typer.echo(f"agent {username!r} disabled; {ended} session(s) ended")


@agents_app.command("enable")
def agents_enable(
    username: UsernameArg,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Let a disabled agent log in again."""
    store = _agent_store(config, username)
    store.update_agent(username, disabled=False)
    audited(store, AGENT_ENABLED, object_type="agent", object_id=username)
    typer.echo(f"agent {username!r} enabled")


@agents_app.command("passwd")
def agents_passwd(
    username: UsernameArg,
    config: ConfigOption = DEFAULT_CONFIG,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Set an agent's password; their sessions end."""
    from deskbot.ui.accounts.auth import set_password

    store = _agent_store(config, username)
    password = _read_password(password_stdin)
    try:
        ended = set_password(store, username, password)
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    audited(store, PASSWORD_CHANGED, object_type="agent", object_id=username)
    typer.echo(f"password of {username!r} changed; {ended} session(s) ended")


@agents_app.command("unlock")
def agents_unlock(
    username: Annotated[str, typer.Argument(help="The login name (need not exist).")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Clear an account's login back-off, lock and try counts, from every address."""
    from deskbot.bot.server.container import build_store
    from deskbot.ui.accounts.throttle import LoginThrottle

    cfg = load(config)
    throttle = LoginThrottle(cfg.limits)
    try:
        removed = throttle.unlock(username)
    finally:
        throttle.close()
    if not throttle.shared:
        raise fail(
            "without limits.rate_limit_redis_url each server counts login tries in its "
            "own memory, which this command cannot reach: restart the servers to unlock"
        )
    try:
        store = build_store(cfg)
    except DeskbotError as exc:
        raise fail(f"unlocked, but not in the audit log: {exc}") from None
    # The name need not be an agent's: unlocking a guessed name is recorded too.
    audited(store, AGENT_UNLOCKED, object_type="agent", object_id=username[:128])
    typer.echo(f"{username!r} unlocked ({removed} counter(s) cleared)")
