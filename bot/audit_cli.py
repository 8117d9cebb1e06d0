"""`deskbot audit export|prune`: the audit log from the command line (#22).

An export is an action like any other: it is recorded (`export`, by `os:USER`) before
anything is written, so a copy of the log taken out of the database shows in the log.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from deskbot.bot.cli_common import DEFAULT_CONFIG, ConfigOption, cli_actor, fail, load
from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.store.audit import (
    ACTIONS,
    EXPORT,
    AuditEntry,
    AuditError,
    audit_csv,
    audit_jsonl,
)

__all__ = ["audit_app"]

audit_app = typer.Typer(
    help="The audit log: who did what with customers' data, and when.", no_args_is_help=True
)


def _time(value: datetime | None) -> datetime | None:
    """A time typed on the command line, read as UTC when it names no zone."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@audit_app.command("export")
def audit_export(
    config: ConfigOption = DEFAULT_CONFIG,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    agent: Annotated[
        str | None, typer.Option("--agent", help="Only this actor (a username, os:NAME).")
    ] = None,
    action: Annotated[str | None, typer.Option("--action", help="Only this action.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="From this time on (UTC, e.g. 2026-12-01).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Before this time (UTC).")] = None,
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: standard output).")
    ] = None,
) -> None:
    """Write the audit log's rows (oldest first) as CSV or JSON Lines."""
    from deskbot.bot.server.container import build_store

    if fmt not in ("csv", "jsonl"):
        raise fail(f"--format is csv or jsonl, not {fmt!r}")
    if action is not None and action not in ACTIONS:
        raise fail(f"--action is one of {', '.join(ACTIONS)}")
    cfg = load(config)
    try:
        store = build_store(cfg)
        events = store.audit_events(
            actor=agent,
            action=action,
            since=_time(since),
            until=_time(until),
            limit=None,
            newest_first=False,
        )
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    filters = f"format={fmt} agent={agent or '*'} action={action or '*'} rows={len(events)}"
    try:
        # Before the rows leave the database: an export the log cannot show is not done.
        store.record_audit(AuditEntry(cli_actor(), EXPORT, "audit_log", detail=filters))
    except AuditError as exc:
        raise fail(f"nothing exported: {exc}") from None
    text = audit_csv(events) if fmt == "csv" else audit_jsonl(events)
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(f"{len(events)} rows written to {out}", err=True)


@audit_app.command("prune")
def audit_prune(
    config: ConfigOption = DEFAULT_CONFIG,
    days: Annotated[
        float | None,
        typer.Option(
            min=0.001, help="Keep this many days (default: privacy.audit_retention_days)."
        ),
    ] = None,
) -> None:
    """Delete audit rows older than the retention period (the prune itself is recorded)."""
    from deskbot.bot.server.container import build_store

    cfg = load(config)
    period = days if days is not None else cfg.privacy.audit_retention_days
    if period is None:
        raise fail("no audit retention period: set privacy.audit_retention_days or pass --days")
    try:
        n = build_store(cfg).prune_audit(period, actor=cli_actor())
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"pruned {n} audit rows older than {period:g} days")
