"""A turn's records: the customer's message stored first, once however often it is
sent, and the reply stored with what the bot knew; a retried message answered from them.

**Every accepted message is stored before it is answered** (`TurnRecords.message`), so
no failure later in the turn loses it; the reply is stored with the intent, passages,
model versions, latencies and dialogue state in one transaction (`TurnRecords.reply`).

**Retries.** A customer message may carry the client's id for it (the API's
`Idempotency-Key`, a Rasa message id, the widget's own id). A client retries when it did
not see the answer: a 503 with Retry-After, a dropped mobile connection, a server
killed mid-turn. Whatever happened, the retry gets what the first copy got and makes no
second turn:

- the first copy was answered: the stored reply, as it was sent (text, kind, sources,
  buttons, action), and nothing is written;
- the first copy's turn is still running (in this process, or in another replica): the
  retry waits for its reply, up to the turn's whole budget;
- the first copy was stored but never answered (its process died): the retry answers
  that stored message, once; it is not stored again;
- the first copy went to a person (the conversation was handed off): the retry is
  silent too.

Ids are per conversation and go with it (erasure, retention). The same id with another
text is refused (`MessageIdReused`): it is a client bug, not a retry.

Example:
    >>> stored = records.earlier(conversation.id, "m-1", "where is my card?")  # doctest: +SKIP
    >>> records.reply_of(conversation, stored).text                           # doctest: +SKIP
    'Cards are posted within 2 working days...'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.core.metrics import BotMetrics, ms_since
from deskbot.bot.core.types import IntentPrediction, Passage, Reply
from deskbot.bot.dialogue.decision import Message
from deskbot.bot.dialogue.turn import Outcome, TurnSoFar
from deskbot.bot.store import Conversation, SqlConversationStore, TurnRecord

__all__ = [
    "HUMAN_SILENT_TEXT",
    "MessageIdReused",
    "TurnRecords",
    "replay",
    "reply_fields",
    "stored_reply",
]

logger = logging.getLogger(__name__)

# The bot's reply while a person owns the conversation: none.
HUMAN_SILENT_TEXT = ""
# How often a retry looks for the reply of a turn another process is running.
POLL_S = 0.05


class MessageIdReused(DeskbotError):
    """A message id already names another message of the conversation."""


def reply_fields(
    citations: Sequence[str],
    buttons: Sequence[str],
    action: str | None,
    handoff_reason: str | None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a stored bot turn keeps of a reply besides its text, kind and passages
    (`context`: how the message was read in its thread, `Reading.explain`)."""
    fields: dict[str, Any] = {
        "citations": list(citations),
        "buttons": list(buttons),
        "action": action,
        "handoff_reason": handoff_reason,
        "context": context,
    }
    return {k: v for k, v in fields.items() if v}


def stored_reply(turn: TurnRecord) -> Reply:
    """The reply a stored bot turn was, as the API sent it."""
    extra = turn.reply or {}
    intent = None
    if turn.intent is not None:
        confidence = turn.confidence if turn.confidence is not None else 1.0
        intent = IntentPrediction(turn.intent, confidence, ((turn.intent, confidence),))
    return Reply(
        text=turn.text,
        kind=turn.kind or "faq",
        intent=intent,
        passages=tuple(Passage(**p) for p in turn.passages or ()),
        citations=tuple(extra.get("citations", ())),
        buttons=tuple(extra.get("buttons", ())),
        latency_ms=dict(turn.latency_ms or {}),
        model_versions=dict(turn.model_versions or {}),
        turn_id=turn.id,
        handoff_reason=extra.get("handoff_reason"),
        action=extra.get("action"),
    )


class TurnRecords:
    """Stores a turn's message and reply, and answers retries from them (see the
    module docstring).

    Args:
        store: where messages and replies are.
        metrics: Prometheus counters; None records none.
        budget_s: the longest a turn runs (all its deadlines): an earlier copy older
            than this without a reply died with its process.
    """

    def __init__(
        self, store: SqlConversationStore, metrics: BotMetrics | None, budget_s: float
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.budget_s = budget_s
        self._running: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()

    def message(self, turn: TurnSoFar) -> TurnRecord | None:
        """The customer's message, stored; None when a copy sent at the same moment was
        stored first (its turn answers it)."""
        if turn.stored is not None:
            return turn.stored  # a retry of a message stored before a failure
        t = time.perf_counter()
        if turn.message_id is None:
            user_turn = self.store.append_turn(turn.conversation_id, "user", turn.text)
        else:
            user_turn, new = self.store.append_message(
                turn.conversation_id, turn.text, turn.message_id
            )
            if not new:
                turn.stored = user_turn
                return None
            turn.running = self.started(turn.conversation_id, turn.message_id)
        turn.latency["store_user"] = ms_since(t)
        return user_turn

    def waiting_for_agent(self, turn: TurnSoFar) -> Reply:
        """A person owns the conversation: the message waits for them, the bot stays silent."""
        if turn.stored is not None:
            pass  # a retry of a message already waiting for them
        elif turn.message_id is not None:
            self.store.append_message(turn.conversation_id, turn.text, turn.message_id)
        else:
            self.store.append_turn(turn.conversation_id, "user", turn.text)
        turn.latency["store_user"] = turn.latency["total"] = ms_since(turn.started)
        if self.metrics is not None:
            self.metrics.turn("handoff", turn.latency)
        return Reply(text=HUMAN_SILENT_TEXT, kind="handoff", latency_ms=turn.latency)

    def reply(
        self,
        turn: TurnSoFar,
        user_turn: TurnRecord,
        message: Message,
        outcome: Outcome,
        versions: dict[str, str],
    ) -> Reply:
        """Store the bot's side of the turn (with what the bot learnt about the message
        and the dialogue state, in one transaction) and return it as the reply."""
        turn.latency["total"] = ms_since(turn.started)
        versions = dict(versions)
        if outcome.generator:
            versions["generator"] = outcome.generator
        prediction = message.prediction
        user_values: dict[str, str | float] = {}
        if prediction is not None:
            user_values = {"intent": prediction.intent, "confidence": prediction.confidence}
        elif message.smalltalk is not None:
            user_values = {"intent": f"smalltalk:{message.smalltalk}"}
        bot_turn = self.store.record_bot_turn(
            turn.conversation_id,
            outcome.text,
            user_turn_id=user_turn.id,
            user_values=dict(user_values),
            state=outcome.state.to_json(),
            intent=prediction.intent if prediction else None,
            confidence=prediction.confidence if prediction else None,
            kind=outcome.kind,
            passages=[asdict(p) for p in outcome.passages],
            model_versions=versions,
            latency_ms=turn.latency,
            reply=reply_fields(
                outcome.citations,
                outcome.buttons,
                outcome.action,
                outcome.handoff_reason,
                message.reading.explain() if message.reading is not None else None,
            )
            or None,
        )
        if self.metrics is not None:
            self.metrics.turn(outcome.kind, turn.latency)
        logger.info(
            "turn %s/%s: intent=%s conf=%.3f kind=%s %.1fms",
            turn.conversation_id,
            bot_turn.seq,
            prediction.intent if prediction else message.smalltalk,
            prediction.confidence if prediction else 0.0,
            outcome.kind,
            turn.latency["total"],
        )
        return Reply(
            text=outcome.text,
            kind=outcome.kind,
            intent=prediction,
            passages=outcome.passages,
            citations=outcome.citations,
            buttons=outcome.buttons,
            latency_ms=turn.latency,
            model_versions=versions,
            turn_id=bot_turn.id,
            handoff_reason=outcome.handoff_reason,
            action=outcome.action,
        )

    def earlier(self, conversation_id: str, message_id: str, text: str) -> TurnRecord | None:
        """The stored copy of message `message_id`, if one was sent before."""
        stored = self.store.message_turn(conversation_id, message_id)
        if stored is not None and stored.text != text:
            raise MessageIdReused(
                f"message id {message_id!r} was already used for another message of this "
                "conversation; send a new id with each new message"
            )
        return stored

    def started(self, conversation_id: str, message_id: str) -> threading.Event:
        """Marks the turn of a newly stored `message_id` as running in this process
        (its retries here wait for it); `finished` with the event it returns ends that."""
        done = threading.Event()
        with self._lock:
            self._running[(conversation_id, message_id)] = done
        return done

    def finished(self, conversation_id: str, message_id: str, done: threading.Event) -> None:
        done.set()
        with self._lock:
            if self._running.get((conversation_id, message_id)) is done:
                del self._running[(conversation_id, message_id)]

    def reply_of(self, conversation: Conversation, stored: TurnRecord) -> Reply | None:
        """The reply the earlier copy got, waiting while its turn runs; None when that
        turn died before answering (the caller answers the stored message now)."""
        assert stored.id is not None and stored.message_id is not None
        key = (conversation.id, stored.message_id)
        deadline = time.monotonic() + self.budget_s
        while True:
            answered = self.store.reply_to(conversation.id, stored.id)
            if answered is not None:
                return stored_reply(answered)
            with self._lock:
                running = self._running.get(key)
            if running is not None:
                running.wait(max(0.0, deadline - time.monotonic()))
                if self.store.reply_to(conversation.id, stored.id) is None:
                    return self._unanswered(conversation)
                continue
            if age_s(stored.created_at) > self.budget_s or time.monotonic() > deadline:
                return self._unanswered(conversation)
            time.sleep(POLL_S)  # another replica may be running it

    def _unanswered(self, conversation: Conversation) -> Reply | None:
        """No reply came: silent when a person has the conversation, else answer now."""
        now = self.store.get_conversation(conversation.id)
        if now is not None and now.status == "handoff":
            return Reply(text="", kind="handoff")
        return None


def replay(reply: Reply) -> Iterator[str | Reply]:
    """A retried message's reply, as a turn yields it: the text as one piece, then it."""
    if reply.text:
        yield reply.text
    yield reply


def age_s(when: datetime | None) -> float:
    """Seconds since `when` (a naive time is UTC, as the store writes it; None: 0)."""
    if when is None:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()
