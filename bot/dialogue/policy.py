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
  buttons; then a request to rephrase; then a person (Rasa's two-stage fallback);
- once the FAQ was searched (`Decision.search`), `ground` settles answer against
  clarify: a close match answers even an unsure or out-of-scope message, and an answer
  without a good enough passage becomes a clarifying question.

Every route is decided here; the pipeline only carries it out.

Example:
    >>> policy = DialoguePolicy(DialogueRules(intent_actions={"lost_or_stolen_card": "action_freeze_card"}))
    >>> d = policy.decide(DialogueState(), Message("I lost my card",
    ...                   prediction=IntentPrediction("lost_or_stolen_card", 0.93)))
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
from deskbot.bot.core.types import IntentPrediction, Passage, ReplyKind
from deskbot.bot.nlu.smalltalk import SmallTalk

__all__ = [
    "BUTTON_HUMAN",
    "BUTTON_OTHER",
    "CLARIFY_TEXT",
    "Decision",
    "DialoguePolicy",
    "DialogueRules",
    "DialogueState",
    "HandoffReason",
    "Message",
    "Route",
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

CLARIFY_TEXT = (
    "I'm not sure I understood. Could you tell me a bit more about what you need help with?"
)
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
class DialogueRules:
    """The turn's thresholds, time limits and rules: the one copy of them, built once
    from the config (`deskbot.bot.server.container.dialogue_rules`) and read by both
    the policy and the pipeline."""

    top_k: int = 3
    min_score: float = 0.35
    clarify_below: float = 0.5
    # A retrieval score this high answers from the FAQ even when the classifier is unsure.
    answer_score: float = 0.65
    classify_timeout_s: float = 2.0
    retrieve_timeout_s: float = 2.0
    generate_timeout_s: float = 30.0
    session_expiry_s: float = 3600.0
    # Turns of history the responder and the action server see.
    history_turns: int = 8
    intent_actions: Mapping[str, str] = field(default_factory=dict)
    required_slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    handoff_action: str = "action_handoff"
    max_out_of_scope: int = 2
    max_clarifications: int = 2
    max_negative_feedback: int = 2
    form_max_attempts: int = 2
    bot_name: str = "our"


@dataclass(frozen=True)
class Message:
    """What is known of one customer message when the policy decides its route.

    Attributes:
        text: the message.
        smalltalk: what `detect_smalltalk` said about it.
        prediction: the classifier's verdict (None when it was not asked, e.g. small
            talk, or when it failed).
        confirmed: the customer picked the intent (a button), so no clarifying.
        classified: False when the classifier failed or timed out.
    """

    text: str
    smalltalk: SmallTalk | None = None
    prediction: IntentPrediction | None = None
    confirmed: bool = False
    classified: bool = True


@dataclass(frozen=True)
class Decision:
    """What to do with one message.

    `route` says which step runs next: `answer` (answer from the FAQ passages),
    `action` (call `action`), or one of the routes that reply with `text` directly.
    `search`: the FAQ is searched (tagged with `query_intent`) and `DialoguePolicy.ground`
    decides again with the best passage.
    """

    route: Route
    state: DialogueState
    text: str = ""
    buttons: tuple[str, ...] = ()
    intent: str | None = None
    action: str | None = None
    handoff_reason: HandoffReason | None = None
    search: bool = False
    query_intent: str | None = None

    @property
    def kind(self) -> ReplyKind:
        """The reply kind of a route that replies with `text` (answers and actions
        get theirs from the step that runs them)."""
        return _KINDS[self.route]


_KINDS: dict[Route, ReplyKind] = {
    "answer": "faq",
    "action": "action",
    "ask_slot": "form",
    "clarify": "clarify",
    "smalltalk": "smalltalk",
    "out_of_scope": "fallback",
    "handoff": "handoff",
}


def intent_title(intent: str) -> str:
    """A button title for an intent name: `card_arrival` -> `Card arrival`."""
    words = intent.replace("_", " ").strip(" ?").strip()
    return words[:1].upper() + words[1:].lower()


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


class DialoguePolicy:
    """Decides each turn's route from the message, its intent and the dialogue state.

    Args:
        rules: thresholds, the intent-to-action map and each action's slots.
    """

    def __init__(self, rules: DialogueRules | None = None) -> None:
        self.rules = rules or DialogueRules()

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

    def decide(self, state: DialogueState, message: Message) -> Decision:
        """The route for one customer message, given the state before it."""
        if not message.classified and state.form is None:
            # Without an intent the FAQ may still know the answer.
            return Decision(route="answer", state=state, search=True)
        decision = self._route(state, message)
        if decision.route == "answer":
            return replace(decision, search=True, query_intent=decision.intent)
        if decision.route in ("clarify", "out_of_scope") and message.prediction is not None:
            # The classifier is unsure, but the FAQ may know this question well (`ground`).
            offered = decision.state.offered
            return replace(decision, search=True, query_intent=offered[0] if offered else None)
        return decision

    def ground(self, before: DialogueState, decision: Decision, best: Passage | None) -> Decision:
        """The route once the FAQ was searched for a `decision.search` decision.

        A close match (`answer_score`; one of the offered intents' when there are
        some) answers a message the classifier was unsure of; an answer needs a passage
        of at least `min_score`, else the bot clarifies, counting on from `before`.
        """
        r = self.rules
        if decision.route != "answer":
            offered = decision.state.offered
            if (
                best is None
                or best.score < r.answer_score
                or (offered and best.intent not in offered)
            ):
                return decision
            decision = Decision(
                route="answer",
                state=replace(before, slots=decision.state.slots).settled(),
                intent=best.intent,
            )
        if best is not None and best.score >= r.min_score:
            return decision
        # The answer route restarted the fallback counters, expecting an answer; without
        # one, the clarifications in a row count on from `before` this message, so that a
        # FAQ that cannot answer (no entry, or an unreadable index) ends in a handoff.
        unanswered = replace(decision.state, clarify_streak=before.clarify_streak)
        return self.on_no_answer(unanswered, decision.intent)

    def _route(self, state: DialogueState, message: Message) -> Decision:
        r = self.rules
        text, smalltalk, prediction = message.text, message.smalltalk, message.prediction
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
        if prediction.confidence < r.clarify_below and not message.confirmed:
            return self._clarify(state, prediction)

        action = r.intent_actions.get(prediction.intent)
        if action is not None:
            return self._start_action(state, prediction.intent, action)
        return Decision(route="answer", state=state.settled(), intent=prediction.intent)

    def on_no_answer(self, state: DialogueState, intent: str | None) -> Decision:
        """The knowledge base had nothing good enough for an in-scope question."""
        return self._ask_again(state, CLARIFY_TEXT, intent)

    def on_negative(self, state: DialogueState) -> Decision:
        """The customer said the last answer did not help (in words or with a thumbs-down)."""
        streak = state.negative_streak + 1
        if streak >= self.rules.max_negative_feedback:
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
        name = self.rules.bot_name
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
        return self._ask_again(
            state,
            "Could you rephrase your question, please? A short sentence about what you "
            "need works best.",
        )

    def _ask_again(self, state: DialogueState, text: str, intent: str | None = None) -> Decision:
        """A clarifying question without buttons, or a person after `max_clarifications`."""
        streak = state.clarify_streak + 1
        if streak > self.rules.max_clarifications:
            return self.handoff(state, "unclear")
        return Decision(
            route="clarify",
            state=replace(state, clarify_streak=streak, offered=()),
            text=text,
            intent=intent,
        )

    def _out_of_scope(self, state: DialogueState) -> Decision:
        streak = state.oos_streak + 1
        if streak >= self.rules.max_out_of_scope:
            return self.handoff(replace(state, oos_streak=streak), "out_of_scope")
        return Decision(
            route="out_of_scope",
            state=replace(state, oos_streak=streak, offered=()),
            text=f"Sorry, I can only help with questions about {self.rules.bot_name} "
            "accounts, cards and payments. Could you rephrase that?",
        )

    def _clarify(self, state: DialogueState, prediction: IntentPrediction) -> Decision:
        streak = state.clarify_streak + 1
        if streak > self.rules.max_clarifications:
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
        needed = self.rules.required_slots.get(state.form or "", ())
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
        asked = self.rules.required_slots.get(state.form, ())
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
            and prediction.confidence >= self.rules.clarify_below
        )
        if changed_topic:
            return None
        attempts = state.form_attempts + 1
        if attempts > self.rules.form_max_attempts:
            return self.handoff(state, "form_failed")
        return Decision(
            route="ask_slot",
            state=replace(state, form_attempts=attempts),
            text=slot_prompt(missing[0], retry=True),
            intent=state.form_intent,
        )
