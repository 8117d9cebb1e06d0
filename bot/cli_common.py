"""What every `deskbot` command uses: the `--config` option, loading the config, and
one clear error line instead of a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from deskbot.bot.core.config import DEFAULT_CONFIG_NAME, BotConfig, load_config
from deskbot.bot.core.errors import DeskbotError
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
