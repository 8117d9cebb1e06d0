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
from deskbot.ui.console.actions import MAX_REPLY_CHARS, QUEUE_HEADERS
from deskbot.ui.console.audit import lay_out_audit, wire_audit
from deskbot.ui.console.components import read_only_table
from deskbot.ui.console.customer import (
    CustomerPanel,
    lay_out_customer,
    transcript_view,
    wire_customer,
)
from deskbot.ui.console.desk import DESK_CSS, DeskPanel, lay_out_desk, typing_line, wire_desk
from deskbot.ui.console.discover import lay_out_discover, wire_discover
from deskbot.ui.console.find import FIND_CSS, lay_out_find, wire_find
from deskbot.ui.console.handlers import DASHBOARD_DAYS, ConsoleHandlers
from deskbot.ui.console.proposals import lay_out_proposals, wire_proposals

logger = logging.getLogger(__name__)

__all__ = ["CONSOLE_CSS", "DASHBOARD_DAYS", "build_console"]

# The chat component's "Clear" only empties the browser's copy of a transcript; hide it.
CONSOLE_CSS = (
    '#console-transcript button[aria-label="Clear"] { display: none !important; }\n'
    "#console-logout-box { text-align: right; }\n"
    # Where the keyboard is, always visible (WCAG 2.4.7).
    ":focus-visible { outline: 3px solid #1d4ed8 !important; outline-offset: 2px; }\n"
    "#console-reply textarea:focus { outline: 3px solid #1d4ed8; }\n"
    "#review-least th span.header, #review-down th span.header { white-space: nowrap; }\n"
    # The theme's orange and red buttons, light hints and empty pickers are below WCAG's
    # contrast of 4.5:1 (axe-core): the same hues, darker.
    "button.primary { background: #c2410c !important; border-color: #c2410c !important; }\n"
    "button.primary:hover { background: #9a3412 !important; }\n"
    # Not faded in: a button enabled a moment ago is already readable.
    "button.primary, button.stop { transition: none !important; }\n"
    "button.stop { background: #b91c1c !important; border-color: #b91c1c !important;"
    " color: #fff !important; }\n"
    ".info-text, input.subdued { color: #4b5563 !important; }\n" + DESK_CSS + FIND_CSS
)
REVIEW_HEADERS = ["turn", "confidence", "intent", "customer wrote", "bot answered"]
REPLY_HINT = "Enter sends · Shift+Enter adds a line"
# Browser-side: the title's count of new things, and (if the agent turned them on) a
# notification and a short tone when it rises.
TITLE_JS = """(count, alert) => {
  const base = document.title.replace(/^\\(\\d+\\) /, "");
  document.title = count > 0 ? `(${count}) ${base}` : base;
  const before = window.deskbotUnread || 0;
  window.deskbotUnread = count;
  if (!alert || count <= before) return [];
  if (window.Notification && Notification.permission === "granted") {
    new Notification(base, {body: `${count} new in the agent console`});
  }
  try {
    const audio = new AudioContext(), tone = audio.createOscillator();
    tone.frequency.value = 880;
    tone.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.15);
  } catch (e) {}
  return [];
}"""
ASK_PERMISSION_JS = """(on) => {
  if (on && window.Notification && Notification.permission === "default") {
    Notification.requestPermission();
  }
  return [];
}"""
# The pushed refresh also says whether the page is out of sight (what arrives then is new).
PAGE_HIDDEN_JS = "(...args) => [...args.slice(0, -1), document.hidden]"
# Status regions whose changes screen readers announce.
LIVE_REGIONS_JS = """() => {
  for (const id of ["console-notice", "console-unread", "label-notice"]) {
    const el = document.getElementById(id);
    if (el) { el.setAttribute("role", "status"); el.setAttribute("aria-live", "polite"); }
  }
  return [];
}"""

# A Gradio component (gradio is not type-checked here).
Component = Any


@dataclass
class QueueTab:
    """The queue tab: the handoff queue, the picked conversation and the agent's actions."""

    tab: Component
    queue: Component
    pick: Component
    claim: Component
    notice: Component
    transcript: Component
    reply: Component
    send: Component
    hand_back: Component
    resolve: Component
    desk: DeskPanel | None = None  # canned replies, notes, release, transfer, typing
    customer: CustomerPanel | None = None  # who the customer is, their other conversations

    @property
    def actions(self) -> list[Component]:
        """The buttons usable only on a conversation they apply to (see `buttons`)."""
        return [self.claim, self.send, self.hand_back, self.resolve]


@dataclass
class News:
    """What tells the agent of new work: the marker, the title's count, the push stream."""

    unread: Component  # the marker ("2 new"), a status region
    count: Component  # hidden; its change sets the title (and alerts, if turned on)
    alert: Component  # the agent's choice: a browser notification and a tone
    pushed: Component  # hidden; the store's push stream writes here
    page_hidden: Component  # hidden; whether the page was out of sight at a refresh
    state: Component  # `Unread`, per page


@dataclass
class ReviewTab:
    """The review tab: the least confident and the disliked bot turns."""

    tab: Component
    refresh: Component
    least: Component
    down: Component
    context: Component


@dataclass
class DashboardTab:
    """The dashboard tab: a headline, four figures and the customers' satisfaction
    (plotted by intent and by agent, then as tables), drawn when the tab is opened."""

    tab: Component
    refresh: Component
    outputs: list[Component]


@dataclass
class LabelForm:
    """The form under the queue and review tabs that labels a bot turn."""

    box: Component
    turn: Component
    intent: Component
    new_intent: Component
    wrong: Component
    answer: Component
    save: Component
    notice: Component


def _on(
    trigger: Callable[..., Any],
    fn: Callable[..., Any] | None,
    inputs: Sequence[Component] | None,
    outputs: Sequence[Component],
    **options: Any,
) -> Any:
    """Listen to `trigger`; returns the listener, whose `.then` follows it.

    Agents' actions are short database calls; let them run side by side. No handler is
    part of the public API. A trigger has at most one `always_last` listener (the
    default of `.change`): when one of several finishes with a trigger deferred, Gradio's
    page fires the whole trigger again, which defers the others, and the listeners set
    each other off until their runs stop overlapping (a console refreshed ten times a
    second for most of a minute). A second listener follows the first with `.then`."""
    return trigger(
        fn,
        list(inputs) if inputs is not None else None,
        list(outputs),
        api_visibility="private",
        concurrency_limit=None,
        **options,
    )


def _header() -> tuple[Component, News]:
    with gr.Row(equal_height=True):
        header = gr.Markdown("", elem_id="console-header")
        unread = gr.Markdown("Nothing new", elem_id="console-unread")
        alert = gr.Checkbox(
            label="Notify me of new work (browser notification and sound)",
            value=False,
            elem_id="console-alert",
        )
        # A fixed link (nothing dynamic in it); Markdown links would open a new tab.
        gr.HTML(
            '<a href="logout" target="_self" id="console-logout">Log out</a>',
            elem_id="console-logout-box",
        )
    news = News(
        unread=unread,
        count=gr.Number(0, visible="hidden", precision=0, label="new", elem_id="console-count"),
        alert=alert,
        pushed=gr.Number(0, visible="hidden", precision=0, label="pushes"),
        page_hidden=gr.Checkbox(False, visible="hidden", label="page hidden"),
        state=gr.State(None),
    )
    return header, news


def _queue_column() -> tuple[Component, Component, Component]:
    queue = read_only_table(
        QUEUE_HEADERS,
        datatype=["number", "str", "str", "str", "str", "str", "str", "str"],
        column_widths=["6%", "8%", "12%", "9%", "15%", "9%", "13%", "28%"],
        label="Handoff queue",
        elem_id="console-queue",
        max_height=420,
    )
    with gr.Row(equal_height=True):
        # Every handler checks the picked id against the store; Gradio's own check against
        # the choices would fail a timer tick that left before a push emptied them.
        pick = gr.Dropdown(
            label="Conversation",
            choices=[],
            scale=3,
            elem_id="console-pick",
            allow_custom_value=True,  # Gradio makes it filterable then (typing an id)
        )
        claim = gr.Button("Claim", variant="primary", scale=1, interactive=False)
    return queue, pick, claim


def _queue_tab() -> QueueTab:
    # Side by side, the queue and the conversation both fit a 1280x720 screen.
    with gr.Tab("Queue", id="queue") as tab, gr.Row():
        with gr.Column(scale=2, min_width=420):
            queue, pick, claim = _queue_column()
        with gr.Column(scale=3, min_width=480):
            notice = gr.Markdown("", elem_id="console-notice")
            transcript = transcript_view(
                "Transcript (intents, confidences, retrieved passages)",
                height=330,
                elem_id="console-transcript",
            )
            typing = typing_line()
            reply = gr.Textbox(
                label="Reply to the customer",
                info=REPLY_HINT,
                lines=1,  # Enter sends; Shift+Enter adds a line (up to max_lines shown)
                max_lines=6,
                max_length=MAX_REPLY_CHARS,
                elem_id="console-reply",
            )
            with gr.Row():
                send = gr.Button("Send reply", variant="primary", interactive=False)
                hand_back = gr.Button("Hand back to the bot", interactive=False)
                resolve = gr.Button("Resolve and close", variant="stop", interactive=False)
            desk = lay_out_desk(typing)
        customer = lay_out_customer("queue-customer")
    return QueueTab(
        tab, queue, pick, claim, notice, transcript, reply, send, hand_back, resolve, desk, customer
    )


def _review_table(label: str, elem_id: str) -> Component:
    return read_only_table(
        REVIEW_HEADERS,
        label=label,
        elem_id=elem_id,
        column_widths=["7%", "12%", "15%", "33%", "33%"],
    )


def _review_tab() -> ReviewTab:
    with gr.Tab("Review", id="review") as tab:
        gr.Markdown(
            "Turns the bot was least sure about, and turns customers gave a "
            "thumbs-down; pick a row to see the turns before it and label it below."
        )
        refresh = gr.Button("Refresh", size="sm")
        least = _review_table("Least confident", "review-least")
        down = _review_table("Thumbs down", "review-down")
        context = gr.Markdown("", elem_id="review-context")
    return ReviewTab(tab, refresh, least, down, context)


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
        with gr.Row():  # images named by their text alternative (dashboard.csat_html)
            plots += [gr.HTML("", elem_id=f"dashboard-csat-{by}") for by in ("intent", "agent")]
        csat = gr.Markdown("", elem_id="dashboard-csat")
    return DashboardTab(tab, refresh, [headline, *plots, csat])


def _label_form(intent_choices: list[tuple[str, str]]) -> LabelForm:
    with gr.Accordion("Label a bot turn", open=True, elem_id="console-label") as box:
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
    return LabelForm(box, turn, intent, new_intent, wrong, answer, save, notice)


def _wire_news(
    h: ConsoleHandlers,
    console: Component,
    q: QueueTab,
    n: News,
    form: LabelForm,
    seen: tuple[Component, Component],
) -> Any:
    """The push stream, the refresh it sets off (returned), and the title count."""
    qseen, tseen = seen
    _on(console.load, h.watch, None, [n.pushed], show_progress="hidden")
    refreshed = _on(
        n.pushed.change,
        h.tick,
        [q.pick, qseen, tseen, n.state, n.page_hidden],
        [
            q.queue,
            q.pick,
            qseen,
            q.transcript,
            form.turn,
            tseen,
            n.state,
            n.unread,
            n.count,
            *q.actions,
        ],
        js=PAGE_HIDDEN_JS,
        show_progress="hidden",
    )
    _on(n.count.change, None, [n.count, n.alert], [], js=TITLE_JS)
    _on(n.alert.change, None, [n.alert], [], js=ASK_PERMISSION_JS)
    _on(console.load, None, None, [], js=LIVE_REGIONS_JS)
    return refreshed


def _wire_queue(
    h: ConsoleHandlers, q: QueueTab, n: News, form: LabelForm, seen: tuple[Component, Component]
) -> Any:
    """The queue's buttons and picker; returns the listener that opens a picked one."""
    qseen, tseen = seen
    transcript_out = [q.transcript, form.turn, tseen]
    _on(q.queue.select, h.queue_pick, None, [q.pick])
    picked = _on(
        q.pick.change,
        h.pick_conversation,
        [q.pick, n.state],
        [*transcript_out, q.notice, q.queue, qseen, n.state, n.unread, n.count, *q.actions],
    )
    # The event names are the console API's, as before the handlers became methods.
    _on(
        q.claim.click,
        h.claim,
        [q.pick],
        [q.notice, *transcript_out, *q.actions],
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
            [q.notice, *q.actions],
            api_name="close",
        )
    return picked


def _wire_label(h: ConsoleHandlers, form: LabelForm) -> None:
    fields = [form.intent, form.new_intent, form.wrong, form.answer]
    _on(
        form.save.click, h.label, [form.turn, *fields], [form.notice, *fields], api_name="act_label"
    )


def _wire_review(h: ConsoleHandlers, r: ReviewTab, form: LabelForm) -> None:
    _on(r.refresh.click, h.review_update, None, [r.least, r.down])
    for table in (r.least, r.down):
        _on(table.select, h.review_pick, None, [form.turn, r.context])


def _wire_tabs(tabs: Sequence[Component], dashboard: DashboardTab, form: LabelForm) -> None:
    """The label form belongs under the queue and the review, not the dashboard."""
    for tab in tabs:
        _on(tab.select, lambda: gr.update(visible=True), None, [form.box])
    _on(dashboard.tab.select, lambda: gr.update(visible=False), None, [form.box])


def _wire_dashboard(h: ConsoleHandlers, d: DashboardTab) -> None:
    for trigger in (d.tab.select, d.refresh.click):
        _on(trigger, h.dashboard, None, d.outputs)


def build_console(bot: Bot, signer: SessionSigner) -> gr.Blocks:
    """The agent console's Gradio app (mount it with `auth_dependency`, see `ui.server`)."""
    h = ConsoleHandlers(bot, signer)
    with gr.Blocks(title=f"{bot.config.name}: agent console") as console:
        header, news = _header()
        seen = (gr.State(""), gr.State(""))  # what the last refresh drew: queue, transcript
        with gr.Tabs() as tabs:
            queue = _queue_tab()
            review = _review_tab()
            dashboard = _dashboard_tab()
            find = lay_out_find()
            discover, proposals = lay_out_discover(), lay_out_proposals()
            audit = lay_out_audit()  # admins only
        form = _label_form(h.svc.intent_choices())
        _on(
            console.load,
            h.on_load,
            None,
            [
                header,
                queue.queue,
                queue.pick,
                seen[0],
                news.state,
                news.unread,
                news.count,
                form.intent,
            ],
        )
        refreshed = _wire_news(h, console, queue, news, form, seen)
        picked = _wire_queue(h, queue, news, form, seen)
        _wire_label(h, form)
        _wire_review(h, review, form)
        _wire_tabs([queue.tab, review.tab], dashboard, form)
        _wire_dashboard(h, dashboard)
        opened = wire_desk(h, console, queue, refreshed=refreshed.then, picked=picked.then)
        wire_customer(h, opened, queue.pick, queue.customer)
        wire_find(h, find, tabs, queue.customer, hide=[form.box])
        wire_audit(h, console, audit, hide=[form.box])
        wire_discover(h, discover, hide=[form.box])
        wire_proposals(h, proposals, hide=[form.box])
        _on(console.load, h.review_update, None, [review.least, review.down])
    return console
