"""`deskbot discover intents`: candidate intents from unlabelled messages."""

from __future__ import annotations

import typer

discover_app = typer.Typer(help="Discover intents in unlabelled messages.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(discover_app, name="discover")
