"""What the widget does, free of Gradio: sessions, the front door for messages, views,
feedback, handoff requests and their status, the satisfaction survey, the greeting's
suggested questions, and who the customer is (what the site put in the widget's URL).

A message passes the same checks as the API's (`deskbot.bot.server.frontdoor`): the
same length limit (`limits.max_message_chars`), control characters and session expiry,
refused with the same reason and nothing stored. What the site says of its customer
passes the API's checks too (`deskbot.bot.server.identity`): the widget's URL takes
`customer_id` with `customer_hash`, `customer_name`, `customer_page` and
`customer_language`, as `POST /api/sessions` takes them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.core.types import Reply
from deskbot.bot.dialogue.pipeline import TurnPipeline
from deskbot.bot.server.frontdoor import accept_message, check_session
from deskbot.bot.server.identity import IdentityRefused, context_from_query
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.models import Conversation, Handoff
from deskbot.knowledge.errors import KnowledgeError
from deskbot.knowledge.sources.loading import read_source
from deskbot.ui.render import ChatView, customer_view, md_text
from deskbot.ui.widget.client import NO_FEEDBACK
from deskbot.ui.widget.waiting import ConversationLocks, last_handoff, queue_place

logger = logging.getLogger(__name__)

# The defaults of `limits.max_message_chars` and `dialogue.session_expiry_minutes`.
DEFAULT_MAX_CHARS = 2_000
DEFAULT_EXPIRY_S = 3600.0
MAX_COMMENT_CHARS = 500
MAX_SUGGESTION_CHARS = 70

CLOSED = "Our support team closed this conversation. Write any time."
BOT_IS_BACK = (
    "You're chatting with our bot again: our support team handed the conversation back. "
    "Ask anything, or ask for a person."
)


@dataclass(frozen=True)
class Status:
    """Who is answering, as shown above the chat, and what the page offers now.

    Attributes:
        text: the status line (Markdown).
        poll: whether to poll the store for an agent's replies.
        person: whether "Talk to a person" is offered (not while a person is asked or there).
        note: a line of the chat under a message the queue holds ("" for none).
        survey: whether to ask how satisfied the customer is (closed, not yet answered).
    """

    text: str
    poll: bool
    person: bool = True
    note: str = ""
    survey: bool = False


class ChatService:
    """What the widget does, free of Gradio: sessions, views, feedback, handoff requests.

    Args:
        store: the conversation store.
        pipeline: the turn pipeline. Without one (a desk staffed only by people, or a
            test) handoffs and feedback go straight to the store and `reply` refuses.
        max_message_chars: `limits.max_message_chars`.
        session_expiry_s: `dialogue.session_expiry_minutes` in seconds.
        customer_key: `privacy.customer_key`, which signs the customer ids the site
            passes (without one, no id is taken).
    """

    def __init__(
        self,
        store: SqlConversationStore,
        pipeline: TurnPipeline | None,
        *,
        max_message_chars: int = DEFAULT_MAX_CHARS,
        session_expiry_s: float = DEFAULT_EXPIRY_S,
        customer_key: str | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.max_message_chars = max_message_chars
        self.session_expiry_s = session_expiry_s
        self.customer_key = customer_key
        self.locks = ConversationLocks()

    def conversation(
        self, token: str | None, query: Mapping[str, str] | None = None
    ) -> Conversation | None:
        """The conversation `token` names; None also where the widget's URL `query` says
        (signed) that the customer is someone else than the conversation's: a second
        customer on a shared browser starts their own and never sees the first's."""
        if not token or not isinstance(token, str) or len(token) > 256:
            return None
        conv = self.store.conversation_by_token(token)
        if conv is not None and query is not None and self.someone_else(conv, query):
            logger.info("widget conversation %s: another customer on its browser", conv.id)
            return None
        return conv

    def someone_else(self, conv: Conversation, query: Mapping[str, str]) -> bool:
        """Whether the site's signed customer in `query` is not `conv`'s customer."""
        if conv.customer_id is None:
            return False
        try:
            said = context_from_query(query, self.customer_key).customer_id
        except IdentityRefused:
            return False  # an id the site did not sign claims nothing
        return said is not None and said != conv.customer_id

    def admit(
        self, token: str | None, message: str, query: Mapping[str, str] | None = None
    ) -> tuple[Conversation | None, str]:
        """The front door: the conversation `token` names (None when it names none: the
        message starts one) and the message as it is stored. Raises `Refused` with the
        API's reason for a message the API refuses, or an expired session; nothing is
        stored then. A closed conversation takes messages (its page says so)."""
        text = accept_message(message, self.max_message_chars)
        conv = self.conversation(token, query)
        if conv is not None:
            check_session(conv, self.session_expiry_s, closed_ok=True)
        return conv, text

    def start(self) -> tuple[str, str]:
        conv, token = self.store.create_conversation(channel="web")
        logger.info("web conversation %s started", conv.id)
        return conv.id, token

    def identify(self, token: str | None, query: Mapping[str, str]) -> bool:
        """Store what the widget's URL `query` says of the customer on the conversation
        `token` names, where nothing was said before; returns whether anything was.

        A query the API would refuse (an unsigned or malformed id, a name without an
        id, a page that is no http(s) URL, a language that is no BCP-47 tag) stores
        nothing; the customer chats on, anonymous."""
        conv = self.conversation(token)
        if conv is None:
            return False
        try:
            context = context_from_query(query, self.customer_key)
        except IdentityRefused as exc:
            logger.warning("widget conversation %s: the site's customer refused: %s", conv.id, exc)
            return False
        if not context:
            return False
        return self.store.identify_customer(
            conv.id,
            customer_id=context.customer_id,
            customer_name=context.customer_name,
            page=context.page,
            language=context.language,
        )

    def agent_name(self, username: str) -> str:
        agent = self.store.get_agent(username)
        return agent.display_name if agent is not None else username

    def view(self, conversation_id: str) -> ChatView:
        """The conversation as the customer sees it; only the bot's own replies take
        thumbs (agents' messages and the bot's handoff notices are marked NO_FEEDBACK)."""
        names: dict[str, str] = {}

        def name(username: str) -> str:
            if username not in names:
                names[username] = self.agent_name(username)
            return names[username]

        turns = self.store.history(conversation_id)
        view = customer_view(turns, name)
        by_id = {int(t.id or 0): t for t in turns}
        for i, (message, turn_id) in enumerate(zip(view.messages, view.turn_ids, strict=True)):
            turn = by_id.get(turn_id)
            if turn is not None and (turn.role == "agent" or turn.kind == "handoff"):
                message["metadata"] = {"id": f"{NO_FEEDBACK}-{i}"}
        return view

    def status(self, conversation_id: str | None) -> Status:
        if conversation_id is None:
            return Status("", poll=False)
        handoff = self.store.active_handoff(conversation_id)
        if handoff is not None:
            return self._handoff_status(handoff)
        conv = self.store.get_conversation(conversation_id)
        last = last_handoff(self.store, conversation_id)
        if conv is not None and conv.status == "closed":
            answered = self.store.satisfaction(conversation_id) is not None
            return Status(CLOSED, poll=False, survey=last is not None and not answered)
        if last is not None and last.status == "resolved":
            return Status(BOT_IS_BACK, poll=False)
        return Status("", poll=False)

    def _handoff_status(self, handoff: Handoff) -> Status:
        if handoff.status == "claimed" and handoff.claimed_by:
            who = md_text(self.agent_name(handoff.claimed_by), line_start=False)
            text = f"You're talking to **{who}** from our support team."
            return Status(text, poll=True, person=False)
        place = queue_place(self.store, handoff)
        where = f" {place.sentence()}" if place is not None else ""
        return Status(
            f"Waiting for a person from our support team.{where} They will answer here; "
            "you can keep writing.",
            poll=True,
            person=False,
            note=f"Your message is saved for our support team.{where}",
        )

    def request_human(self, conversation_id: str) -> None:
        """Queue the conversation for a person, unless a person is already asked or there
        (a second press must not say "I'm passing you to a colleague" again)."""
        if self.store.active_handoff(conversation_id) is not None:
            return
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
        if turn.kind == "handoff":  # a notice, not an answer: it shows no thumbs
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

    def rate(self, conversation_id: str, score: int, comment: str | None) -> None:
        """Store the customer's answer to the satisfaction survey, with the agent who
        had the conversation last (None if none did)."""
        last = last_handoff(self.store, conversation_id)
        agent = last.claimed_by if last is not None else None
        text = (comment or "").strip()[:MAX_COMMENT_CHARS] or None
        self.store.record_satisfaction(conversation_id, score, text, agent_id=agent)
        logger.info("conversation %s rated %d", conversation_id, score)

    def reply(
        self, conversation_id: str, text: str, *, message_id: str | None = None
    ) -> Iterator[str | Reply]:
        """The bot's reply to `text`: text pieces as they are produced, then the `Reply`.
        A message sent again with its `message_id` (the page's retry) is stored and
        answered once: the retry gets the first copy's reply."""
        if self.pipeline is None:
            raise DeskbotError("this widget has no bot pipeline to answer with")
        yield from self.pipeline.handle_stream(conversation_id, text, message_id=message_id)


def options_for(reply: Reply) -> list[dict[str, str]]:
    """Clarification buttons under a reply (Gradio renders them as plain-text buttons)."""
    return [{"label": b, "value": b} for b in reply.buttons if b.strip()]


def storage_secret(name: str) -> str:
    # The browser encrypts the stored token with a secret it is sent in the page, so
    # this secret protects nothing; it only has to be the same in every process and
    # across restarts so that a reload after a deploy still finds the conversation.
    return hashlib.sha256(f"deskbot-widget:{name}".encode()).hexdigest()[:32]


def suggested_questions(sources: Sequence[Path], *, count: int = 4) -> list[str]:
    """The greeting's suggestions: the first `count` short FAQ questions of `sources`
    (document passages have none), in file order. A source that cannot be read is
    skipped (the bot's own start-up reports it)."""
    found: list[str] = []
    for path in sources:
        try:
            passages, _problems = read_source(path)
        except (KnowledgeError, OSError) as exc:
            logger.warning("no suggested questions from %s: %s", path, exc)
            continue
        for p in passages:
            question = " ".join(p.question.split())
            if question and len(question) <= MAX_SUGGESTION_CHARS and question not in found:
                found.append(question)
            if len(found) == count:
                return found
    return found
