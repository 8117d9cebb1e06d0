"""The widget's event handlers: what happens when the page loads, a message is sent, an
option, a suggested question or a thumb is clicked, a person is asked for, the poll
timer ticks and the survey is answered.

Each handler returns (or yields) the new values of the components it was wired to
(`chat.build_chat`), in that order; `gr.skip()` leaves a component as it is. No handler
writes the customer's input box: the page empties it when a message is sent
(`client.ENQUEUE_JS`), so what is typed during a reply stays.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import gradio as gr

from deskbot.bot.core.types import Reply
from deskbot.bot.server.frontdoor import Refused
from deskbot.bot.server.schemas import MESSAGE_ID
from deskbot.ui.render import md_text
from deskbot.ui.widget.client import NO_FEEDBACK
from deskbot.ui.widget.service import ChatService, Status, options_for

logger = logging.getLogger(__name__)

THINKING = "…"
# A message id as the API takes one (the page sends `crypto.randomUUID()`s).
VALID_ID = re.compile(MESSAGE_ID)
FAILED = (
    "Sorry, something went wrong on our side. Your message is saved; try again or ask for a person."
)

PICK_A_SCORE = "**Your rating was not sent:** pick a score from 1 to 5 first."
THANKS = "Thank you for your rating. Write here any time if you need us again."

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
        messages, feedback = view.messages, view.feedback
        if status.note and messages and messages[-1]["role"] == "user":
            # A message the queue holds is answered by where the customer stands.
            note = {"role": "assistant", "content": status.note, "metadata": notice_id(-1)}
            messages, feedback = [*messages, note], [*feedback, None]
        signature = (
            f"{len(view.messages)}:{view.turn_ids[-1] if view.turn_ids else 0}:{status.text}"
        )
        return gr.update(value=messages, feedback_value=feedback), status, signature

    def on_load(self, token: str | None, request: gr.Request | None = None) -> Outputs:
        """Outputs: chat, status, timer, token, signature, person button, survey."""
        conv = self.svc.conversation(token, query_of(request))
        if conv is None and self.svc.conversation(token) is not None:
            # The token names another customer's conversation (a shared browser): it is
            # forgotten, and this customer's first message starts their own.
            return gr.skip(), "", gr.Timer(active=False), None, "", *controls(Status("", False))
        if conv is None:
            # Nothing to show. The token is left alone: a message sent before this load
            # event ran may have started a conversation, and its token must stay.
            skip = gr.skip()
            return skip, skip, gr.Timer(active=False), skip, skip, *controls(Status("", False))
        chat, status, sig = self.render(conv.id)
        return chat, status.text, gr.Timer(active=status.poll), token, sig, *controls(status)

    def controls(self, token: str | None) -> Outputs:
        """Outputs: the person button, the survey (after each reply)."""
        conv = self.svc.conversation(token)
        return controls(self.svc.status(conv.id if conv is not None else None))

    def respond(
        self,
        message: str | None,
        token: str | None,
        message_id: str | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[Outputs]:
        """Outputs: chat, status, timer, token, the message handed back to the box (a
        refused one; "" otherwise), signature. `message_id`: the page's id of the
        message (a resend of a stored one is answered once, `ChatService.reply`)."""
        if not (message or "").strip():
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), "", gr.skip()
            return
        try:
            conv, text = self.svc.admit(token, message or "", query_of(request))
        except Refused as refused:
            # Nothing is stored; the text goes back to the box to be shortened or fixed.
            kept = None if refused.status == 401 else token
            yield gr.skip(), refusal_notice(refused), gr.skip(), kept, message, gr.skip()
            return
        if conv is None:
            conv_id, token = self.svc.start()
        else:
            conv_id = conv.id
        yield from self._answer(conv_id, text, token, valid_id(message_id))

    def _answer(
        self, conv_id: str, text: str, token: str | None, message_id: str | None = None
    ) -> Iterator[Outputs]:
        pending = [*self.svc.view(conv_id).messages, {"role": "user", "content": md_text(text)}]
        thinking = {"role": "assistant", "content": THINKING, "metadata": notice_id(-2)}
        yield [*pending, thinking], gr.skip(), gr.skip(), token, "", gr.skip()
        reply: Reply | None = None
        partial = ""
        with self.svc.locks.hold(conv_id):
            try:
                for event in self.svc.reply(conv_id, text, message_id=message_id):
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

    def on_example(self, token: str | None, data: gr.SelectData) -> Iterator[Outputs]:
        """A suggested question of the greeting was clicked: it is sent as typed."""
        value = data.value.get("text") if isinstance(data.value, dict) else data.value
        yield from self.respond(str(value or ""), token)

    def talk_to_person(self, token: str | None) -> Outputs:
        """Outputs: as on_load's."""
        conv = self.svc.conversation(token)
        if conv is None:
            conv_id, token = self.svc.start()
        else:
            conv_id = conv.id
        self.svc.request_human(conv_id)
        chat, status, sig = self.render(conv_id)
        return chat, status.text, gr.Timer(active=True), token, sig, *controls(status)

    def on_like(self, token: str | None, data: gr.LikeData) -> Outputs:
        """Outputs: chat, status, timer, signature, person button, survey."""
        conv = self.svc.conversation(token)
        if conv is None or not isinstance(data.index, int) or data.liked not in (True, False):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        self.svc.feedback(conv.id, data.index, bool(data.liked))
        # Repeated thumbs-down can hand the conversation to a person: show it.
        chat, status, sig = self.render(conv.id)
        return chat, status.text, gr.Timer(active=status.poll), sig, *controls(status)

    def poll(self, token: str | None, seen: str) -> Outputs:
        """Outputs: as on_like's."""
        conv = self.svc.conversation(token)
        if conv is None:
            return gr.skip(), gr.skip(), gr.Timer(active=False), seen, gr.skip(), gr.skip()
        chat, status, sig = self.render(conv.id)
        timer = gr.Timer(active=status.poll)
        if sig == seen:
            return gr.skip(), gr.skip(), timer, seen, gr.skip(), gr.skip()
        return chat, status.text, timer, sig, *controls(status)

    def rate(self, token: str | None, score: int | None, comment: str | None) -> Outputs:
        """The survey's answer. Outputs: status, survey."""
        conv = self.svc.conversation(token)
        if conv is None:
            return gr.skip(), gr.update(visible=False)
        if score not in (1, 2, 3, 4, 5):
            return PICK_A_SCORE, gr.skip()
        self.svc.rate(conv.id, int(score), comment)
        return THANKS, gr.update(visible=False)


def query_of(request: gr.Request | None) -> dict[str, str] | None:
    """The query of the page the widget was opened with (who the site says it is)."""
    if request is None:
        return None
    return dict(request.query_params or {})


def valid_id(message_id: str | None) -> str | None:
    """The page's message id, or None where it sent none or one that is no id (the
    message is then stored without one, as before ids)."""
    if isinstance(message_id, str) and VALID_ID.match(message_id):
        return message_id
    return None


def notice_id(index: int) -> dict[str, str]:
    """The metadata of a chat message that is no answer of the bot (no thumbs)."""
    return {"id": f"{NO_FEEDBACK}{index}"}


def controls(status: Status) -> tuple[Any, Any]:
    """The person button and the survey as `status` has them."""
    return gr.update(visible=status.person), gr.update(visible=status.survey)
