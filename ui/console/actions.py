"""What an agent can do in the console, free of Gradio: queue, claim, reply, resolve, label.

Every method takes the acting agent; the console takes that agent from the session
cookie, never from what the browser sends.

Example:
    >>> svc = ConsoleService(store, lambda: classifier.labels)   # doctest: +SKIP
    >>> svc.claim(alice, handoff_id)                              # doctest: +SKIP
    'You claimed conversation #3; the customer sees your name.'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deskbot.bot.core.types import OUT_OF_SCOPE
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.audit import (
    AGENT_REPLIED,
    HANDED_BACK,
    HANDOFF_CLAIMED,
    RESOLVED,
    TURN_LABELLED,
    AuditEntry,
)
from deskbot.bot.store.models import Agent, Handoff, TurnRecord
from deskbot.ui.console.teams import refusal, teams_of
from deskbot.ui.render import agent_transcript

if TYPE_CHECKING:  # the pipeline module loads the models' libraries; actions need none
    from deskbot.bot.dialogue.pipeline import TurnPipeline

logger = logging.getLogger(__name__)

MAX_REPLY_CHARS = 4_000
_NEW_INTENT = re.compile(r"[a-z][a-z0-9_]{1,63}")
# What the agent sees for the out-of-scope label. Messages labelled so become `oos`
# training examples: the next model refuses what lies nearer to them than to any intent
# (benchmarks/quality/intent_oos_scores.py measures what a few examples a topic give).
OUT_OF_SCOPE_CHOICE = "Out of scope: a topic the bot must not answer"
_RESERVED = {OUT_OF_SCOPE, "oos"}
# Why the bot handed a conversation over, in words (the store keeps the codes, which
# are `deskbot.bot.dialogue.policy.HandoffReason`).
REASONS = {
    "customer_request": "Customer asked for a person",
    "out_of_scope": "Topic the bot must not answer",
    "negative_feedback": "Customer unhappy with the answers",
    "unclear": "Bot could not understand",
    "action": "Task needs a person",
    "action_unavailable": "A task the bot started failed",
    "form_failed": "Customer could not complete a form",
}
# The turns before a reviewed bot turn that the review shows with it.
REVIEW_CONTEXT_TURNS = 6
# The queue table's columns (`QueueEntry.row`).
QUEUE_HEADERS = [
    "#",
    "new",
    "status",
    "team",
    "reason",
    "waiting",
    "predicted intent",
    "last message",
]


def reason_words(code: str) -> str:
    """A handoff reason for people: 'customer_request' -> 'Customer asked for a person'."""
    return REASONS.get(code) or code.replace("_", " ").capitalize()


class ConsoleError(Exception):
    """An agent's action cannot be done; the message is shown to the agent."""


def _aware(t: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; the store writes UTC.
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class QueueEntry:
    """An open handoff as the queue shows it: what the customer last wrote, the predicted
    intent, and the ids of the customer's turns (what is new since the agent looked)."""

    handoff: Handoff
    last_text: str
    intent: str
    customer_turns: tuple[int, ...]

    @property
    def id(self) -> int:
        return int(self.handoff.id or 0)

    def row(self, marker: str = "") -> list[Any]:
        """The queue table's row: id, unread marker, status, team, reason, wait, intent,
        text."""
        h = self.handoff
        status = f"claimed by {h.claimed_by}" if h.status == "claimed" else h.status
        # A claimed conversation waited until it was claimed; that clock has stopped.
        end = h.claimed_at if h.status == "claimed" and h.claimed_at else None
        return [
            h.id,
            marker,
            status,
            h.team,
            reason_words(h.reason),
            waited(h.created_at, _aware(end) if end else None),
            self.intent,
            self.last_text[:120],
        ]


def _audit(agent: Agent, action: str, h: Handoff, address: str | None) -> AuditEntry:
    """The audit row of `agent`'s `action` on handoff `h` (no message text)."""
    return AuditEntry(agent.username, action, "handoff", str(h.id), h.conversation_id, address)


def waited(since: datetime, now: datetime | None = None) -> str:
    """A wait time for people: '45s', '12m 05s', '3h 10m'."""
    seconds = max(0, int(((now or datetime.now(UTC)) - _aware(since)).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class ConsoleService:
    """What an agent can do, free of Gradio (each method takes the acting agent).

    Args:
        store: the conversation store.
        labels: returns the live intent model's labels (it can change while serving).
        pipeline: the turn pipeline, which takes a conversation handed back to the bot
            (and restarts its fallback counters); without one the store is told directly.
    """

    def __init__(
        self,
        store: SqlConversationStore,
        labels: Callable[[], Sequence[str]],
        pipeline: TurnPipeline | None = None,
    ) -> None:
        self.store = store
        self.labels = labels
        self.pipeline = pipeline

    # -- reading ---------------------------------------------------------------------------

    def agent_name(self, username: str) -> str:
        agent = self.store.get_agent(username)
        return agent.display_name if agent is not None else username

    def intents(self) -> list[str]:
        """The live model's intent labels."""
        return sorted(self.labels())

    def intent_choices(self) -> list[tuple[str, str]]:
        """What an agent can pick when correcting: (shown, stored), out of scope first."""
        return [(OUT_OF_SCOPE_CHOICE, OUT_OF_SCOPE)] + [(i, i) for i in self.intents()]

    def open_handoffs(self, agent: Agent) -> list[Handoff]:
        """The queued and claimed handoffs of `agent`'s teams (an admin's: all)."""
        return self.store.handoff_queue(
            statuses=("queued", "claimed"), teams=teams_of(self.store, agent)
        )

    def queue_entries(self, handoffs: Sequence[Handoff]) -> list[QueueEntry]:
        entries = []
        turns = self.store.queue_customer_turns({h.conversation_id for h in handoffs})
        for h in handoffs:
            customer = turns.get(h.conversation_id, [])
            intent = h.intent or next((t.intent for t in reversed(customer) if t.intent), "")
            entries.append(
                QueueEntry(
                    handoff=h,
                    last_text=customer[-1].text if customer else "",
                    intent=intent or "",
                    customer_turns=tuple(t.id for t in customer),
                )
            )
        return entries

    def queue_rows(self, handoffs: Sequence[Handoff]) -> list[list[Any]]:
        return [entry.row() for entry in self.queue_entries(handoffs)]

    def handoff(self, handoff_id: int | None) -> Handoff:
        h = self.store.get_handoff(int(handoff_id)) if handoff_id else None
        if h is None:
            raise ConsoleError("Pick a conversation from the queue first.")
        return h

    def visible(self, agent: Agent, handoff_id: int | None) -> Handoff:
        """The handoff, if it is of one of `agent`'s teams (an admin sees all)."""
        h = self.handoff(handoff_id)
        refused = refusal(self.store, agent, h.team, f"Conversation #{h.id}")
        if refused is not None:
            raise ConsoleError(refused)
        return h

    def transcript(
        self, agent: Agent, handoff_id: int
    ) -> tuple[list[dict[str, Any]], list[TurnRecord]]:
        """The conversation's messages with the bot's intents and passages, and its bot turns."""
        h = self.visible(agent, handoff_id)
        turns = self.store.history(h.conversation_id)
        ids = [int(t.id) for t in turns if t.id is not None]
        labelled = {label.turn_id for label in self.store.labels_for(ids)}
        names: dict[str, str] = {}

        def name(u: str) -> str:
            return names.setdefault(u, self.agent_name(u))

        return agent_transcript(turns, name, labelled), [t for t in turns if t.role == "bot"]

    def review(self, which: str, agent: Agent, *, limit: int = 25) -> list[list[Any]]:
        """Rows of the active-learning queue: 'least_confident' or 'thumbs_down' bot turns,
        of the conversations `agent`'s teams may read."""
        teams = teams_of(self.store, agent)
        if which == "least_confident":
            turns = self.store.least_confident_turns(limit=limit, teams=teams)
        else:
            turns = self.store.thumbs_down_turns(limit=limit, teams=teams)
        rows = []
        for t in turns:
            asked = self.customer_text(t)
            rows.append(
                [
                    t.id,
                    round(t.confidence, 3) if t.confidence is not None else None,
                    t.intent or "",
                    asked[:160],
                    t.text[:160],
                ]
            )
        return rows

    def customer_text(self, bot_turn: TurnRecord) -> str:
        """What the customer wrote just before this bot turn."""
        earlier = [t for t in self.turns_before(bot_turn) if t.role == "user"]
        return earlier[-1].text if earlier else ""

    def turns_before(
        self, bot_turn: TurnRecord, *, limit: int = REVIEW_CONTEXT_TURNS
    ) -> list[TurnRecord]:
        """The conversation's last `limit` turns before this one, oldest first."""
        earlier = [t for t in self.store.history(bot_turn.conversation_id) if t.seq < bot_turn.seq]
        return earlier[-limit:]

    # -- acting ----------------------------------------------------------------------------

    def claim(self, agent: Agent, handoff_id: int, *, address: str | None = None) -> str:
        """Claim the handoff for `agent` (from `address`: the audit log's)."""
        h = self.visible(agent, handoff_id)
        if h.status == "claimed" and h.claimed_by == agent.username:
            return f"You already have conversation #{h.id}."
        audit = _audit(agent, HANDOFF_CLAIMED, h, address)
        # The team checked above must still be the handoff's when the claim is written.
        if not self.store.claim_handoff(int(h.id or 0), agent.username, team=h.team, audit=audit):
            now = self.store.get_handoff(int(h.id or 0))
            if now is not None and now.team != h.team:
                raise ConsoleError(f"Conversation #{h.id} moved to team {now.team!r}; look again.")
            who = now.claimed_by if now is not None and now.claimed_by else "someone else"
            raise ConsoleError(f"Conversation #{h.id} was already claimed by {who}.")
        logger.info("handoff %s claimed by %s", h.id, agent.username)
        return f"You claimed conversation #{h.id}; the customer sees your name."

    def _owned(self, agent: Agent, handoff_id: int) -> Handoff:
        h = self.visible(agent, handoff_id)
        if h.status != "claimed" or (h.claimed_by != agent.username and agent.role != "admin"):
            raise ConsoleError(f"Claim conversation #{h.id} before answering or closing it.")
        return h

    def send(self, agent: Agent, handoff_id: int, text: str, *, address: str | None = None) -> str:
        text = text.strip()
        if not text:
            raise ConsoleError("Write a reply first.")
        if len(text) > MAX_REPLY_CHARS:
            raise ConsoleError(f"Replies are at most {MAX_REPLY_CHARS} characters.")
        h = self._owned(agent, handoff_id)
        self.store.append_turn(
            h.conversation_id,
            "agent",
            text,
            author=agent.username,
            audit=_audit(agent, AGENT_REPLIED, h, address),
        )
        logger.info("agent %s replied in conversation %s", agent.username, h.conversation_id)
        return "Sent."

    def close(
        self, agent: Agent, handoff_id: int, *, back_to_bot: bool, address: str | None = None
    ) -> str:
        h = self._owned(agent, handoff_id)
        audit = _audit(agent, HANDED_BACK if back_to_bot else RESOLVED, h, address)
        if back_to_bot and self.pipeline is not None:
            self.pipeline.hand_back(int(h.id or 0), audit=audit)
        else:
            self.store.resolve_handoff(int(h.id or 0), back_to_bot=back_to_bot, audit=audit)
        logger.info("handoff %s resolved by %s (back_to_bot=%s)", h.id, agent.username, back_to_bot)
        if back_to_bot:
            return f"Conversation #{h.id} is back with the bot."
        return f"Conversation #{h.id} is resolved and closed."

    def label(
        self,
        agent: Agent,
        turn_id: int | None,
        *,
        intent: str | None,
        new_intent: str | None,
        answer_wrong: bool,
        correct_answer: str | None,
        address: str | None = None,
    ) -> str:
        """Store an agent's correction of a bot turn (training data for the nightly job)."""
        turn = self.store.get_turn(int(turn_id)) if turn_id else None
        if turn is None or turn.role != "bot":
            raise ConsoleError("Pick a bot turn to label.")
        new = "_".join((new_intent or "").strip().lower().split())
        if new and not _NEW_INTENT.fullmatch(new):
            raise ConsoleError(
                "A new intent is 2 to 64 letters, digits or underscores, starting with a "
                "letter, e.g. 'card_delivery_address'."
            )
        if new in _RESERVED:
            raise ConsoleError(f"For out of scope, pick {OUT_OF_SCOPE_CHOICE!r} in the list.")
        if intent and intent != OUT_OF_SCOPE and intent not in self.intents():
            raise ConsoleError(f"{intent!r} is not one of the model's intents; type it as new.")
        chosen = new or intent or None
        answer = (correct_answer or "").strip() or None
        if answer is not None and len(answer) > MAX_REPLY_CHARS:
            raise ConsoleError(f"The right answer is at most {MAX_REPLY_CHARS} characters.")
        if chosen is None and not answer_wrong:
            raise ConsoleError("Choose the right intent, or mark the answer wrong.")
        if answer_wrong and answer is None:
            raise ConsoleError("Write the right answer for a wrong one.")
        self.store.add_label(
            int(turn.id or 0),
            agent.username,
            intent=chosen,
            answer_wrong=answer_wrong,
            correct_answer=answer if answer_wrong else None,
            note="new intent" if new else None,
            audit=AuditEntry(
                agent.username,
                TURN_LABELLED,
                "turn",
                str(turn.id),
                turn.conversation_id,
                address,
                # The label, never the right answer's text (it may quote the customer).
                f"intent={chosen or '-'} answer_wrong={answer_wrong}",
            ),
        )
        logger.info("turn %s labelled by %s", turn.id, agent.username)
        return f"Saved the label of turn #{turn.id}."
