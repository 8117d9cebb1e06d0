"""What every `deskbot` command uses: the `--config` option, loading the config, one
clear error line instead of a traceback, and the audit log's row of an action."""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from deskbot.bot.core.config import DEFAULT_CONFIG_NAME, BotConfig, load_config
from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.store.audit import AuditEntry, AuditError, AuditRepository, os_actor
from deskbot.knowledge.errors import KnowledgeError

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="DESKBOT_CONFIG",
        help="The bot's config file (or its folder).",
        show_default=True,
    ),
]
DEFAULT_CONFIG = Path(DEFAULT_CONFIG_NAME)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear error line and return the exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def load(config: Path) -> BotConfig:
    """The config at `config`, or exit with its problem in one line."""
    try:
        return load_config(config)
    except DeskbotError as exc:
        raise fail(str(exc)) from None


@contextlib.contextmanager
def reported(*errors: type[Exception]) -> Iterator[None]:
    """Turn `errors` (default: deskbot's and the knowledge layer's) into one error line."""
    caught = errors or (DeskbotError, KnowledgeError)
    try:
        yield
    except caught as exc:
        raise fail(str(exc)) from None


def cli_actor() -> str:
    """Who runs this command, for the audit log: `os:` and the operating-system user."""
    try:
        return os_actor(getpass.getuser())
    except (KeyError, OSError):  # no name for the uid (a bare container)
        return os_actor(f"uid{os.getuid()}")


def audited(
    store: AuditRepository,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Record this command's `action` (by `cli_actor`), after it was done; a row that
    cannot be written fails the command (exit 2) with what was done."""
    entry = AuditEntry(cli_actor(), action, object_type, object_id, detail=detail)
    try:
        store.record_audit(entry)
    except AuditError as exc:
        raise fail(f"{action} was done but is not in the audit log: {exc}") from None
