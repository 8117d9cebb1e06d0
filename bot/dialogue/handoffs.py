"""A conversation's handoffs to a person, and the feedback that can lead to one.

The policy decides (`DialoguePolicy.on_negative`, `handoff`); this module stores the
queue entry, the bot's handoff message and the dialogue state.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.core.metrics import BotMetrics
from deskbot.bot.core.types import Reply
from deskbot.bot.dialogue.policy import Decision, DialoguePolicy, DialogueState, HandoffReason
from deskbot.bot.store import Handoff, SqlConversationStore
from deskbot.bot.store.audit import AuditEntry

logger = logging.getLogger(__name__)

__all__ = ["ConversationHandoffs", "UnknownTurn"]


class UnknownTurn(DeskbotError):
    """No such bot turn in this conversation (feedback on someone else's turn, say)."""


class ConversationHandoffs:
    """Opens and closes handoffs, and records feedback on the bot's replies.

    Args:
        store: the conversations, their turns, states and handoffs.
        policy: decides when feedback hands off, and words the message.
        metrics: Prometheus counters; None records none.
    """

    def __init__(
        self, store: SqlConversationStore, policy: DialoguePolicy, metrics: BotMetrics | None
    ) -> None:
        self.store = store
        self.policy = policy
        self.metrics = metrics

    def feedback(self, conversation_id: str, turn_id: int, value: int) -> Reply | None:
        """Record the customer's thumbs up (+1) or down (-1) on one of the bot's replies.

        Repeated negative feedback hands the conversation to a person: the handoff
        message is returned (and stored) then; otherwise None.

        Raises:
            UnknownTurn: `turn_id` is not a bot turn of this conversation.
            ValueError: `value` is not +1 or -1.
        """
        if value not in (-1, 1):
            raise ValueError("feedback is +1 or -1")
        turn = self.store.conversation_turn(conversation_id, turn_id)
        if turn is None or turn.role != "bot" or not turn.text:
            raise UnknownTurn(f"no bot reply {turn_id} in this conversation")
        self.store.set_feedback(turn_id, value)
        if self.metrics is not None:
            self.metrics.feedback.labels(value="up" if value > 0 else "down").inc()
        state = DialogueState.from_json(self.store.dialogue_state(conversation_id))
        if value > 0:
            self.store.save_dialogue_state(
                conversation_id, replace(state, negative_streak=0).to_json()
            )
            return None
        conv = self.store.get_conversation(conversation_id)
        if conv is not None and conv.status == "handoff":
            return None
        decision = self.policy.on_negative(state)
        if decision.route != "handoff":
            self.store.save_dialogue_state(conversation_id, decision.state.to_json())
            return None
        return self._store(
            conversation_id, decision.handoff_reason or "negative_feedback", decision
        )

    def request(self, conversation_id: str) -> tuple[Handoff, Reply]:
        """The customer asked for a person (a button, not a message): queue the conversation."""
        state = DialogueState.from_json(self.store.dialogue_state(conversation_id))
        decision = self.policy.handoff(state, "customer_request")
        reply = self._store(conversation_id, "customer_request", decision)
        handoff = self.store.active_handoff(conversation_id)
        assert handoff is not None
        return handoff, reply

    def hand_back(self, handoff_id: int, *, audit: AuditEntry | None = None) -> None:
        """An agent gives the conversation back to the bot; its fallback counters restart
        (`audit` is written with the handoff's change)."""
        handoff = self.store.get_handoff(handoff_id)
        if handoff is None:
            raise DeskbotError(f"no handoff {handoff_id}")
        self.store.resolve_handoff(handoff_id, back_to_bot=True, audit=audit)
        state = DialogueState.from_json(self.store.dialogue_state(handoff.conversation_id))
        self.store.save_dialogue_state(
            handoff.conversation_id,
            replace(state.settled(), form=None, form_intent=None, form_attempts=0).to_json(),
        )

    def _store(self, conversation_id: str, reason: HandoffReason, decision: Decision) -> Reply:
        self.open(conversation_id, reason, None)
        turn = self.store.record_bot_turn(
            conversation_id, decision.text, state=decision.state.to_json(), kind="handoff"
        )
        return Reply(text=decision.text, kind="handoff", turn_id=turn.id, handoff_reason=reason)

    def open(self, conversation_id: str, reason: str, intent: str | None) -> None:
        """Queue the conversation in the team its reason or last intent routes to
        (`TeamsConfig.team_for`); `intent` is this turn's, if it has one."""
        routed_by = intent or self._last_intent(conversation_id)
        team = self.policy.rules.teams.team_for(reason, routed_by)
        handoff = self.store.open_handoff(conversation_id, reason, intent=intent, team=team)
        if self.metrics is not None:
            self.metrics.handoff(reason)
        logger.info(
            "conversation %s handed off (handoff %s, reason %s, team %s)",
            conversation_id,
            handoff.id,
            reason,
            handoff.team,
        )

    def _last_intent(self, conversation_id: str) -> str | None:
        """The intent of the customer's latest classified message (feedback and the
        "talk to a person" button hand off outside a turn)."""
        history = self.store.history(conversation_id, limit=20)
        return next((t.intent for t in reversed(history) if t.role == "user" and t.intent), None)
