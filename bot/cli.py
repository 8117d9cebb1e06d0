"""The `deskbot` command line.

`bot` owns the root command. The `training` and `ui` layers add their commands as
plug-ins (entry-point group `deskbot.commands`), since `bot` may not import them;
third-party packages can add commands the same way. `init` is in `init_cli`, the
knowledge index's commands are in `knowledge_cli`; what every command uses (`fail`, `load`, the `--config`
option) is in `cli_common`, and importable from here as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from deskbot.bot import __version__
from deskbot.bot.audit_cli import audit_app
from deskbot.bot.cli_common import DEFAULT_CONFIG, ConfigOption, cli_actor, fail, load, reported
from deskbot.bot.core.config import ACTIONS_TOKEN_ENV, BotConfig
from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.core.types import Reply
from deskbot.bot.init_cli import init
from deskbot.bot.knowledge_cli import ingest, search
from deskbot.bot.testing_cli import test_app
from deskbot.knowledge.errors import KnowledgeError

__all__ = ["DEFAULT_CONFIG", "ConfigOption", "app", "fail", "load", "load_plugins", "main"]

app = typer.Typer(
    name="deskbot",
    help="deskbot: customer-service chatbots that learn from their agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The conversation database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(test_app, name="test")
app.add_typer(audit_app, name="audit")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "transformers", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    setup_logging(verbose)


@app.command()
def version() -> None:
    """Print deskbot's version."""
    typer.echo(__version__)


app.command()(init)
app.command()(ingest)
app.command()(search)


@app.command()
def chat(
    config: ConfigOption = DEFAULT_CONFIG,
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="Send this message and exit (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per reply.")] = False,
) -> None:
    """Talk to the bot in the terminal (every turn is stored like a web conversation)."""
    from deskbot.bot.server.container import build_bot

    cfg = load(config)
    with reported():
        bot = build_bot(cfg)
        bot.warm_up()
    conv, _token = bot.store.create_conversation(channel="cli")
    interactive = not message
    if interactive:
        typer.echo(f"{cfg.name} (conversation {conv.id}); Ctrl-D to quit")
    lines = message if message else _stdin_lines()
    for line in lines:
        text = line.strip()
        if not text:
            continue
        _print_reply(conv.id, bot.pipeline.handle(conv.id, text), as_json)


def _print_reply(conversation_id: str, reply: Reply, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "conversation": conversation_id,
                    "text": reply.text,
                    "kind": reply.kind,
                    "intent": reply.intent.intent if reply.intent else None,
                    "confidence": reply.intent.confidence if reply.intent else None,
                    "citations": list(reply.citations),
                }
            )
        )
        return
    who = reply.intent.intent if reply.intent else "-"
    typer.echo(f"bot> {reply.text}")
    typer.secho(
        f"     ({reply.kind}; intent {who}; sources {', '.join(reply.citations) or '-'})",
        dim=True,
    )


def _stdin_lines() -> Any:
    while True:
        try:
            if sys.stdin.isatty():
                yield input("you> ")
            else:
                line = sys.stdin.readline()
                if not line:
                    return
                yield line
        except EOFError:
            return


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Apply the database migrations (run on every start as well)."""
    from deskbot.bot.server.container import build_store

    cfg = load(config)
    with reported(DeskbotError):
        build_store(cfg)
    typer.echo("database is at the newest schema")


@db_app.command("prune")
def db_prune(
    config: ConfigOption = DEFAULT_CONFIG,
    days: Annotated[
        float | None,
        typer.Option(min=0.001, help="Retention period in days (default: privacy.retention_days)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Delete conversations idle for longer than the retention period, with their turns,
    labels, handoffs and dialogue state (run it daily, e.g. before `deskbot retrain`)."""
    from datetime import timedelta

    from deskbot.bot.privacy.erasure import Eraser
    from deskbot.bot.server.container import build_store

    cfg = load(config)
    with reported(DeskbotError):
        eraser = Eraser(build_store(cfg), cfg, hooks=[])
        report = eraser.prune(older_than=timedelta(days=days) if days is not None else None)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    period = days if days is not None else cfg.privacy.retention_days
    typer.echo(
        f"pruned {report.conversations} conversations idle for more than {period:g} days "
        f"({report.rows.get('turns', 0)} turns, {report.rows.get('agent_labels', 0)} labels)"
    )


@app.command()
def forget(
    customer: Annotated[
        str | None,
        typer.Option("--customer", help="The customer id (as sent with POST /api/sessions)."),
    ] = None,
    conversation: Annotated[
        list[str] | None,
        typer.Option(
            "--conversation", help="A conversation id (repeatable), e.g. anonymous chats."
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Erase a customer's data everywhere (GDPR): conversations, turns, feedback, handoffs,
    agents' labels, dialogue state, and the training rows derived from them."""
    from deskbot.bot.privacy.erasure import Eraser
    from deskbot.bot.server.container import build_store

    if customer is None and not conversation:
        raise fail("name the customer: --customer ID (or --conversation ID)")
    cfg = load(config)
    with reported(DeskbotError):
        eraser = Eraser(build_store(cfg), cfg)
        scope = eraser.scope(customer_id=customer, conversation_ids=conversation or ())
        if scope.empty:
            raise fail("nothing stored for that customer or conversation", code=1)
        if not yes:
            typer.confirm(
                f"erase {len(scope.conversation_ids)} conversations ({len(scope.turn_ids)} "
                "messages) and everything derived from them? This cannot be undone",
                abort=True,
            )
        report = eraser.forget(
            customer_id=customer,
            conversation_ids=conversation or (),
            requested_by="cli",
            actor=cli_actor(),
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    rows = ", ".join(f"{n} {name}" for name, n in sorted(report.rows.items()))
    derived = ", ".join(f"{n} {name}" for name, n in sorted(report.derived.items()))
    typer.echo(f"erased {rows}; derived: {derived or 'none'}")


actions_app = typer.Typer(
    help="The rasa-sdk action server of custom actions.", no_args_is_help=True
)
app.add_typer(actions_app, name="actions")


@actions_app.command("serve")
def actions_serve(
    config: ConfigOption = DEFAULT_CONFIG,
    port: Annotated[int | None, typer.Option(help="Default: the port of actions.url.")] = None,
    host: Annotated[str | None, typer.Option(help="Default: the host of actions.url.")] = None,
) -> None:
    """Run the rasa-sdk action server with the project's actions module (actions.module);
    with DESKBOT_ACTIONS_TOKEN set it refuses calls without that token."""
    from urllib.parse import urlsplit

    cfg = load(config)
    url = urlsplit(cfg.actions.url or "http://127.0.0.1:5055/webhook")
    listen_port = port or url.port or 5055
    listen_host = host or url.hostname or "127.0.0.1"
    cmd = [
        sys.executable,
        "-m",
        "deskbot.bot.actions.server",  # rasa-sdk's server with the token check
        "--actions",
        cfg.actions.module,
        "--port",
        str(listen_port),
    ]
    typer.echo(f"action server for {cfg.name} on http://{listen_host}:{listen_port}/webhook")
    code, stopped = _supervise(cmd, cfg.root, _action_server_env(cfg, listen_host))
    if stopped:
        raise typer.Exit(0)
    if code:
        raise fail(f"the action server exited with status {code}", code)


def _action_server_env(cfg: BotConfig, host: str) -> dict[str, str]:
    from deskbot.bot.actions.server import PARENT_ENV

    env = {**os.environ, "SANIC_HOST": host}
    if cfg.actions.token:
        env[ACTIONS_TOKEN_ENV] = cfg.actions.token
    # The project folder first on the path, so `--actions actions` finds actions/actions.py.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(cfg.root), os.environ.get("PYTHONPATH", "")) if p
    )
    # If this command is SIGKILLed, the server stops itself (`exit_with_parent`).
    env[PARENT_ENV] = str(os.getpid())
    return env


def _supervise(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, bool]:
    """Run `cmd` until it exits or this command is stopped: its exit status, and
    whether a signal stopped it.

    The server gets a process group of its own (Sanic may run several processes), and
    a signal to this command stops that whole group, with SIGKILL after a grace period:
    nothing is left running, or holding the port, when `make demo` or a supervisor
    stops the command.
    """
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True)
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        # Only signal here: the main thread is inside proc.wait(), which holds the lock a
        # second wait in this handler would need (it sat out both 5 s timeouts, so every
        # stop took 10 s). The main thread's wait returns when the group is gone.
        if stopping.is_set():
            return
        stopping.set()
        signal_group(proc.pid, signal.SIGTERM)
        escalate = threading.Timer(STOP_GRACE_S, signal_group, (proc.pid, signal.SIGKILL))
        escalate.daemon = True
        escalate.start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    code = proc.wait()
    return code, stopping.is_set()


STOP_GRACE_S = 5.0


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


_plugins_loaded = False


def load_plugins() -> typer.Typer:
    """Add the installed plug-ins' commands to `app` (once) and return it."""
    global _plugins_loaded
    if _plugins_loaded:
        return app
    _plugins_loaded = True
    for ep in metadata.entry_points(group="deskbot.commands"):
        try:
            register = ep.load()
        except ImportError as exc:  # a broken plug-in must not take the whole CLI down
            logging.getLogger(__name__).warning("command plug-in %s not loaded: %s", ep.name, exc)
            continue
        register(app)
    return app


def main() -> None:
    load_plugins()
    try:
        app()
    except (DeskbotError, KnowledgeError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
