"""UI commands, added to `deskbot` as a plug-in: `serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deskbot.bot.cli import DEFAULT_CONFIG, fail, load
from deskbot.bot.errors import DeskbotError
from deskbot.knowledge.errors import KnowledgeError


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="DESKBOT_CONFIG")
    ] = DEFAULT_CONFIG,
    host: Annotated[str | None, typer.Option(help="Default: server.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: server.port.")] = None,
) -> None:
    """Serve the customer chat (at /) and the HTTP API (at /api, docs at /docs)."""
    import uvicorn

    from deskbot.ui.server import create_app

    cfg = load(config)
    try:
        app = create_app(cfg)
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    h, p = host or cfg.server.host, port or cfg.server.port
    typer.echo(f"{cfg.name}: chat on http://{h}:{p}/  API docs on http://{h}:{p}/docs")
    uvicorn.run(app, host=h, port=p, log_level="warning")
