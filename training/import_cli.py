"""`deskbot import conversations`: past conversations into the project's store."""

from __future__ import annotations

import typer

import_app = typer.Typer(help="Import past conversations.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
