"""What the widget does, free of Gradio: sessions, the front door for messages, views,
feedback, handoff requests.

A message passes the same checks as the API's (`deskbot.bot.server.frontdoor`): the
same length limit (`limits.max_message_chars`), control characters and session expiry,
refused with the same reason and nothing stored.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.core.types import Reply
from deskbot.bot.dialogue.pipeline import TurnPipeline
from deskbot.bot.server.frontdoor import accept_message, check_session
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.models import Conversation
from deskbot.ui.render import ChatView, customer_view, md_text

logger = logging.getLogger(__name__)

# The defaults of `limits.max_message_chars` and `dialogue.session_expiry_minutes`.
DEFAULT_MAX_CHARS = 2_000
DEFAULT_EXPIRY_S = 3600.0


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
        max_message_chars: `limits.max_message_chars`.
        session_expiry_s: `dialogue.session_expiry_minutes` in seconds.
    """

    def __init__(
        self,
        store: SqlConversationStore,
        pipeline: TurnPipeline | None,
        *,
        max_message_chars: int = DEFAULT_MAX_CHARS,
        session_expiry_s: float = DEFAULT_EXPIRY_S,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.max_message_chars = max_message_chars
        self.session_expiry_s = session_expiry_s

    def conversation(self, token: str | None) -> Conversation | None:
        if not token or not isinstance(token, str) or len(token) > 256:
            return None
        return self.store.conversation_by_token(token)

    def admit(self, token: str | None, message: str) -> tuple[Conversation | None, str]:
        """The front door: the conversation `token` names (None when it names none: the
        message starts one) and the message as it is stored. Raises `Refused` with the
        API's reason for a message the API refuses, or an expired session; nothing is
        stored then. A closed conversation takes messages (its page says so)."""
        text = accept_message(message, self.max_message_chars)
        conv = self.conversation(token)
        if conv is not None:
            check_session(conv, self.session_expiry_s, closed_ok=True)
        return conv, text

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
