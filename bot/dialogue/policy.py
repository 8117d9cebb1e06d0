"""The dialogue policy: what the bot does with one message, given the conversation so far.

The policy is plain rules over a small `DialogueState`, so every decision can be
read, tested and explained to an operator:

- asking for a person, or `max_negative_feedback` "that didn't help"s in a row, opens a
  **handoff**; so do `max_out_of_scope` out-of-scope messages in a row and an action
  that needs an agent (see the pipeline);
- greetings, thanks and goodbyes get a short human answer;
- a confident intent mapped to an action runs it, after a short form has collected
  the slots the action needs (asked one at a time, validated, and abandoned when the
  customer clearly changes the subject);
- a confident FAQ intent is answered from the knowledge base;
- a low-confidence intent gets a clarifying question with the two best intents as
  buttons; then a request to rephrase; then a person (Rasa's two-stage fallback).

Example:
    >>> policy = DialoguePolicy(PolicySettings(intent_actions={"lost_or_stolen_card": "action_freeze_card"}))
    >>> d = policy.decide(DialogueState(), text="I lost my card", smalltalk=None,
    ...                   prediction=IntentPrediction("lost_or_stolen_card", 0.93))
    >>> d.route, d.action
    ('action', 'action_freeze_card')
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from deskbot.bot.core.slots import extract_slots, slot_prompt
from deskbot.bot.core.types import IntentPrediction
from deskbot.bot.nlu.smalltalk import SmallTalk

__all__ = [
    "BUTTON_HUMAN",
    "BUTTON_OTHER",
    "Decision",
    "DialoguePolicy",
    "DialogueState",
    "HandoffReason",
    "PolicySettings",
    "intent_title",
]

Route = Literal["answer", "action", "ask_slot", "clarify", "handoff", "smalltalk", "out_of_scope"]
HandoffReason = Literal[
    "customer_request",
    "out_of_scope",
    "negative_feedback",
    "unclear",
    "action",
    "action_unavailable",
    "form_failed",
]

BUTTON_OTHER = "Something else"
BUTTON_HUMAN = "Talk to a person"


@dataclass(frozen=True)
class DialogueState:
    """What the bot remembers of one conversation between turns (stored as JSON).

    Attributes:
        slots: values read from the conversation (order number, e-mail, amount).
        form: the action whose slots are being collected, if any.
        form_intent: the intent that started the form.
        form_attempts: replies in a row that held no value for the asked slot.
        offered: intents offered as buttons by the last clarifying question.
        oos_streak: out-of-scope messages in a row.
        clarify_streak: clarifying questions in a row.
        negative_streak: negative feedback in a row.
    """

    slots: dict[str, str] = field(default_factory=dict)
    form: str | None = None
    form_intent: str | None = None
    form_attempts: int = 0
    offered: tuple[str, ...] = ()
    oos_streak: int = 0
    clarify_streak: int = 0
    negative_streak: int = 0

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["offered"] = list(self.offered)
        return d

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> DialogueState:
        """Read a stored state; unknown or malformed keys are dropped, not fatal."""
        if not raw:
            return cls()
        try:
            slots = {str(k): str(v) for k, v in dict(raw.get("slots") or {}).items()}
            form, form_intent = raw.get("form"), raw.get("form_intent")
            if not all(v is None or isinstance(v, str) for v in (form, form_intent)):
                raise TypeError("form must be a string")
            counters = {
                name: int(raw.get(name) or 0)
                for name in ("form_attempts", "oos_streak", "clarify_streak", "negative_streak")
            }
            return cls(
                slots=slots,
                form=form,
                form_intent=form_intent,
                offered=tuple(str(i) for i in raw.get("offered") or ()),
                **counters,
            )
        except (TypeError, ValueError):
            return cls()

    def settled(self) -> DialogueState:
        """The state after the bot helped: the fallback counters start again."""
        return replace(self, offered=(), oos_streak=0, clarify_streak=0, negative_streak=0)


@dataclass(frozen=True)
class PolicySettings:
    """The policy's configuration (from the `actions` and `dialogue` config sections)."""

    intent_actions: Mapping[str, str] = field(default_factory=dict)
    required_slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    clarify_below: float = 0.5
    max_out_of_scope: int = 2
    max_clarifications: int = 2
    max_negative_feedback: int = 2
    form_max_attempts: int = 2
    bot_name: str = "our"


@dataclass(frozen=True)
class Decision:
    """What to do with one message.

    `route` says which step runs next: `answer` (retrieve and answer from the FAQ),
    `action` (call `action`), or one of the routes that reply with `text` directly.
    """

    route: Route
    state: DialogueState
    text: str = ""
    buttons: tuple[str, ...] = ()
    intent: str | None = None
    action: str | None = None
    handoff_reason: HandoffReason | None = None


def intent_title(intent: str) -> str:
    """A button title for an intent name: `card_arrival` -> `Card arrival`."""
    words = intent.replace("_", " ").strip(" ?").strip()
    return words[:1].upper() + words[1:].lower()


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


class DialoguePolicy:
    """Decides each turn's route from the message, its intent and the dialogue state.

    Args:
        settings: thresholds, the intent-to-action map and each action's slots.
    """

    def __init__(self, settings: PolicySettings | None = None) -> None:
        self.settings = settings or PolicySettings()

    # -- messages -------------------------------------------------------------------------

    def button_intent(self, state: DialogueState, text: str, known: set[str]) -> str | None:
        """The intent a clicked button stands for: a Rasa payload `/intent`, or the title
        of an intent the last clarifying question offered."""
        stripped = text.strip()
        if stripped.startswith("/") and stripped[1:] in known:
            return stripped[1:]
        norm = _norm(text)
        for intent in state.offered:
            if norm == _norm(intent_title(intent)):
                return intent
        return None

    def decide(
        self,
        state: DialogueState,
        *,
        text: str,
        smalltalk: SmallTalk | None,
        prediction: IntentPrediction | None,
        confirmed: bool = False,
    ) -> Decision:
        """The route for one customer message.

        Args:
            state: the conversation's state before this message.
            text: the message.
            smalltalk: what `detect_smalltalk` said about it.
            prediction: the classifier's verdict (None when it was not asked, e.g. small
                talk, or when it failed: the policy then asks to rephrase).
            confirmed: the customer picked the intent (a button), so no clarifying.
        """
        s = self.settings
        # Values are read from every message, so a form can skip what was already said.
        found = extract_slots(text)
        if found:
            state = replace(state, slots={**state.slots, **found})

        if smalltalk == "human":
            return self.handoff(state, "customer_request")
        if smalltalk == "negative":
            return self.on_negative(state)
        if smalltalk is not None:
            return self._smalltalk(state, smalltalk)

        if _norm(text) == _norm(BUTTON_OTHER) and state.offered:
            return self._rephrase(state)

        if state.form is not None:
            decision = self._continue_form(state, prediction, found)
            if decision is not None:
                return decision
            state = replace(state, form=None, form_intent=None, form_attempts=0)

        if prediction is None:
            return self._rephrase(state)
        if not prediction.in_scope:
            return self._out_of_scope(state)
        if prediction.confidence < s.clarify_below and not confirmed:
            return self._clarify(state, prediction)

        action = s.intent_actions.get(prediction.intent)
        if action is not None:
            return self._start_action(state, prediction.intent, action)
        return Decision(route="answer", state=state.settled(), intent=prediction.intent)

    def on_no_answer(self, state: DialogueState, intent: str | None) -> Decision:
        """The knowledge base had nothing good enough for an in-scope question."""
        streak = state.clarify_streak + 1
        if streak > self.settings.max_clarifications:
            return self.handoff(state, "unclear")
        return Decision(
            route="clarify",
            state=replace(state, clarify_streak=streak, offered=()),
            text="I'm not sure I understood. Could you tell me a bit more about what you need "
            "help with?",
            intent=intent,
        )

    def on_negative(self, state: DialogueState) -> Decision:
        """The customer said the last answer did not help (in words or with a thumbs-down)."""
        streak = state.negative_streak + 1
        if streak >= self.settings.max_negative_feedback:
            return self.handoff(replace(state, negative_streak=streak), "negative_feedback")
        return Decision(
            route="smalltalk",
            state=replace(state, negative_streak=streak, offered=()),
            text="I'm sorry that didn't help. Could you tell me in other words what you need? "
            "Or I can pass you to a colleague.",
            buttons=(BUTTON_HUMAN,),
        )

    def after_action(self, state: DialogueState, events: list[dict[str, Any]]) -> DialogueState:
        """Apply an action's `slot` events to the state (None clears a slot)."""
        slots = dict(state.slots)
        for event in events:
            if event.get("event") == "slot" and isinstance(event.get("name"), str):
                value = event.get("value")
                if value is None:
                    slots.pop(event["name"], None)
                elif isinstance(value, str | int | float) and not isinstance(value, bool):
                    slots[event["name"]] = str(value)
        return replace(state, slots=slots)

    # -- the pieces ----------------------------------------------------------------------

    def handoff(self, state: DialogueState, reason: HandoffReason) -> Decision:
        """Hand the conversation to a person; forms and fallback counters end."""
        return Decision(
            route="handoff",
            state=replace(state.settled(), form=None, form_intent=None, form_attempts=0),
            text="I'm passing you to a colleague: they can see our conversation and will "
            "reply here shortly.",
            handoff_reason=reason,
        )

    def _smalltalk(self, state: DialogueState, kind: SmallTalk) -> Decision:
        name = self.settings.bot_name
        if kind == "greet":
            text = f"Hello! I'm the {name} assistant. How can I help you today?"
        elif kind == "thanks":
            text = "You're welcome! Is there anything else I can help with?"
        else:  # goodbye: the next conversation starts afresh
            text = f"Goodbye, and thank you for contacting {name}!"
            state = DialogueState()
        if state.form is not None:
            text += " " + slot_prompt(self._missing(state)[0])
        return Decision(route="smalltalk", state=replace(state, offered=()), text=text)

    def _rephrase(self, state: DialogueState) -> Decision:
        streak = state.clarify_streak + 1
        if streak > self.settings.max_clarifications:
            return self.handoff(state, "unclear")
        return Decision(
            route="clarify",
            state=replace(state, clarify_streak=streak, offered=()),
            text="Could you rephrase your question, please? A short sentence about what you "
            "need works best.",
        )

    def _out_of_scope(self, state: DialogueState) -> Decision:
        streak = state.oos_streak + 1
        if streak >= self.settings.max_out_of_scope:
            return self.handoff(replace(state, oos_streak=streak), "out_of_scope")
        return Decision(
            route="out_of_scope",
            state=replace(state, oos_streak=streak, offered=()),
            text=f"Sorry, I can only help with questions about {self.settings.bot_name} "
            "accounts, cards and payments. Could you rephrase that?",
        )

    def _clarify(self, state: DialogueState, prediction: IntentPrediction) -> Decision:
        streak = state.clarify_streak + 1
        if streak > self.settings.max_clarifications:
            return self.handoff(state, "unclear")
        top = tuple(intent for intent, _ in prediction.ranking[:2]) or (prediction.intent,)
        return Decision(
            route="clarify",
            state=replace(state, clarify_streak=streak, offered=top),
            text="I'm not sure I understood. Did you mean one of these?",
            buttons=(*(intent_title(i) for i in top), BUTTON_OTHER),
            intent=prediction.intent,
        )

    def _missing(self, state: DialogueState) -> list[str]:
        needed = self.settings.required_slots.get(state.form or "", ())
        return [name for name in needed if name not in state.slots]

    def _start_action(self, state: DialogueState, intent: str, action: str) -> Decision:
        state = replace(state.settled(), form=action, form_intent=intent, form_attempts=0)
        missing = self._missing(state)
        if not missing:
            return Decision(
                route="action",
                state=replace(state, form=None, form_intent=None),
                intent=intent,
                action=action,
            )
        return Decision(route="ask_slot", state=state, text=slot_prompt(missing[0]), intent=intent)

    def _continue_form(
        self, state: DialogueState, prediction: IntentPrediction | None, found: dict[str, str]
    ) -> Decision | None:
        """The next step of an active form, or None when the customer changed the subject."""
        assert state.form is not None
        missing = self._missing(state)
        asked = self.settings.required_slots.get(state.form, ())
        if not missing:
            return Decision(
                route="action",
                state=replace(state.settled(), form=None, form_intent=None, form_attempts=0),
                intent=state.form_intent,
                action=state.form,
            )
        if any(name in asked for name in found):  # progress: ask for the next one
            return Decision(
                route="ask_slot",
                state=replace(state, form_attempts=0),
                text=slot_prompt(missing[0]),
                intent=state.form_intent,
            )
        changed_topic = (
            prediction is not None
            and prediction.in_scope
            and prediction.intent != state.form_intent
            and prediction.confidence >= self.settings.clarify_below
        )
        if changed_topic:
            return None
        attempts = state.form_attempts + 1
        if attempts > self.settings.form_max_attempts:
            return self.handoff(state, "form_failed")
        return Decision(
            route="ask_slot",
            state=replace(state, form_attempts=attempts),
            text=slot_prompt(missing[0], retry=True),
            intent=state.form_intent,
        )
