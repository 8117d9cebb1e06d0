"""The agent console (Gradio): handoff queue, live conversation, labels, review, dashboard.

It is mounted behind `ui.login`: Gradio's `auth_dependency` rejects every request of
this app (page, config, API, queue) without a valid agent session cookie, and each
handler (`ui.console.handlers`) takes the agent's name from that cookie, never from what
the browser sends. This module lays out the components, one builder per tab, and wires
the handlers to them.

Example:
    >>> console = build_console(bot, signer)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from deskbot.bot.server.container import Bot
from deskbot.ui.accounts.auth import SessionSigner
from deskbot.ui.console.actions import MAX_REPLY_CHARS
from deskbot.ui.console.handlers import DASHBOARD_DAYS, ConsoleHandlers

logger = logging.getLogger(__name__)

__all__ = ["CONSOLE_CSS", "DASHBOARD_DAYS", "REFRESH_SECONDS", "build_console"]

REFRESH_SECONDS = 3.0
# The chat component's "Clear" only empties the browser's copy of a transcript; hide it.
CONSOLE_CSS = (
    '#console-transcript button[aria-label="Clear"] { display: none !important; }\n'
    "#console-logout-box { text-align: right; }\n"
)
QUEUE_HEADERS = ["#", "status", "reason", "waiting", "predicted intent", "agent", "last message"]
REVIEW_HEADERS = ["turn", "confidence", "intent", "customer wrote", "bot answered"]

# A Gradio component (gradio is not type-checked here).
Component = Any


@dataclass
class QueueTab:
    """The queue tab: the handoff queue, the picked conversation and the agent's actions."""

    queue: Component
    pick: Component
    claim: Component
    notice: Component
    transcript: Component
    reply: Component
    send: Component
    hand_back: Component
    resolve: Component


@dataclass
class ReviewTab:
    """The review tab: the least confident and the disliked bot turns."""

    refresh: Component
    least: Component
    down: Component
    context: Component


@dataclass
class DashboardTab:
    """The dashboard tab: a headline and four figures, drawn when the tab is opened."""

    tab: Component
    refresh: Component
    outputs: list[Component]


@dataclass
class LabelForm:
    """The form under the tabs that labels a bot turn."""

    turn: Component
    intent: Component
    new_intent: Component
    wrong: Component
    answer: Component
    save: Component
    notice: Component


def _on(
    trigger: Callable[..., Any],
    fn: Callable[..., Any],
    inputs: Sequence[Component] | None,
    outputs: Sequence[Component],
    **options: Any,
) -> None:
    # Agents' actions are short database calls; let them run side by side. No handler is
    # part of the public API.
    trigger(
        fn,
        list(inputs) if inputs is not None else None,
        list(outputs),
        api_visibility="private",
        concurrency_limit=None,
        **options,
    )


def _header() -> Component:
    with gr.Row(equal_height=True):
        header = gr.Markdown("", elem_id="console-header")
        # A fixed link (nothing dynamic in it); Markdown links would open a new tab.
        gr.HTML(
            '<a href="logout" target="_self" id="console-logout">Log out</a>',
            elem_id="console-logout-box",
        )
    return header


def _queue_tab() -> QueueTab:
    with gr.Tab("Queue", id="queue"):
        queue = gr.Dataframe(
            headers=QUEUE_HEADERS,
            datatype=["number", "str", "str", "str", "str", "str", "str"],
            interactive=False,
            column_widths=["6%", "10%", "15%", "9%", "15%", "9%", "36%"],
            label="Handoff queue",
            elem_id="console-queue",
            wrap=True,
        )
        with gr.Row(equal_height=True):
            pick = gr.Dropdown(label="Conversation", choices=[], scale=3, elem_id="console-pick")
            claim = gr.Button("Claim", variant="primary", scale=1)
        notice = gr.Markdown("", elem_id="console-notice")
        transcript = gr.Chatbot(
            label="Transcript (intents, confidences, retrieved passages)",
            height=420,
            group_consecutive_messages=False,
            sanitize_html=True,
            allow_tags=False,
            latex_delimiters=[],
            feedback_options=None,
            elem_id="console-transcript",
        )
        reply = gr.Textbox(
            label="Reply to the customer",
            lines=2,
            max_length=MAX_REPLY_CHARS,
            elem_id="console-reply",
        )
        with gr.Row():
            send = gr.Button("Send reply", variant="primary")
            hand_back = gr.Button("Hand back to the bot")
            resolve = gr.Button("Resolve and close", variant="stop")
    return QueueTab(queue, pick, claim, notice, transcript, reply, send, hand_back, resolve)


def _review_table(label: str, elem_id: str) -> Component:
    return gr.Dataframe(
        headers=REVIEW_HEADERS, interactive=False, label=label, elem_id=elem_id, wrap=True
    )


def _review_tab() -> ReviewTab:
    with gr.Tab("Review", id="review"):
        gr.Markdown(
            "Turns the bot was least sure about, and turns customers gave a "
            "thumbs-down; pick a row to label it below."
        )
        refresh = gr.Button("Refresh", size="sm")
        least = _review_table("Least confident", "review-least")
        down = _review_table("Thumbs down", "review-down")
        context = gr.Markdown("")
    return ReviewTab(refresh, least, down, context)


def _plots(*labels: str) -> list[Component]:
    """A row of figures, side by side."""
    with gr.Row():
        return [gr.Plot(label=label, format="png", show_label=False) for label in labels]


def _dashboard_tab() -> DashboardTab:
    with gr.Tab("Dashboard", id="dashboard") as tab:
        refresh = gr.Button("Refresh", size="sm")
        headline = gr.Markdown("", elem_id="dashboard-headline")
        plots = _plots("Messages per day", "Automation and fallback")
        plots += _plots("Handoff reasons", "Top intents")
    return DashboardTab(tab, refresh, [headline, *plots])


def _label_form(intent_choices: list[tuple[str, str]]) -> LabelForm:
    with gr.Accordion("Label a bot turn", open=True, elem_id="console-label"):
        with gr.Row():
            turn = gr.Dropdown(
                label="Bot turn", choices=[], scale=2, filterable=True, elem_id="label-turn"
            )
            intent = gr.Dropdown(
                label="Correct intent (type to search)",
                choices=intent_choices,
                value=None,
                filterable=True,
                scale=2,
                elem_id="label-intent",
            )
            new_intent = gr.Textbox(
                label="…or a new intent", placeholder="new intent name", scale=2
            )
        with gr.Row():
            wrong = gr.Checkbox(label="The answer was wrong", scale=1)
            answer = gr.Textbox(label="The right answer", lines=2, scale=4, elem_id="label-answer")
        save = gr.Button("Save label", variant="primary")
        notice = gr.Markdown("", elem_id="label-notice")
    return LabelForm(turn, intent, new_intent, wrong, answer, save, notice)


def _wire_queue(
    h: ConsoleHandlers, q: QueueTab, form: LabelForm, seen: tuple[Component, Component]
) -> None:
    qseen, tseen = seen
    queue_out = [q.queue, q.pick, qseen]
    transcript_out = [q.transcript, form.turn, tseen]
    _on(q.queue.select, h.queue_pick, None, [q.pick])
    _on(q.pick.change, h.pick_conversation, [q.pick], [*transcript_out, q.notice])
    _on(
        gr.Timer(REFRESH_SECONDS).tick,
        h.tick,
        [q.pick, qseen, tseen],
        [*queue_out, *transcript_out],
        show_progress="hidden",
    )
    # The event names are the console API's, as before the handlers became methods.
    _on(
        q.claim.click,
        h.claim,
        [q.pick],
        [q.notice, *queue_out, *transcript_out],
        api_name="act_claim",
    )
    for trigger in (q.send.click, q.reply.submit):
        _on(
            trigger,
            h.send,
            [q.pick, q.reply],
            [q.notice, q.reply, *transcript_out],
            api_name="act_send",
        )
    for trigger, back_to_bot in ((q.hand_back.click, True), (q.resolve.click, False)):
        _on(
            trigger,
            h.closer(back_to_bot=back_to_bot),
            [q.pick],
            [q.notice, *queue_out],
            api_name="close",
        )


def _wire_label(h: ConsoleHandlers, form: LabelForm) -> None:
    fields = [form.intent, form.new_intent, form.wrong, form.answer]
    _on(
        form.save.click, h.label, [form.turn, *fields], [form.notice, *fields], api_name="act_label"
    )


def _wire_review(h: ConsoleHandlers, r: ReviewTab, form: LabelForm) -> None:
    _on(r.refresh.click, h.review_update, None, [r.least, r.down])
    for table in (r.least, r.down):
        _on(table.select, h.review_pick, None, [form.turn, r.context])


def _wire_dashboard(h: ConsoleHandlers, d: DashboardTab) -> None:
    for trigger in (d.tab.select, d.refresh.click):
        _on(trigger, h.dashboard, None, d.outputs)


def build_console(bot: Bot, signer: SessionSigner) -> gr.Blocks:
    """The agent console's Gradio app (mount it with `auth_dependency`, see `ui.server`)."""
    h = ConsoleHandlers(bot, signer)
    with gr.Blocks(title=f"{bot.config.name}: agent console") as console:
        header = _header()
        seen = (gr.State(""), gr.State(""))  # what the last refresh drew: queue, transcript
        with gr.Tabs():
            queue = _queue_tab()
            review = _review_tab()
            dashboard = _dashboard_tab()
        form = _label_form(h.svc.intent_choices())
        _on(console.load, h.on_load, None, [header, queue.queue, queue.pick, seen[0], form.intent])
        _wire_queue(h, queue, form, seen)
        _wire_label(h, form)
        _wire_review(h, review, form)
        _wire_dashboard(h, dashboard)
        _on(console.load, h.review_update, None, [review.least, review.down])
    return console
