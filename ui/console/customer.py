"""The console's customer panel: who the customer of a conversation is, as the site
said (id, name, page, language) and by which channel, with the customer's other
conversations, each of which opens read-only in the Find tab (`ui.console.find`).

Everything in it a customer or a site could have typed passes `md_text` or sits in a
table's text cells; the handlers take the agent from the session cookie first.

Example:
    >>> panel = lay_out_customer("queue-customer")   # inside the open gr.Blocks  # doctest: +SKIP
    >>> wire_customer(console_handlers, queue.pick, panel)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import gradio as gr

from deskbot.bot.store.models import Agent, Conversation
from deskbot.bot.store.search import ConversationSummary
from deskbot.ui.console.components import read_only_table
from deskbot.ui.console.handlers import ConsoleHandlers
from deskbot.ui.console.teams import teams_of
from deskbot.ui.render import md_text

__all__ = [
    "PAST_HEADERS",
    "CustomerPanel",
    "customer_markdown",
    "lay_out_customer",
    "past_rows",
    "status_words",
    "transcript_view",
    "wire_customer",
]

PAST_HEADERS = ["id · last active · status · first message"]
PAST_LIMIT = 20
NOBODY = "*Pick a conversation to see who the customer is.*"
CHANNELS = {"web": "chat widget", "api": "API", "rest": "Rasa REST channel"}

# A Gradio component (gradio is not type-checked here).
Component = Any


@dataclass
class CustomerPanel:
    """Who the customer is (`summary`), their other conversations (`past`) and the ids
    of the rows shown (`past_ids`, per page: a click names its row by them)."""

    summary: Component
    past: Component
    past_ids: Component


def transcript_view(label: str, *, height: int, elem_id: str) -> gr.Chatbot:
    """A conversation's transcript as the console shows it (the queue's and Find's):
    HTML shown as text, no thumbs, copy buttons (not "share" to Hugging Face)."""
    return gr.Chatbot(
        label=label,
        height=height,
        group_consecutive_messages=False,
        sanitize_html=True,
        allow_tags=False,
        latex_delimiters=[],
        feedback_options=None,
        buttons=["copy", "copy_all"],
        elem_id=elem_id,
    )


def lay_out_customer(elem_id: str, *, min_width: int = 220) -> CustomerPanel:
    """The panel, as a column of the open row (`elem_id` names its parts)."""
    with gr.Column(scale=1, min_width=min_width, elem_id=elem_id):
        summary = gr.Markdown(NOBODY, elem_id=f"{elem_id}-who")
        past = read_only_table(
            PAST_HEADERS,
            label="Their other conversations (click one to read it)",
            elem_id=f"{elem_id}-past",
            max_height=260,
        )
    return CustomerPanel(summary, past, gr.State([]))


def short_id(conversation_id: str) -> str:
    """What a table shows of a conversation id (its first 8 characters)."""
    return conversation_id[:8]


def when(t: datetime) -> str:
    """A stored time (UTC) for people: '2026-12-07 14:05 UTC'."""
    aware = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def status_words(s: ConversationSummary) -> str:
    """Where a conversation stands, in words: 'with the bot', 'with alice', 'closed'..."""
    if s.conversation.status == "closed":
        return f"closed by {s.agent}" if s.agent else "closed"
    if s.handoff_status == "queued":
        return "waiting for a person"
    if s.handoff_status == "claimed":
        return f"with {s.agent}" if s.agent else "with a person"
    if s.handoff_status == "resolved":
        return f"back with the bot (after {s.agent})" if s.agent else "back with the bot"
    return "with the bot"


def customer_markdown(conv: Conversation | None) -> str:
    """Who the customer is, as the site said; every value shown as text."""
    if conv is None:
        return NOBODY
    channel = CHANNELS.get(conv.channel, conv.channel)

    def line(name: str, value: str | None, missing: str = "not given") -> str:
        shown = md_text(value, line_start=False) if value else f"*{missing}*"
        return f"- **{name}:** {shown}"

    lines = [
        "#### Customer",
        line("Customer id", conv.customer_id, "anonymous"),
        line("Name", conv.customer_name),
        line("Channel", channel),
        line("Page", conv.page),
        line("Language", conv.language),
        line("Started", when(conv.created_at)),
    ]
    return "\n".join(lines)


def past_rows(past: Sequence[ConversationSummary]) -> list[list[str]]:
    """The rows of the customer's other conversations, newest activity first: one
    column, to fit a narrow panel."""
    return [
        [
            f"{short_id(s.conversation.id)} · {when(s.conversation.updated_at)} · "
            f"{status_words(s)} · {s.first_message[:100]}"
        ]
        for s in past
    ]


def panel_values(
    h: ConsoleHandlers, conversation_id: str | None, agent: Agent | None = None
) -> tuple[str, Any, list[str]]:
    """The panel's summary, its table of other conversations and their ids (those
    `agent`'s teams may read)."""
    conv = h.bot.store.get_conversation(conversation_id) if conversation_id else None
    if conv is None or agent is None:
        return NOBODY, gr.update(value=[]), []
    past: list[ConversationSummary] = []
    if conv.customer_id is not None:
        past = h.bot.store.customer_history(
            conv.customer_id, exclude=conv.id, limit=PAST_LIMIT, teams=teams_of(h.bot.store, agent)
        )
    ids = [s.conversation.id for s in past]
    return customer_markdown(conv), gr.update(value=past_rows(past)), ids


def picked_conversation(evt: gr.SelectData, ids: Sequence[str]) -> str | None:
    """The conversation of the clicked row of a table whose first column starts with
    its `short_id`."""
    row = evt.row_value or []
    shown = str(row[0]) if row and row[0] is not None else ""
    return next((cid for cid in ids if shown and shown.startswith(short_id(cid))), None)


def wire_customer(
    h: ConsoleHandlers, picked: Callable[..., Any], pick: Component, panel: CustomerPanel | None
) -> None:
    """The queue's panel (if it has one) follows the picked handoff: `picked` is a `.then`
    after the console opened it (see `ui.console.page._on`)."""
    if panel is None:
        return

    def show(handoff_id: int | None, request: gr.Request) -> tuple[str, Any, list[str]]:
        agent = h.me(request)
        handoff = h.bot.store.get_handoff(int(handoff_id)) if handoff_id else None
        if handoff is not None and h.refused(agent, int(handoff_id or 0)) is not None:
            handoff = None  # outside the agent's teams: nobody to show
        return panel_values(h, handoff.conversation_id if handoff is not None else None, agent)

    picked(
        show,
        [pick],
        [panel.summary, panel.past, panel.past_ids],
        api_visibility="private",
        concurrency_limit=None,
        show_progress="hidden",
        trigger_mode="always_last",
    )
