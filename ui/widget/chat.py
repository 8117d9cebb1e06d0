"""The customer chat widget (Gradio), served by the same process as the API.

A message passes the API's front door (`deskbot.bot.server.frontdoor`): one the API
refuses (too long for `limits.max_message_chars`, control characters, an expired
session) is refused here with the same reason, shown above the chat, and nothing is
stored. The handlers are in `events.py`, what they do without Gradio in `service.py`.

Each browser holds its conversation's *session token* (never the conversation id) in
its localStorage (`gr.BrowserState`); every event looks the conversation up by that
token, so a reload shows the same conversation and nobody can read another's. While
a person has the conversation, a timer polls the store so the agent's replies appear
as they are written, under the agent's name.

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
from deskbot.ui.widget.events import ChatEvents, refusal_notice
from deskbot.ui.widget.service import ChatService, Status, options_for, storage_secret

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

CHAT_CSS = """
.gradio-container { max-width: 720px !important; margin: 0 auto !important; }
#deskbot-chat { min-height: 280px; }
/* "Clear" would only empty this page's copy of the conversation: hide it. */
#deskbot-chat button[aria-label="Clear"] { display: none !important; }
@media (max-width: 480px) {
  .gradio-container { padding: 4px !important; }
  #deskbot-input-row { flex-wrap: nowrap !important; }
}
"""


@dataclass(frozen=True)
class Widgets:
    """The widget's components that events read or write."""

    token: gr.BrowserState
    seen: gr.State
    status: gr.Markdown
    chatbot: gr.Chatbot
    box: gr.Textbox
    send: gr.Button
    person: gr.Button
    timer: gr.Timer


def chat_events(bot: Bot) -> ChatEvents:
    """The widget's handlers over `bot`, with its limits and session expiry."""
    svc = ChatService(
        bot.store,
        bot.pipeline,
        max_message_chars=bot.config.limits.max_message_chars,
        session_expiry_s=bot.config.dialogue.session_expiry_minutes * 60.0,
    )
    return ChatEvents(svc)


def build_chat(bot: Bot) -> gr.Blocks:
    """The customer widget: chat, sources, clarification buttons, thumbs, talk to a person."""
    events = chat_events(bot)
    with gr.Blocks(title=f"{bot.config.name}: help", fill_height=True) as demo:
        widgets = lay_out(bot.config.name, events.svc.max_message_chars)
        wire(demo, widgets, events)
    return demo


def lay_out(name: str, max_chars: int) -> Widgets:
    """The components, inside the open `gr.Blocks`."""
    token = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=storage_secret(name))
    seen = gr.State("")
    gr.Markdown(f"### {md_text(name)}: customer help")
    status = gr.Markdown("", elem_id="deskbot-status")
    chatbot = gr.Chatbot(
        show_label=False,
        elem_id="deskbot-chat",
        height="62vh",
        sanitize_html=True,
        render_markdown=True,
        allow_tags=False,
        latex_delimiters=[],
        feedback_options=("Like", "Dislike"),
        group_consecutive_messages=False,
        buttons=["copy"],
        placeholder="Ask about cards, transfers, fees, your account…",
    )
    with gr.Row(elem_id="deskbot-input-row", equal_height=True):
        box = gr.Textbox(
            placeholder="Type your question…",
            show_label=False,
            max_length=max_chars,
            scale=5,
            min_width=120,
            elem_id="deskbot-input",
            autofocus=True,
        )
        send = gr.Button("Send", variant="primary", scale=1, min_width=64)
    person = gr.Button("Talk to a person", size="sm", variant="secondary")
    timer = gr.Timer(POLL_SECONDS, active=False)
    return Widgets(token, seen, status, chatbot, box, send, person, timer)


def wire(demo: gr.Blocks, w: Widgets, events: ChatEvents) -> None:
    """Connect the components' events to `events`' handlers."""
    replying: dict[str, Any] = {
        "api_visibility": "private",
        "concurrency_limit": REPLY_CONCURRENCY,
        "concurrency_id": "reply",
    }
    light: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None}
    reply_outputs = [w.chatbot, w.status, w.timer, w.token, w.box, w.seen]
    for trigger in (w.box.submit, w.send.click):
        trigger(events.respond, [w.box, w.token], reply_outputs, **replying)
    w.chatbot.option_select(events.on_option, [w.token], reply_outputs, **replying)
    w.chatbot.like(events.on_like, [w.token], [w.chatbot, w.status, w.timer, w.seen], **light)
    shown = [w.chatbot, w.status, w.timer, w.token, w.seen]
    w.person.click(events.talk_to_person, [w.token], shown, **light)
    w.timer.tick(
        events.poll,
        [w.token, w.seen],
        [w.chatbot, w.status, w.timer, w.seen],
        show_progress="hidden",
        **light,
    )
    demo.load(events.on_load, [w.token], shown, **light)
