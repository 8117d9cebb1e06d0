"""The customer chat widget (Gradio), served by the same process as the API.

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

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.core.types import Reply
from deskbot.bot.dialogue.pipeline import TurnPipeline
from deskbot.bot.server.container import Bot
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.models import Conversation
from deskbot.ui.render import ChatView, customer_view, md_text

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2_000
POLL_SECONDS = 2.0
# Gradio runs one call of an event at a time unless told otherwise: without these, one
# customer's slow reply would hold up every other customer's.
REPLY_CONCURRENCY = 16
STORAGE_KEY = "deskbot-session"
THINKING = "…"

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


def clean_message(text: str | None) -> str:
    """The message as stored: whitespace collapsed, control characters dropped, capped."""
    words = " ".join((text or "").split())
    kept = "".join(c for c in words if ord(c) >= 32 and not 0x7F <= ord(c) < 0xA0)
    return kept[:MAX_MESSAGE_CHARS]


@dataclass(frozen=True)
class Status:
    """Who is answering, as shown above the chat, and whether to poll for agent replies."""

    text: str
    poll: bool


class ChatService:
    """What the widget does, free of Gradio: sessions, views, feedback, handoff requests.

    Args:
        store: the conversation store.
        pipeline: the turn pipeline. Without one (a desk staffed only by people, or a
            test) handoffs and feedback go straight to the store and `reply` refuses.
    """

    def __init__(self, store: SqlConversationStore, pipeline: TurnPipeline | None) -> None:
        self.store = store
        self.pipeline = pipeline

    def conversation(self, token: str | None) -> Conversation | None:
        if not token or not isinstance(token, str) or len(token) > 256:
            return None
        return self.store.conversation_by_token(token)

    def start(self) -> tuple[str, str]:
        conv, token = self.store.create_conversation(channel="web")
        logger.info("web conversation %s started", conv.id)
        return conv.id, token

    def agent_name(self, username: str) -> str:
        agent = self.store.get_agent(username)
        return agent.display_name if agent is not None else username

    def view(self, conversation_id: str) -> ChatView:
        names: dict[str, str] = {}

        def name(username: str) -> str:
            if username not in names:
                names[username] = self.agent_name(username)
            return names[username]

        return customer_view(self.store.history(conversation_id), name)

    def status(self, conversation_id: str | None) -> Status:
        if conversation_id is None:
            return Status("", poll=False)
        conv = self.store.get_conversation(conversation_id)
        handoff = self.store.active_handoff(conversation_id)
        if handoff is not None and handoff.status == "claimed" and handoff.claimed_by:
            who = md_text(self.agent_name(handoff.claimed_by))
            return Status(f"You're talking to **{who}** from our support team.", poll=True)
        if handoff is not None:
            return Status(
                "Waiting for a person from our support team. They will answer here; "
                "you can keep writing.",
                poll=True,
            )
        if conv is not None and conv.status == "closed":
            return Status("Our support team closed this conversation. Write any time.", False)
        return Status("", poll=False)

    def request_human(self, conversation_id: str) -> None:
        """Queue the conversation for a person."""
        if self.pipeline is not None:
            self.pipeline.request_handoff(conversation_id)  # also stores "a person will answer"
            return
        intent = next(
            (t.intent for t in reversed(self.store.history(conversation_id)) if t.intent), None
        )
        handoff = self.store.open_handoff(conversation_id, "customer_request", intent=intent)
        logger.info("conversation %s asked for a person (handoff %s)", conversation_id, handoff.id)

    def feedback(self, conversation_id: str, index: int, liked: bool) -> bool:
        """Record thumbs up/down on the `index`-th shown message if it is a bot reply."""
        view = self.view(conversation_id)
        if not 0 <= index < len(view.turn_ids):
            return False
        turn = self.store.get_turn(view.turn_ids[index])
        if turn is None or turn.conversation_id != conversation_id or turn.role != "bot":
            return False
        value = 1 if liked else -1
        if self.pipeline is None:
            self.store.set_feedback(int(turn.id or 0), value)
            return True
        try:
            # The dialogue engine counts thumbs-down; repeated ones hand the conversation over.
            self.pipeline.feedback(conversation_id, int(turn.id or 0), value)
        except DeskbotError:
            return False
        return True

    def reply(self, conversation_id: str, text: str) -> Iterator[str | Reply]:
        """The bot's reply to `text`: text pieces as they are produced, then the `Reply`."""
        if self.pipeline is None:
            raise DeskbotError("this widget has no bot pipeline to answer with")
        yield from self.pipeline.handle_stream(conversation_id, text)


def options_for(reply: Reply) -> list[dict[str, str]]:
    """Clarification buttons under a reply (Gradio renders them as plain-text buttons)."""
    return [{"label": b, "value": b} for b in reply.buttons if b.strip()]


def storage_secret(name: str) -> str:
    # The browser encrypts the stored token with a secret it is sent in the page, so
    # this secret protects nothing; it only has to be the same in every process and
    # across restarts so that a reload after a deploy still finds the conversation.
    return hashlib.sha256(f"deskbot-widget:{name}".encode()).hexdigest()[:32]


def build_chat(bot: Bot) -> gr.Blocks:
    """The customer widget: chat, sources, clarification buttons, thumbs, talk to a person."""
    svc = ChatService(bot.store, bot.pipeline)

    def render(conv_id: str) -> tuple[dict[str, Any], Status, str]:
        view = svc.view(conv_id)
        status = svc.status(conv_id)
        signature = (
            f"{len(view.messages)}:{view.turn_ids[-1] if view.turn_ids else 0}:{status.text}"
        )
        return (
            gr.update(value=view.messages, feedback_value=view.feedback),
            status,
            signature,
        )

    def on_load(token: str | None) -> tuple[Any, ...]:
        conv = svc.conversation(token)
        if conv is None:
            return [], "", gr.Timer(active=False), None, ""
        chat, status, sig = render(conv.id)
        return chat, status.text, gr.Timer(active=status.poll), token, sig

    def respond(message: str, token: str | None) -> Iterator[tuple[Any, ...]]:
        text = clean_message(message)
        if not text:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), message, gr.skip()
            return
        conv = svc.conversation(token)
        if conv is None:
            conv_id, token = svc.start()
        else:
            conv_id = conv.id
        shown = svc.view(conv_id).messages
        pending = [*shown, {"role": "user", "content": md_text(text)}]
        yield (
            [*pending, {"role": "assistant", "content": THINKING}],
            gr.skip(),
            gr.skip(),
            token,
            "",
            gr.skip(),
        )
        reply: Reply | None = None
        partial = ""
        try:
            for event in svc.reply(conv_id, text):
                if isinstance(event, Reply):
                    reply = event
                else:
                    partial += event
                    streamed = {"role": "assistant", "content": md_text(partial)}
                    yield [*pending, streamed], gr.skip(), gr.skip(), token, "", gr.skip()
        except Exception:
            # The customer's message is stored before the bot works on it; say so.
            logger.exception("reply failed in conversation %s", conv_id)
        chat, status, sig = render(conv_id)
        if reply is None:
            status = Status(
                "Sorry, something went wrong on our side. Your message is saved; "
                "try again or ask for a person.",
                status.poll,
            )
        elif reply.buttons and chat["value"] and chat["value"][-1]["role"] == "assistant":
            chat["value"][-1]["options"] = options_for(reply)
        yield chat, status.text, gr.Timer(active=status.poll), token, "", sig

    def on_option(token: str | None, data: gr.SelectData) -> Iterator[tuple[Any, ...]]:
        yield from respond(str(data.value), token)

    def talk_to_person(token: str | None) -> tuple[Any, ...]:
        conv = svc.conversation(token)
        if conv is None:
            conv_id, token = svc.start()
        else:
            conv_id = conv.id
        svc.request_human(conv_id)
        chat, status, sig = render(conv_id)
        return chat, status.text, gr.Timer(active=True), token, sig

    def on_like(token: str | None, data: gr.LikeData) -> tuple[Any, ...]:
        conv = svc.conversation(token)
        if conv is None or not isinstance(data.index, int) or data.liked not in (True, False):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        svc.feedback(conv.id, data.index, bool(data.liked))
        # Repeated thumbs-down can hand the conversation to a person: show it.
        chat, status, sig = render(conv.id)
        return chat, status.text, gr.Timer(active=status.poll), sig

    def poll(token: str | None, seen: str) -> tuple[Any, ...]:
        conv = svc.conversation(token)
        if conv is None:
            return gr.skip(), gr.skip(), gr.Timer(active=False), seen
        chat, status, sig = render(conv.id)
        timer = gr.Timer(active=status.poll)
        if sig == seen:
            return gr.skip(), gr.skip(), timer, seen
        return chat, status.text, timer, sig

    with gr.Blocks(title=f"{bot.config.name}: help", fill_height=True) as demo:
        token = gr.BrowserState(
            None, storage_key=STORAGE_KEY, secret=storage_secret(bot.config.name)
        )
        seen = gr.State("")
        gr.Markdown(f"### {md_text(bot.config.name)}: customer help")
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
                max_length=MAX_MESSAGE_CHARS,
                scale=5,
                min_width=120,
                elem_id="deskbot-input",
                autofocus=True,
            )
            send = gr.Button("Send", variant="primary", scale=1, min_width=64)
        person = gr.Button("Talk to a person", size="sm", variant="secondary")
        timer = gr.Timer(POLL_SECONDS, active=False)

        reply_outputs = [chatbot, status, timer, token, box, seen]
        for trigger in (box.submit, send.click):
            trigger(
                respond,
                [box, token],
                reply_outputs,
                api_visibility="private",
                concurrency_limit=REPLY_CONCURRENCY,
                concurrency_id="reply",
            )
        chatbot.option_select(
            on_option,
            [token],
            reply_outputs,
            api_visibility="private",
            concurrency_limit=REPLY_CONCURRENCY,
            concurrency_id="reply",
        )
        chatbot.like(
            on_like,
            [token],
            [chatbot, status, timer, seen],
            api_visibility="private",
            concurrency_limit=None,
        )
        person.click(
            talk_to_person,
            [token],
            [chatbot, status, timer, token, seen],
            api_visibility="private",
            concurrency_limit=None,
        )
        timer.tick(
            poll,
            [token, seen],
            [chatbot, status, timer, seen],
            show_progress="hidden",
            api_visibility="private",
            concurrency_limit=None,
        )
        demo.load(
            on_load,
            [token],
            [chatbot, status, timer, token, seen],
            api_visibility="private",
            concurrency_limit=None,
        )
    return demo
