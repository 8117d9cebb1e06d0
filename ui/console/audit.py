"""The console's Audit tab (#22): the audit log for admins, filtered by agent, action and
dates, and exported as CSV or JSON Lines.

The tab is shown to admins only (`AuditHandlers.visibility` on load); every handler
checks the role again, since a hidden tab's events can still be called: an agent gets
"only an admin may read the audit log" and nothing else. An export is recorded in the
log (`export`) before its file is written. Nothing in the log is a customer's text,
and what the table shows passes through Gradio's Dataframe as plain text cells.

Example:
    >>> audit = lay_out_audit()   # inside the open gr.Tabs     # doctest: +SKIP
    >>> wire_audit(console_handlers, console, audit)            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import gradio as gr

from deskbot.bot.store.audit import (
    ACTIONS,
    EXPORT,
    AuditEntry,
    AuditError,
    audit_csv,
    audit_jsonl,
)
from deskbot.bot.store.models import Agent, AuditEvent
from deskbot.ui.console.components import read_only_table
from deskbot.ui.console.find import ANY, FindError, typed_day
from deskbot.ui.console.handlers import ConsoleHandlers
from deskbot.ui.render import md_text

__all__ = ["AuditFilter", "AuditHandlers", "AuditTab", "lay_out_audit", "wire_audit"]

TAB_ID = "audit"
SHOWN_ROWS = 500
HEADERS = ["time (UTC)", "actor", "action", "object", "conversation", "address", "detail"]
REFUSED = "Only an admin may read the audit log."
EXPORT_KEEP_S = 600.0

Component = Any
Update = Any


@dataclass
class AuditTab:
    """The Audit tab's components."""

    tab: Component
    agent: Component
    action: Component
    since: Component
    until: Component
    show: Component
    csv: Component
    jsonl: Component
    notice: Component
    table: Component
    download: Component

    @property
    def filters(self) -> list[Component]:
        return [self.agent, self.action, self.since, self.until]


@dataclass(frozen=True)
class AuditFilter:
    """What the admin chose: an actor, an action, and days (both inclusive)."""

    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def typed(
        cls, agent: str | None, action: str | None, since: str | None, until: str | None
    ) -> AuditFilter:
        """From the tab's fields; FindError says what to type instead."""
        first = typed_day(since, "From")
        last = typed_day(until, "To")
        if first is not None and last is not None and first > last:
            raise FindError("'From' must not be after 'To'.")
        chosen_action = action if action and action != ANY else None
        if chosen_action is not None and chosen_action not in ACTIONS:
            raise FindError("Pick an action from the list.")
        return cls(
            actor=agent if agent and agent != ANY else None,
            action=chosen_action,
            since=datetime.combine(first, datetime.min.time(), UTC) if first else None,
            until=datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
            if last
            else None,
        )

    def words(self) -> str:
        """The filter as the export's audit detail (no customer data: names and days)."""
        return (
            f"agent={self.actor or '*'} action={self.action or '*'} "
            f"since={self.since.date() if self.since else '*'} "
            f"until={self.until.date() if self.until else '*'}"
        )


def table_rows(events: list[AuditEvent]) -> list[list[str]]:
    """The table: time, actor, action, object (type:id), conversation, address, detail."""
    rows = []
    for e in events:
        at = e.at if e.at.tzinfo is not None else e.at.replace(tzinfo=UTC)
        obj = f"{e.object_type}:{e.object_id or '-'}" if e.object_type else ""
        rows.append(
            [
                at.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor or "(unknown account)",
                e.action,
                obj,
                e.conversation_id or "",
                e.address or "",
                e.detail or "",
            ]
        )
    return rows


class AuditHandlers:
    """The tab's handlers, over the console's (`me`, `address`, the store)."""

    def __init__(self, h: ConsoleHandlers) -> None:
        self.h = h
        self.store = h.bot.store

    def admin(self, request: gr.Request) -> Agent:
        """The admin of this request's session; an agent is refused."""
        agent = self.h.me(request)
        if agent.role != "admin":
            raise gr.Error(REFUSED)
        return agent

    def visibility(self, request: gr.Request) -> Update:
        """The tab, shown to admins only."""
        return gr.update(visible=self.h.me(request).role == "admin")

    def choices(self, request: gr.Request) -> Update:
        """The actors the log names, to filter by."""
        self.admin(request)
        actors = [(a, a) for a in self.store.audit_actors()]
        return gr.update(choices=[("Anyone", ANY), *actors])

    def show(
        self,
        agent: str | None,
        action: str | None,
        since: str | None,
        until: str | None,
        request: gr.Request,
    ) -> tuple[Update, Update]:
        """The rows that match, newest first (at most `SHOWN_ROWS`): notice, table."""
        self.admin(request)
        try:
            where = AuditFilter.typed(agent, action, since, until)
        except FindError as exc:
            return f"**Not shown:** {md_text(str(exc), line_start=False)}", gr.skip()
        events = self._events(where, limit=SHOWN_ROWS + 1)
        more = len(events) > SHOWN_ROWS
        events = events[:SHOWN_ROWS]
        notice = f"**{len(events)} events** (newest first)"
        if more:
            notice += f"; only the newest {SHOWN_ROWS}: narrow the filters or export them all"
        return notice + ".", gr.update(value=table_rows(events))

    def export(self, fmt: str) -> Any:
        """The handler of "Export CSV" (`fmt` "csv") or "Export JSONL" ("jsonl")."""

        def export(
            agent: str | None,
            action: str | None,
            since: str | None,
            until: str | None,
            request: gr.Request,
        ) -> tuple[Update, Update]:
            admin = self.admin(request)
            try:
                where = AuditFilter.typed(agent, action, since, until)
            except FindError as exc:
                return f"**Not exported:** {md_text(str(exc), line_start=False)}", gr.skip()
            events = self._events(where, limit=None, newest_first=False)
            entry = AuditEntry(
                admin.username,
                EXPORT,
                "audit_log",
                None,
                None,
                self.h.address(request),
                f"format={fmt} {where.words()} rows={len(events)}",
            )
            try:
                self.store.record_audit(entry)
            except AuditError as exc:
                return f"**Not exported:** {md_text(str(exc), line_start=False)}", gr.skip()
            text = audit_csv(events) if fmt == "csv" else audit_jsonl(events)
            return f"**{len(events)} events exported.**", write_export(text, fmt, self.export_dir)

        return export

    @cached_property
    def export_dir(self) -> Path:
        """This process's folder of exports (mode 700, a name no one can guess)."""
        return Path(tempfile.mkdtemp(prefix="deskbot-audit-"))

    def _events(
        self, where: AuditFilter, *, limit: int | None, newest_first: bool = True
    ) -> list[AuditEvent]:
        return self.store.audit_events(
            actor=where.actor,
            action=where.action,
            since=where.since,
            until=where.until,
            limit=limit,
            newest_first=newest_first,
        )


def write_export(text: str, fmt: str, folder: Path, *, now: float | None = None) -> str:
    """Write an export into `folder` (this process's own, under the system's temporary
    folder, where Gradio takes files from); returns its path. Gradio copies it into its
    cache when the handler returns, so exports older than `EXPORT_KEEP_S` are deleted."""
    cutoff = (now or time.time()) - EXPORT_KEEP_S
    for old in folder.glob("audit-*"):
        with contextlib.suppress(OSError):  # deleted meanwhile by another thread
            if old.stat().st_mtime < cutoff:
                old.unlink()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    fd, path = tempfile.mkstemp(prefix=f"audit-{stamp}-", suffix=f".{fmt}", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def lay_out_audit() -> AuditTab:
    """The tab, inside the open `gr.Tabs`; hidden until the page knows an admin is in."""
    with gr.Tab("Audit", id=TAB_ID, visible=False) as tab:
        gr.Markdown(
            "Who did what, and when: logins, opened conversations, replies, labels, "
            "exports, erasures, model changes. No message text is kept here."
        )
        with gr.Row(equal_height=True):
            agent = gr.Dropdown(
                label="Agent", choices=[("Anyone", ANY)], value=ANY, elem_id="audit-agent"
            )
            action = gr.Dropdown(
                label="Action",
                choices=[("Any action", ANY), *[(a.replace("_", " "), a) for a in ACTIONS]],
                value=ANY,
                elem_id="audit-action",
            )
            since = gr.Textbox(label="From (YYYY-MM-DD)", elem_id="audit-since")
            until = gr.Textbox(label="To (YYYY-MM-DD)", elem_id="audit-until")
        with gr.Row():
            show = gr.Button("Show", variant="primary", elem_id="audit-show")
            csv = gr.Button("Export CSV", elem_id="audit-csv")
            jsonl = gr.Button("Export JSONL", elem_id="audit-jsonl")
        notice = gr.Markdown("", elem_id="audit-notice")
        download = gr.File(label="Export", interactive=False, elem_id="audit-download")
        table = read_only_table(HEADERS, label="Audit log", elem_id="audit-table", max_height=480)
    return AuditTab(tab, agent, action, since, until, show, csv, jsonl, notice, table, download)


def wire_audit(
    h: ConsoleHandlers, console: Component, audit: AuditTab, *, hide: Sequence[Component] = ()
) -> None:
    """Connect the tab's events (none of them a `.change`: see `ui.console.page._on`);
    `hide` are components that do not belong under this tab (the label form)."""
    a = AuditHandlers(h)
    private: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None}
    console.load(a.visibility, None, [audit.tab], **private)
    for component in hide:
        audit.tab.select(lambda: gr.update(visible=False), None, [component], **private)
    audit.tab.select(a.choices, None, [audit.agent], **private)
    for trigger in (audit.tab.select, audit.show.click, audit.since.submit, audit.until.submit):
        trigger(a.show, audit.filters, [audit.notice, audit.table], **private)
    audit.csv.click(a.export("csv"), audit.filters, [audit.notice, audit.download], **private)
    audit.jsonl.click(a.export("jsonl"), audit.filters, [audit.notice, audit.download], **private)
