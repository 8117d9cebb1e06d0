"""`deskbot import conversations`: past conversations into the project's store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from deskbot.bot.cli_common import DEFAULT_CONFIG, ConfigOption, fail, load, reported
from deskbot.bot.core.errors import DeskbotError

if TYPE_CHECKING:
    from deskbot.training.imports.reading import FormatChoice

import_app = typer.Typer(help="Import past conversations.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")


@import_app.command("conversations")
def conversations(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Export files (JSON Lines, JSON or CSV).", metavar="FILE", show_default=False
        ),
    ],
    config: ConfigOption = DEFAULT_CONFIG,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="auto, jsonl, csv, chatwoot, zendesk or rasa (auto: told by the first record).",
        ),
    ] = "auto",
    strict: Annotated[
        bool,
        typer.Option(help="Stop at the first bad row; that file stores nothing."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    progress: Annotated[bool, typer.Option(help="A progress bar on long files.")] = True,
) -> None:
    """Import past conversations (chats, tickets, bot logs) into the store, PII redacted.

    They are kept apart from live ones: never shown to customers, never queued, left
    out of the dashboard's figures. Importing a file again adds nothing. A bad row is
    reported as FILE:LINE and its conversation skipped (--strict: the file stops).
    Exit status: 0 all imported, 1 rows skipped or a file refused, 2 stopped.
    """
    from deskbot.bot.server.container import build_store
    from deskbot.training.imports.importer import import_conversations
    from deskbot.training.imports.records import FORMATS

    if fmt not in ("auto", *FORMATS):
        raise fail(f"--format {fmt!r}: use one of auto, {', '.join(FORMATS)}")
    cfg = load(config)
    with reported(DeskbotError):
        store = build_store(cfg)
        report = import_conversations(
            store.engine,
            files,
            cast("FormatChoice", fmt),
            strict=strict,
            progress=progress and not as_json,
        )
    summary = report.summary()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for f in report.files:
            for line in [*([f.refused] if f.refused else []), *f.problems]:
                typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
            if f.bad_rows > len(f.problems):
                typer.echo(f"... and {f.bad_rows - len(f.problems)} more bad rows", err=True)
        typer.echo(
            f"imported {summary['conversations']} conversations ({summary['turns']} turns); "
            f"skipped {summary['skipped']} with bad rows ({summary['bad_rows']} bad rows), "
            f"{summary['duplicates']} duplicates, {summary['ignored']} records that are no "
            f"message; {summary['refused_files']} files refused; {summary['seconds']:.1f} s"
        )
    if not report.ok:
        raise typer.Exit(1)
