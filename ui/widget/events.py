"""The widget's event handlers: what happens when the page loads, a message is sent, an
option or a thumb is clicked, a person is asked for, and the poll timer ticks.

Each handler returns (or yields) the new values of the components it was wired to
(`chat.build_chat`), in that order; `gr.skip()` leaves a component as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from deskbot.bot.core.types import Reply
from deskbot.bot.server.frontdoor import Refused
from deskbot.ui.render import md_text
from deskbot.ui.widget.service import ChatService, Status, options_for

logger = logging.getLogger(__name__)

THINKING = "…"
FAILED = (
    "Sorry, something went wrong on our side. Your message is saved; try again or ask for a person."
)

# (chat update, status, its signature) of a conversation as it is now.
Rendered = tuple[dict[str, Any], Status, str]
# The new values of the components an event was wired to, in their order.
Outputs = tuple[Any, ...]


def refusal_notice(refused: Refused) -> str:
    """The notice shown above the chat for a message the front door refused."""
    notice = f"**Your message was not sent:** {md_text(refused.reason)}."
    if refused.status == 401:
        notice += " Send it again to start a new conversation."
    return notice


class ChatEvents:
    """The handlers of one widget, over `svc`.

    Example:
        >>> events = ChatEvents(ChatService(bot.store, bot.pipeline))   # doctest: +SKIP
        >>> *_, last = events.respond("where is my card?", None)        # doctest: +SKIP
    """

    def __init__(self, svc: ChatService) -> None:
        self.svc = svc

    def render(self, conv_id: str) -> Rendered:
        view = self.svc.view(conv_id)
        status = self.svc.status(conv_id)
        signature = (
            f"{len(view.messages)}:{view.turn_ids[-1] if view.turn_ids else 0}:{status.text}"
        )
        return (
            gr.update(value=view.messages, feedback_value=view.feedback),
            status,
            signature,
        )

    def on_load(self, token: str | None) -> Outputs:
        conv = self.svc.conversation(token)
        if conv is None:
            return [], "", gr.Timer(active=False), None, ""
        chat, status, sig = self.render(conv.id)
        return chat, status.text, gr.Timer(active=status.poll), token, sig

    def respond(self, message: str | None, token: str | None) -> Iterator[Outputs]:
        """Outputs: chat, status, timer, token, the input box, signature."""
        if not (message or "").strip():
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), message, gr.skip()
            return
        try:
            conv, text = self.svc.admit(token, message or "")
        except Refused as refused:
            # Nothing is stored; the text stays in the box to be shortened or fixed.
            kept = None if refused.status == 401 else token
            yield gr.skip(), refusal_notice(refused), gr.skip(), kept, message, gr.skip()
            return
        if conv is None:
            conv_id, token = self.svc.start()
        else:
            conv_id = conv.id
        yield from self._answer(conv_id, text, token)

    def _answer(self, conv_id: str, text: str, token: str | None) -> Iterator[Outputs]:
        pending = [*self.svc.view(conv_id).messages, {"role": "user", "content": md_text(text)}]
        thinking = {"role": "assistant", "content": THINKING}
        yield [*pending, thinking], gr.skip(), gr.skip(), token, "", gr.skip()
        reply: Reply | None = None
        partial = ""
        try:
            for event in self.svc.reply(conv_id, text):
                if isinstance(event, Reply):
                    reply = event
                else:
                    partial += event
                    streamed = {"role": "assistant", "content": md_text(partial)}
                    yield [*pending, streamed], gr.skip(), gr.skip(), token, "", gr.skip()
        except Exception:
            # The customer's message is stored before the bot works on it; say so.
            logger.exception("reply failed in conversation %s", conv_id)
        chat, status, sig = self.render(conv_id)
        if reply is None:
            status = Status(FAILED, status.poll)
        elif reply.buttons and chat["value"] and chat["value"][-1]["role"] == "assistant":
            chat["value"][-1]["options"] = options_for(reply)
        yield chat, status.text, gr.Timer(active=status.poll), token, "", sig

    def on_option(self, token: str | None, data: gr.SelectData) -> Iterator[Outputs]:
        yield from self.respond(str(data.value), token)

    def talk_to_person(self, token: str | None) -> Outputs:
        conv = self.svc.conversation(token)
        if conv is None:
            conv_id, token = self.svc.start()
        else:
            conv_id = conv.id
        self.svc.request_human(conv_id)
        chat, status, sig = self.render(conv_id)
        return chat, status.text, gr.Timer(active=True), token, sig

    def on_like(self, token: str | None, data: gr.LikeData) -> Outputs:
        conv = self.svc.conversation(token)
        if conv is None or not isinstance(data.index, int) or data.liked not in (True, False):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        self.svc.feedback(conv.id, data.index, bool(data.liked))
        # Repeated thumbs-down can hand the conversation to a person: show it.
        chat, status, sig = self.render(conv.id)
        return chat, status.text, gr.Timer(active=status.poll), sig

    def poll(self, token: str | None, seen: str) -> Outputs:
        conv = self.svc.conversation(token)
        if conv is None:
            return gr.skip(), gr.skip(), gr.Timer(active=False), seen
        chat, status, sig = self.render(conv.id)
        timer = gr.Timer(active=status.poll)
        if sig == seen:
            return gr.skip(), gr.skip(), timer, seen
        return chat, status.text, timer, sig
