"""The action step of a turn: the custom action a decision names, on the rasa-sdk
action server (`deskbot.bot.actions.client`), within the client's one deadline.

A refused call gets an apology; an unknown action, a timeout or a server that is down
hands the conversation to a person; an action may hand off itself (a `followup` event
naming `handoff_action`). `lookup` runs a read-only action whose slots and buttons the
policy words a confirmation with (`actions.confirm.*.slots_from`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deskbot.bot.actions.client import (
    ActionClient,
    ActionNotFound,
    ActionRejected,
    ActionResult,
    domain_for,
    tracker_for,
)
from deskbot.bot.core.errors import ComponentUnavailable
from deskbot.bot.core.metrics import ms_since
from deskbot.bot.core.slots import SLOT_PATTERNS
from deskbot.bot.core.types import IntentPrediction, Turn
from deskbot.bot.dialogue.policy import Decision, DialoguePolicy, DialogueState, HandoffReason
from deskbot.bot.dialogue.turn import Outcome, TurnSoFar

logger = logging.getLogger(__name__)

__all__ = ["ACTION_REJECTED_TEXT", "ActionCall", "ActionStep"]

ACTION_REJECTED_TEXT = (
    "Sorry, I couldn't do that just now. Could you tell me again what you need, or ask for a "
    "colleague?"
)


@dataclass(frozen=True)
class ActionCall:
    """One action to run: the turn, what the classifier said, the policy's decision (its
    `action` and state), the conversation so far and the intents the bot knows."""

    turn: TurnSoFar
    prediction: IntentPrediction | None
    decision: Decision
    history: Sequence[Turn]
    labels: Sequence[str]


class ActionStep:
    """Runs a decision's action and turns its result into the turn's outcome.

    Args:
        actions: the action client; None hands off every turn that needs an action.
        policy: applies the action's slot events and words the handoffs.
        on_failure: called with the conversation id when the step falls back.
    """

    def __init__(
        self,
        actions: ActionClient | None,
        policy: DialoguePolicy,
        on_failure: Callable[[str], None],
    ) -> None:
        self.actions = actions
        self.policy = policy
        self.on_failure = on_failure

    def prepare(self, call: ActionCall) -> Decision:
        """A `prepare` decision's next one: its read-only action looks up what the
        confirmation names (the customer's cards), then the policy words the question."""
        result = self.lookup(call)
        if result is None:
            return self.policy.after_lookup(call.decision, None, [], [])
        return self.policy.after_lookup(
            call.decision, list(result.events), result.texts, result.buttons
        )

    def lookup(self, call: ActionCall) -> ActionResult | None:
        """The result of the decision's read-only action, or None when it failed (or
        there is no action server): nothing is offered then."""
        turn, action = call.turn, call.decision.action
        assert action is not None
        if self.actions is None:
            self.on_failure(turn.conversation_id)
            return None
        t = time.perf_counter()
        try:
            return self.actions.run(action, *self._request(call))
        except (ActionRejected, ActionNotFound, ComponentUnavailable) as exc:
            logger.error(
                "action %s failed (conversation %s): %s", action, turn.conversation_id, exc
            )
            self.on_failure(turn.conversation_id)
            return None
        finally:
            turn.latency["lookup"] = ms_since(t)

    def _request(self, call: ActionCall) -> tuple[dict[str, Any], dict[str, Any]]:
        """The tracker and the domain the action server is sent."""
        slot_names = sorted(set(SLOT_PATTERNS) | set(call.decision.state.slots))
        tracker = tracker_for(
            call.turn.conversation_id,
            slots=call.decision.state.slots,
            text=call.turn.text,
            prediction=call.prediction,
            history=list(call.history),
            slot_names=slot_names,
        )
        domain = domain_for(
            sorted(call.labels),
            sorted(set(self.policy.rules.intent_actions.values())),
            slot_names,
        )
        return tracker, domain

    def run(self, call: ActionCall) -> Outcome:
        """The outcome of the decision's action (the step's latency goes on the turn)."""
        turn, decision = call.turn, call.decision
        action, state, conversation_id = decision.action, decision.state, turn.conversation_id
        assert action is not None
        if self.actions is None:
            self.on_failure(conversation_id)
            return self._handoff_outcome(state, "action_unavailable", action)
        t = time.perf_counter()
        try:
            result = self.actions.run(action, *self._request(call))
        except ActionRejected:
            logger.warning("action %s rejected the call (conversation %s)", action, conversation_id)
            self.on_failure(conversation_id)
            return Outcome(text=ACTION_REJECTED_TEXT, kind="fallback", state=state, action=action)
        except (ActionNotFound, ComponentUnavailable) as exc:
            logger.error("action %s failed (conversation %s): %s", action, conversation_id, exc)
            self.on_failure(conversation_id)
            return self._handoff_outcome(state, "action_unavailable", action)
        finally:
            turn.latency["action"] = ms_since(t)
        state = self.policy.after_action(state, list(result.events))
        texts = result.texts
        buttons = tuple(str(b.get("title")) for b in result.buttons if b.get("title"))
        if self.policy.rules.handoff_action in result.followups():
            outcome = self._handoff_outcome(state, "action", action)
            outcome.text = "\n\n".join([*texts, outcome.text])
            return outcome
        return Outcome(
            text="\n\n".join(texts) or "Done.",
            kind="action",
            state=state,
            buttons=buttons,
            action=action,
        )

    def _handoff_outcome(
        self, state: DialogueState, reason: HandoffReason, action: str | None
    ) -> Outcome:
        decision = self.policy.handoff(state, reason)
        return Outcome(
            text=decision.text,
            kind="handoff",
            state=decision.state,
            handoff_reason=reason,
            action=action,
        )
