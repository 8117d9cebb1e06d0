"""The console's Find tab: search every conversation (words in its messages, status,
agent, intent, dates; resolved and closed ones included), results as a table, and the
one opened shown read-only: its transcript and the customer panel, no reply box.

The queries are the store's (`deskbot.bot.store.search`); what a customer typed is
shown through `agent_transcript`/`md_text` or in a table's text cells. Every handler
takes the agent from the session cookie first (`ConsoleHandlers.me`).

Example:
    >>> find = lay_out_find()   # inside the open gr.Tabs  # doctest: +SKIP
    >>> wire_find(console_handlers, find, tabs, queue_panel, hide=[label_form])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import gradio as gr

from deskbot.bot.store.models import Agent
from deskbot.bot.store.search import (
    MAX_TEXT_CHARS,
    ConversationFilter,
    ConversationSummary,
    SearchPage,
)
from deskbot.ui.console.components import read_only_table
from deskbot.ui.console.customer import (
    CustomerPanel,
    lay_out_customer,
    panel_values,
    picked_conversation,
    short_id,
    status_words,
    transcript_view,
    when,
)
from deskbot.ui.console.handlers import ConsoleHandlers
from deskbot.ui.console.teams import refusal, teams_of
from deskbot.ui.render import agent_transcript, md_text

__all__ = ["FIND_CSS", "FindTab", "lay_out_find", "wire_find"]

TAB_ID = "find"
PAGE_SIZE = 25
ANY = "any"
RESULT_HEADERS = ["conversation", "last active", "status", "agent", "intent", "customer", "message"]
STATUSES = [
    ("Any status", ANY),
    ("With the bot", "open"),
    ("Waiting for a person", "queued"),
    ("With a person", "claimed"),
    ("Resolved by a person", "resolved"),
    ("Closed", "closed"),
]
NOTHING_OPEN = "*Search, then click a row to read its conversation here (read-only).*"
# The read-only transcript's "Clear" would only empty the browser's copy; hide it.
FIND_CSS = '#find-transcript button[aria-label="Clear"] { display: none !important; }\n'

# A Gradio component (gradio is not type-checked here).
Component = Any
Update = Any


@dataclass
class FindTab:
    """The Find tab: the filters, the results and the conversation opened from them."""

    tab: Component
    text: Component
    status: Component
    agent: Component
    intent: Component
    since: Component
    until: Component
    search: Component
    found: Component  # how many were found, or why nothing was searched
    results: Component
    earlier: Component
    later: Component
    title: Component
    transcript: Component
    customer: CustomerPanel
    query: Component  # the last search's filter and offset (per page)
    result_ids: Component  # the conversations of the rows shown

    @property
    def filters(self) -> list[Component]:
        return [self.text, self.status, self.agent, self.intent, self.since, self.until]

    @property
    def viewer(self) -> list[Component]:
        """What opening a conversation fills in."""
        c = self.customer
        return [self.title, self.transcript, c.summary, c.past, c.past_ids]

    @property
    def listing(self) -> list[Component]:
        """What a search fills in."""
        return [self.found, self.results, self.result_ids, self.query, self.earlier, self.later]


def _filters() -> list[Component]:
    with gr.Row(equal_height=True):
        text = gr.Textbox(
            label="Words in the messages",
            placeholder="e.g. card never arrived",
            max_length=MAX_TEXT_CHARS,
            scale=3,
            elem_id="find-text",
        )
        status = gr.Dropdown(
            label="Status", choices=STATUSES, value=ANY, scale=1, elem_id="find-status"
        )
        agent = gr.Dropdown(
            label="Agent", choices=[("Any agent", ANY)], value=ANY, scale=1, elem_id="find-agent"
        )
        intent = gr.Dropdown(
            label="Intent",
            choices=[("Any intent", ANY)],
            value=ANY,
            filterable=True,
            scale=1,
            elem_id="find-intent",
        )
    with gr.Row(equal_height=True):
        since = gr.Textbox(label="Active from (YYYY-MM-DD)", scale=1, elem_id="find-since")
        until = gr.Textbox(label="Started up to (YYYY-MM-DD)", scale=1, elem_id="find-until")
        search = gr.Button("Search", variant="primary", scale=1, elem_id="find-search")
    return [text, status, agent, intent, since, until, search]


def lay_out_find() -> FindTab:
    """The tab, inside the open `gr.Tabs`."""
    with gr.Tab("Find", id=TAB_ID) as tab:
        text, status, agent, intent, since, until, search = _filters()
        found = gr.Markdown("", elem_id="find-found")
        results = read_only_table(
            RESULT_HEADERS,
            label="Conversations found (click one to read it)",
            elem_id="find-results",
            max_height=300,
            column_widths=["10%", "15%", "14%", "9%", "12%", "12%", "28%"],
        )
        with gr.Row():
            earlier = gr.Button("Newer results", size="sm", interactive=False)
            later = gr.Button("Older results", size="sm", interactive=False)
        with gr.Row():
            with gr.Column(scale=3, min_width=420):
                title = gr.Markdown(NOTHING_OPEN, elem_id="find-title")
                transcript = transcript_view(
                    "Transcript (read-only)", height=420, elem_id="find-transcript"
                )
            customer = lay_out_customer("find-customer")
    return FindTab(
        tab,
        text,
        status,
        agent,
        intent,
        since,
        until,
        search,
        found,
        results,
        earlier,
        later,
        title,
        transcript,
        customer,
        gr.State(None),
        gr.State([]),
    )


class FindError(ValueError):
    """A search that cannot run as asked; the message says what to type instead."""


def typed_day(text: str | None, field: str) -> date | None:
    """The date typed in `field` (YYYY-MM-DD), None if blank; FindError names the field."""
    value = (text or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FindError(f"'{field}' must be a date like 2026-12-07.") from None


def conversation_filter(
    text: str | None,
    status: str | None,
    agent: str | None,
    intent: str | None,
    since: str | None,
    until: str | None,
) -> ConversationFilter:
    """The store's filter from what the agent chose (`ANY` or blank: no condition)."""
    first = typed_day(since, "Active from")
    last = typed_day(until, "Started up to")
    if first is not None and last is not None and first > last:
        raise FindError("'Active from' must not be after 'Started up to'.")

    def chosen(value: str | None) -> str | None:
        value = (value or "").strip()
        return value if value and value != ANY else None

    try:
        return ConversationFilter(
            text=chosen(text),
            status=chosen(status),  # type: ignore[arg-type]  # checked by the filter
            agent=chosen(agent),
            intent=chosen(intent),
            since=datetime.combine(first, datetime.min.time(), UTC) if first else None,
            until=datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
            if last
            else None,
        )
    except ValueError as exc:
        raise FindError(str(exc)) from None


def result_rows(page: SearchPage) -> list[list[str]]:
    """The results table: id, last active, status, agent, intent, customer, message."""
    return [_row(s) for s in page.results]


def _row(s: ConversationSummary) -> list[str]:
    conv = s.conversation
    customer = conv.customer_name or conv.customer_id or "anonymous"
    return [
        short_id(conv.id),
        when(conv.updated_at),
        status_words(s),
        s.agent or "",
        s.intent or "",
        customer,
        (s.match or s.first_message)[:160],
    ]


def found_words(page: SearchPage) -> str:
    if not page.total:
        return "No conversation matches; loosen a filter."
    first, last = page.offset + 1, page.offset + len(page.results)
    noun = "conversation" if page.total == 1 else "conversations"
    return f"**{page.total} {noun} found** (showing {first} to {last}, newest activity first)."


class FindHandlers:
    """The Find tab's handlers, over the console's (`me`, the store, agent names)."""

    def __init__(self, h: ConsoleHandlers) -> None:
        self.h = h
        self.store = h.bot.store

    def choices(self, request: gr.Request) -> tuple[Update, Update]:
        """The agents and the live model's intents to filter by."""
        self.h.me(request)
        agents = [
            (f"{name} ({username})", username) for name, username in self.store.agent_choices()
        ]
        intents = [(i, i) for i in self.h.svc.intents()]
        return (
            gr.update(choices=[("Any agent", ANY), *agents]),
            gr.update(choices=[("Any intent", ANY), *intents]),
        )

    def search(
        self,
        text: str | None,
        status: str | None,
        agent: str | None,
        intent: str | None,
        since: str | None,
        until: str | None,
        request: gr.Request,
    ) -> tuple[Update, ...]:
        """Search from the first page. Outputs: `FindTab.listing`."""
        me = self.h.me(request)
        try:
            where = conversation_filter(text, status, agent, intent, since, until)
        except FindError as exc:
            notice = f"**Not searched:** {md_text(str(exc), line_start=False)}"
            return (notice, *(gr.skip(),) * 5)
        return self._listing(where, 0, me)

    def turn_page(self, step: int) -> Any:
        """The handler of "Newer results" (`step` -1) or "Older results" (+1)."""

        def turn(query: tuple[ConversationFilter, int] | None, request: gr.Request) -> Any:
            me = self.h.me(request)
            if query is None:
                return (gr.skip(),) * 6
            where, offset = query
            return self._listing(where, max(0, offset + step * PAGE_SIZE), me)

        return turn

    def _listing(self, where: ConversationFilter, offset: int, me: Agent) -> tuple[Update, ...]:
        """A page of results: only conversations `me`'s teams may read (an admin: all)."""
        teams = teams_of(self.store, me)
        mine = replace(where, teams=None if teams is None else tuple(teams))
        page = self.store.search_conversations(mine, limit=PAGE_SIZE, offset=offset)
        return (
            found_words(page),
            gr.update(value=result_rows(page)),
            [s.conversation.id for s in page.results],
            (where, offset),
            gr.update(interactive=offset > 0),
            gr.update(interactive=page.has_more),
        )

    def viewer(
        self, conversation_id: str | None, agent: Agent, request: gr.Request
    ) -> tuple[Update, ...]:
        """The conversation, read-only: title, transcript, customer panel (recorded in
        the audit log first). Outputs: `FindTab.viewer`."""
        conv = self.store.get_conversation(conversation_id) if conversation_id else None
        if conv is None:
            return (gr.skip(),) * 5
        what = f"Conversation `{short_id(conv.id)}`"
        refused = refusal(self.store, agent, self.store.conversation_team(conv.id), what)
        if refused is not None:  # handed to a team the agent is not in
            return (
                f"**Not shown:** {md_text(refused, line_start=False)}",
                [],
                *panel_values(self.h, None),
            )
        self.h.opened(agent, request, conv.id, None)
        turns = self.store.history(conv.id)
        ids = [int(t.id) for t in turns if t.id is not None]
        labelled = {label.turn_id for label in self.store.labels_for(ids)}
        messages = agent_transcript(turns, self.h.svc.agent_name, labelled)
        state = {"open": "with the bot", "handoff": "handed to a person", "closed": "closed"}
        title = (
            f"#### Conversation `{short_id(conv.id)}` (read-only)\n\n"
            f"{state.get(conv.status, conv.status)} · {len(turns)} messages · "
            f"last active {when(conv.updated_at)}"
        )
        return (title, messages, *panel_values(self.h, conv.id, agent))

    def open_row(
        self, ids: Sequence[str], evt: gr.SelectData, request: gr.Request
    ) -> tuple[Update, ...]:
        """A click on a row of results (or of the panel's other conversations) opens it."""
        agent = self.h.me(request)
        return self.viewer(picked_conversation(evt, ids), agent, request)

    def open_elsewhere(
        self, ids: Sequence[str], evt: gr.SelectData, request: gr.Request
    ) -> tuple[Update, ...]:
        """A click on a past conversation in the queue's panel opens it in this tab."""
        agent = self.h.me(request)
        conversation_id = picked_conversation(evt, ids)
        if conversation_id is None:
            return (gr.skip(),) * 6
        return (gr.Tabs(selected=TAB_ID), *self.viewer(conversation_id, agent, request))


def wire_find(
    h: ConsoleHandlers,
    find: FindTab,
    tabs: Component,
    queue_panel: CustomerPanel | None,
    *,
    hide: Sequence[Component] = (),
) -> None:
    """Connect the tab's events (and the queue panel's past conversations) to handlers;
    `hide` are components that do not belong under this tab (the label form)."""
    f = FindHandlers(h)
    private: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None}
    find.tab.select(f.choices, None, [find.agent, find.intent], **private)
    find.tab.select(f.search, find.filters, find.listing, **private)
    for component in hide:
        find.tab.select(lambda: gr.update(visible=False), None, [component], **private)
    for trigger in (find.search.click, find.text.submit, find.since.submit, find.until.submit):
        trigger(f.search, find.filters, find.listing, **private)
    find.earlier.click(f.turn_page(-1), [find.query], find.listing, **private)
    find.later.click(f.turn_page(1), [find.query], find.listing, **private)
    find.results.select(f.open_row, [find.result_ids], find.viewer, **private)
    find.customer.past.select(f.open_row, [find.customer.past_ids], find.viewer, **private)
    if queue_panel is not None:
        queue_panel.past.select(
            f.open_elsewhere, [queue_panel.past_ids], [tabs, *find.viewer], **private
        )
