"""The customer chat widget (Gradio), served by the same process as the API.

A message passes the API's front door (`deskbot.bot.server.frontdoor`): one the API
refuses (too long for `limits.max_message_chars`, control characters, an expired
session) is refused here with the same reason, shown above the chat, and nothing is
stored. The handlers are in `events.py`, what they do without Gradio in `service.py`,
what runs in the browser (the page's message queue, the stylesheet) in `client.py`, and
the queue position and wait estimate in `waiting.py`.

Each browser holds its conversation's *session token* (never the conversation id) in
its localStorage (`gr.BrowserState`); every event looks the conversation up by that
token, so a reload shows the same conversation and nobody can read another's. While
a person has the conversation, a timer polls the store so the agent's replies appear
as they are written, under the agent's name; while the conversation waits for one, the
status says its place in the queue and about how long the wait is. Once an agent closes
the conversation, the customer is asked for a 1-5 rating (`store.record_satisfaction`).

Example:
    >>> demo = build_chat(bot)   # doctest: +SKIP
    >>> gr.mount_gradio_app(api, demo, path="/")   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from deskbot.bot.server.container import Bot
from deskbot.ui.render import md_text
from deskbot.ui.widget.client import (
    AFTER_JS,
    CHAT_CSS,
    ENQUEUE_JS,
    FAILED_JS,
    FLAGS_JS,
    INSTALL_JS,
    TAKE_JS,
)
from deskbot.ui.widget.events import ChatEvents, refusal_notice
from deskbot.ui.widget.service import (
    ChatService,
    Status,
    options_for,
    storage_secret,
    suggested_questions,
)
from deskbot.ui.widget.typing import TypingEvents, TypingLine, lay_out_typing, wire_typing

__all__ = [
    "CHAT_CSS",
    "ChatEvents",
    "ChatService",
    "Status",
    "build_chat",
    "chat_events",
    "options_for",
    "refusal_notice",
    "storage_secret",
]

POLL_SECONDS = 2.0
# Gradio runs one call of an event at a time unless told otherwise: without these, one
# customer's slow reply would hold up every other customer's.
REPLY_CONCURRENCY = 16
STORAGE_KEY = "deskbot-session"
SCORES = ("1 very poor", "2 poor", "3 okay", "4 good", "5 excellent")


@dataclass(frozen=True)
class Widgets:
    """The widget's components that events read or write."""

    token: gr.BrowserState
    seen: gr.State
    status: gr.Markdown
    chatbot: gr.Chatbot
    box: gr.Textbox
    send: gr.Button
    outbox: gr.Textbox
    outbox_id: gr.Textbox
    dispatch: gr.Button
    person: gr.Button
    timer: gr.Timer
    survey: gr.Column
    rating: gr.Radio
    comment: gr.Textbox
    rate: gr.Button
    typing: TypingLine | None = None  # "<agent> is typing…" (typing.py)


def chat_events(bot: Bot) -> ChatEvents:
    """The widget's handlers over `bot`, with its limits and session expiry."""
    svc = ChatService(
        bot.store,
        bot.pipeline,
        max_message_chars=bot.config.limits.max_message_chars,
        session_expiry_s=bot.config.dialogue.session_expiry_minutes * 60.0,
        customer_key=bot.config.privacy.customer_key,
    )
    return ChatEvents(svc)


def identify(svc: ChatService) -> Any:
    """The handler that stores who the customer is, as the page's URL says (the site's
    `customer_id`, `customer_hash`, `customer_name`, `customer_page`, `customer_language`;
    `service.identify`)."""

    def handler(token: str | None, request: gr.Request) -> None:
        svc.identify(token, dict(request.query_params or {}))

    return handler


def build_chat(bot: Bot) -> gr.Blocks:
    """The customer widget: a greeting with suggested questions, chat, sources,
    clarification buttons, thumbs, talk to a person, a survey once an agent closes."""
    events = chat_events(bot)
    suggestions = suggested_questions(bot.config.knowledge.sources)
    with gr.Blocks(title=f"{bot.config.name}: help", fill_height=True) as demo:
        widgets = lay_out(bot.config.name, events.svc.max_message_chars, suggestions)
        wire(demo, widgets, events)
    return demo


def greeting(name: str, suggestions: list[str]) -> str:
    hello = f"**Hi, I'm the {md_text(name)} assistant.** Ask me anything about your account"
    if suggestions:
        return hello + ", or pick a question below."
    return hello + "."


def lay_out(name: str, max_chars: int, suggestions: list[str]) -> Widgets:
    """The components, inside the open `gr.Blocks`."""
    token = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=storage_secret(name))
    seen = gr.State("")
    gr.Markdown(f"### {md_text(name)}: customer help")
    status = gr.Markdown("", elem_id="deskbot-status")
    chatbot = gr.Chatbot(
        show_label=False,
        label="Conversation",
        elem_id="deskbot-chat",
        height="62vh",
        sanitize_html=True,
        render_markdown=True,
        allow_tags=False,
        latex_delimiters=[],
        feedback_options=("Like", "Dislike"),
        group_consecutive_messages=False,
        buttons=["copy"],
        placeholder=greeting(name, suggestions),
        examples=[{"text": q} for q in suggestions] or None,
    )
    typing = lay_out_typing()
    gr.HTML('<p id="deskbot-waiting-text" aria-live="polite"></p>', elem_id="deskbot-waiting")
    with gr.Row(elem_id="deskbot-input-row", equal_height=True):
        box = gr.Textbox(
            label="Your message",
            placeholder="Type your question…",
            show_label=False,
            max_length=max_chars,
            scale=5,
            min_width=120,
            elem_id="deskbot-input",
            autofocus=True,
        )
        send = gr.Button("Send", variant="primary", scale=1, min_width=64, elem_id="deskbot-send")
    # The page's queue sends each message through these (client.py); never shown.
    outbox = gr.Textbox(visible=False)
    outbox_id = gr.Textbox(visible=False)  # the message's id (idempotent turns)
    dispatch = gr.Button("Send next", elem_id="deskbot-dispatch")
    person = gr.Button("Talk to a person", size="sm", variant="secondary")
    with gr.Column(visible=False, elem_id="deskbot-survey") as survey:
        rating = gr.Radio(
            choices=[(label, score) for score, label in enumerate(SCORES, start=1)],
            label="How would you rate the help you got?",
        )
        comment = gr.Textbox(label="Anything to add? (optional)", max_length=500, lines=2)
        rate = gr.Button("Send rating", size="sm")
    timer = gr.Timer(POLL_SECONDS, active=False)
    return Widgets(
        token,
        seen,
        status,
        chatbot,
        box,
        send,
        outbox,
        outbox_id,
        dispatch,
        person,
        timer,
        survey,
        rating,
        comment,
        rate,
        typing,
    )


def wire(demo: gr.Blocks, w: Widgets, events: ChatEvents) -> None:
    """Connect the components' events to `events`' handlers."""
    replying: dict[str, Any] = {
        "api_visibility": "private",
        "concurrency_limit": REPLY_CONCURRENCY,
        "concurrency_id": "reply",
        "trigger_mode": "multiple",
    }
    light: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None}
    page: dict[str, Any] = {"api_visibility": "private", "queue": False}
    reply_outputs = [w.chatbot, w.status, w.timer, w.token, w.outbox, w.seen]
    controls = [w.person, w.survey]
    for trigger in (w.box.submit, w.send.click):
        trigger(None, [w.box], None, js=ENQUEUE_JS, trigger_mode="multiple", **page)
    sent = w.dispatch.click(
        events.respond, [w.outbox, w.token, w.outbox_id], reply_outputs, js=TAKE_JS, **replying
    )
    sent.success(None, [w.outbox], None, js=AFTER_JS, **page)
    sent.failure(None, None, None, js=FAILED_JS, **page)
    sent.then(events.controls, [w.token], controls, **light)
    started = [sent]  # the events that may start a conversation (or find it again)
    for select, handler in (
        (w.chatbot.option_select, events.on_option),
        (w.chatbot.example_select, events.on_example),
    ):
        chosen = select(handler, [w.token], reply_outputs, **replying)
        chosen.then(events.controls, [w.token], controls, **light)
        started.append(chosen)
    w.chatbot.change(None, [w.chatbot], None, js=FLAGS_JS, **page)
    shown = [w.chatbot, w.status, w.timer, w.seen, *controls]
    w.chatbot.like(events.on_like, [w.token], shown, **light)
    loaded = [w.chatbot, w.status, w.timer, w.token, w.seen, *controls]
    asked = w.person.click(events.talk_to_person, [w.token], loaded, **light)
    w.timer.tick(events.poll, [w.token, w.seen], shown, show_progress="hidden", **light)
    w.rate.click(events.rate, [w.token, w.rating, w.comment], [w.status, w.survey], **light)
    opened = demo.load(events.on_load, [w.token], loaded, **light)
    demo.load(None, None, None, js=INSTALL_JS, **page)
    for event in (*started, asked, opened):  # then: who its customer is, as the URL says
        event.then(identify(events.svc), [w.token], None, **light)
    if w.typing is not None:
        wire_typing(demo, w.typing, TypingEvents(events.svc), token=w.token, timer=w.timer)
