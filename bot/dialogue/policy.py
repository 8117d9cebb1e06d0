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
- an action with a side effect (`actions.confirm`, `confirming.Confirmations`) is only
  offered above its own confidence and never for a question about it ("how do I
  freeze my card?" is answered from the FAQ); it runs after the customer's "Yes";
- a confident FAQ intent is answered from the knowledge base;
- a low-confidence intent gets a clarifying question with the two best intents as
  buttons; then a request to rephrase; then a person (Rasa's two-stage fallback);
- once the FAQ was searched (`Decision.search`), `ground` settles answer against
  clarify: a close match answers even an unsure or out-of-scope message, unless it
  belongs to another intent than the classifier's top ones (then the bot asks), and an
  answer without a good enough passage becomes a clarifying question.

Every route is decided here; the pipeline only carries it out.

Example:
    >>> policy = DialoguePolicy(DialogueRules(intent_actions={"lost_or_stolen_card": "action_freeze_card"}))
    >>> d = policy.decide(DialogueState(), Message("I lost my card",
    ...                   prediction=IntentPrediction("lost_or_stolen_card", 0.93)))
    >>> d.route, d.action
    ('action', 'action_freeze_card')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from deskbot.bot.core.config_sections import ConfirmConfig
from deskbot.bot.core.config_teams import TeamsConfig
from deskbot.bot.core.slots import extract_slots, slot_prompt
from deskbot.bot.core.types import OUT_OF_SCOPE, IntentPrediction, Passage
from deskbot.bot.dialogue.confirming import Confirmations, asks_about
from deskbot.bot.dialogue.decision import (
    Decision,
    DialogueState,
    HandoffReason,
    Message,
    Route,
)
from deskbot.bot.nlu.context import ContextRules, next_thread
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

CLARIFY_TEXT = (
    "I'm not sure I understood. Could you tell me a bit more about what you need help with?"
)
BUTTON_OTHER = "Something else"
BUTTON_HUMAN = "Talk to a person"
# When the classifier is unsure, a FAQ entry answers only if it is of one of its top
# intents: a close match of another intent is a confident wrong answer (issue #24).
UNSURE_CANDIDATES = 3


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
    # Actions with a side effect: their own confidence bar and yes/no question.
    confirm: Mapping[str, ConfirmConfig] = field(default_factory=dict)
    # Which team's queue a handoff waits in, by its reason or the last intent.
    teams: TeamsConfig = field(default_factory=TeamsConfig)
    # How a message is read in its thread (follow-ups, corrections, topic switches).
    context: ContextRules = field(default_factory=ContextRules)


def intent_title(intent: str) -> str:
    """A button title for an intent name (or an FAQ entry's id): `card_arrival` ->
    `Card arrival`, `shoe-sizes` -> `Shoe sizes`."""
    words = intent.replace("_", " ").replace("-", " ").strip(" ?").strip()
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
        self.confirmations = Confirmations(self.rules.confirm)

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
        state = self._in_thread(state, message)
        if not message.classified and state.form is None and state.pending is None:
            # Without an intent the FAQ may still know the answer.
            return Decision(route="answer", state=state, search=True)
        decision = self._route(state, message)
        if decision.route == "answer":
            return replace(decision, search=True, query_intent=decision.intent)
        if decision.route in ("clarify", "out_of_scope") and message.prediction is not None:
            # The classifier is unsure, but the FAQ may know this question well (`ground`).
            offered = decision.state.offered
            ranking = message.prediction.ranking[:UNSURE_CANDIDATES]
            return replace(
                decision,
                search=True,
                query_intent=offered[0] if offered else None,
                candidates=tuple(intent for intent, _ in ranking if intent != OUT_OF_SCOPE),
            )
        return decision

    @staticmethod
    def _in_thread(state: DialogueState, message: Message) -> DialogueState:
        """The thread and topic after this message (`deskbot.bot.nlu.context`); a clear
        change of topic outside a form forgets the last topic's slots."""
        reading = message.reading
        if reading is None:
            return state
        prediction = reading.prediction
        forget = reading.switched and state.form is None and state.pending is None
        return replace(
            state,
            thread=next_thread(state.thread, reading),
            topic=prediction.intent if prediction.in_scope else state.topic,
            slots={} if forget else state.slots,
        )

    def ground(self, before: DialogueState, decision: Decision, best: Passage | None) -> Decision:
        """The route once the FAQ was searched for a `decision.search` decision.

        A close match (`answer_score`; one of the offered intents' when there are
        some) answers a message the classifier was unsure of, unless its entry is of
        another intent than the classifier's top ones (`decision.candidates`): then the
        bot asks which it is, the entry's intent among the options. An answer needs a passage of at least `min_score`, else
        the bot clarifies, counting on from `before`.
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
            entry = best.intent
            d = decision.state
            kept = replace(before, slots=d.slots, thread=d.thread, topic=entry or d.topic)
            if entry is not None and decision.candidates and entry not in decision.candidates:
                # Which is it: the classifier's two best, or the entry's (one click answers).
                options = (*decision.candidates[:2], entry)
                return self._clarify_among(kept, options, decision.intent)
            decision = Decision(route="answer", state=kept.settled(), intent=best.intent)
        if best is not None and best.score >= r.min_score:
            return decision
        if decision.action is not None and decision.intent is not None:
            # A question about an action the FAQ cannot answer: the action it is about.
            return self._start_action(decision.state, decision.intent, decision.action)
        # The answer route restarted the fallback counters, expecting an answer; without
        # one, the clarifications in a row count on from `before` this message, so that a
        # FAQ that cannot answer (no entry, or an unreadable index) ends in a handoff.
        unanswered = replace(decision.state, clarify_streak=before.clarify_streak)
        return self.on_no_answer(unanswered, decision.intent)

    def _route(self, state: DialogueState, message: Message) -> Decision:
        text, smalltalk = message.text, message.smalltalk
        # Values are read from every message, so a form can skip what was already said.
        found = extract_slots(text)
        if found:
            state = replace(state, slots={**state.slots, **found})

        if smalltalk == "human":
            return self.handoff(state, "customer_request")
        if state.pending is not None:
            decision = self.confirmations.on_reply(state, text)
            if decision is not None:
                return decision
            state = state.unconfirmed()  # not a yes: nothing runs, the message is new
        if smalltalk == "negative":
            return self.on_negative(state)
        if smalltalk is not None:
            return self._smalltalk(state, smalltalk)

        if _norm(text) == _norm(BUTTON_OTHER) and state.offered:
            return self._rephrase(state)

        if state.form is not None:
            decision = self._continue_form(state, message, found)
            if decision is not None:
                return decision
            state = replace(state, form=None, form_intent=None, form_attempts=0)
        return self._route_intent(state, message)

    def _route_intent(self, state: DialogueState, message: Message) -> Decision:
        """The route a message's intent decides (nothing before it did)."""
        r, prediction = self.rules, message.prediction
        if prediction is None:
            return self._rephrase(state)
        if not prediction.in_scope:
            return self._out_of_scope(state)
        if prediction.confidence < r.clarify_below and not message.confirmed:
            return self._clarify(state, prediction)

        intent, action = prediction.intent, r.intent_actions.get(prediction.intent)
        if action is None:
            return Decision(route="answer", state=state.settled(), intent=intent)
        if not message.confirmed and asks_about(message.text):
            # A question about it ("how much is express delivery?"): the FAQ answers and
            # the action is offered as a button (it runs when the FAQ has no answer); one
            # with a side effect is never offered for a question (`actions.confirm`).
            if self.confirmations.needs_yes(action):
                return Decision(route="answer", state=state.settled(), intent=intent)
            return self._answer_offering(state.settled(), intent, action)
        if self.confirmations.may_offer(
            action, message.text, prediction.confidence, confirmed=message.confirmed
        ):
            return self._start_action(state, intent, action)
        # Too weak a guess to act on: the FAQ answers.
        return Decision(route="answer", state=state.settled(), intent=intent)

    def _answer_offering(self, state: DialogueState, intent: str, action: str) -> Decision:
        """Answer from the FAQ with the action (or the form in progress) one click away."""
        return Decision(
            route="answer",
            state=replace(state, offered=(intent,)),
            intent=intent,
            action=action,
            buttons=(intent_title(intent),),
        )

    def on_no_answer(self, state: DialogueState, intent: str | None) -> Decision:
        """The knowledge base had nothing good enough for an in-scope question."""
        return self._ask_again(state, CLARIFY_TEXT, intent)

    def on_negative(self, state: DialogueState) -> Decision:
        """The customer said the last answer did not help (in words or with a thumbs-down)."""
        counted = replace(state, negative_streak=state.negative_streak + 1)
        return self._streak(
            counted,
            counted.negative_streak >= self.rules.max_negative_feedback,
            "negative_feedback",
            route="smalltalk",
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
            state=replace(
                state.settled().unconfirmed(), form=None, form_intent=None, form_attempts=0
            ),
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
            state = replace(state, negative_streak=0)
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
        counted = replace(state, oos_streak=state.oos_streak + 1)
        return self._streak(
            counted,
            counted.oos_streak >= self.rules.max_out_of_scope,
            "out_of_scope",
            route="out_of_scope",
            text=f"Sorry, I can only help with questions about {self.rules.bot_name}. "
            "Could you rephrase that?",
        )

    def _streak(
        self, counted: DialogueState, at_limit: bool, reason: HandoffReason, **ask_again: Any
    ) -> Decision:
        """One more turn of a streak, counted in `counted`: at the limit, a handoff for
        `reason`; before it, the reply `ask_again` (route, text, buttons), offers cleared."""
        if at_limit:
            return self.handoff(counted, reason)
        return Decision(state=replace(counted, offered=()), **ask_again)

    def _clarify(self, state: DialogueState, prediction: IntentPrediction) -> Decision:
        top = tuple(intent for intent, _ in prediction.ranking[:2]) or (prediction.intent,)
        return self._clarify_among(state, top, prediction.intent)

    def _clarify_among(
        self, state: DialogueState, top: tuple[str, ...], intent: str | None
    ) -> Decision:
        """Did you mean one of `top`? (Or a person after `max_clarifications`.)"""
        streak = state.clarify_streak + 1
        if streak > self.rules.max_clarifications:
            return self.handoff(state, "unclear")
        return Decision(
            route="clarify",
            state=replace(state, clarify_streak=streak, offered=top),
            text="I'm not sure I understood. Did you mean one of these?",
            buttons=(*(intent_title(i) for i in top), BUTTON_OTHER),
            intent=intent,
        )

    def _run_or_offer(self, state: DialogueState, intent: str | None, action: str) -> Decision:
        """Run the action whose slots are known, or, with a side effect, ask first."""
        state = replace(state, form=None, form_intent=None, form_attempts=0)
        if self.confirmations.needs_yes(action):
            return self.confirmations.offer(state, intent, action)
        return Decision(route="action", state=state, intent=intent, action=action)

    def after_lookup(
        self,
        decision: Decision,
        events: list[dict[str, Any]] | None,
        texts: list[str],
        buttons: list[dict[str, Any]],
    ) -> Decision:
        """The route once a `prepare` decision's action looked the confirmation's slots
        up (None: the action server failed: a person takes over)."""
        if events is None:
            return self.handoff(decision.state, "action_unavailable")
        state = self.after_action(decision.state, events)
        return self.confirmations.after_lookup(state, texts, buttons)

    def _missing(self, state: DialogueState) -> list[str]:
        needed = self.rules.required_slots.get(state.form or "", ())
        return [name for name in needed if name not in state.slots]

    def _start_action(self, state: DialogueState, intent: str, action: str) -> Decision:
        state = replace(state.settled(), form=action, form_intent=intent, form_attempts=0)
        missing = self._missing(state)
        if not missing:
            return self._run_or_offer(state, intent, action)
        return Decision(route="ask_slot", state=state, text=slot_prompt(missing[0]), intent=intent)

    def _continue_form(
        self, state: DialogueState, message: Message, found: dict[str, str]
    ) -> Decision | None:
        """The next step of an active form, or None when the customer changed the subject."""
        assert state.form is not None
        prediction = message.prediction
        missing = self._missing(state)
        asked = self.rules.required_slots.get(state.form, ())
        if not missing:
            return self._run_or_offer(state.settled(), state.form_intent, state.form)
        if any(name in asked for name in found):  # progress: ask for the next one
            return Decision(
                route="ask_slot",
                state=replace(state, form_attempts=0),
                text=slot_prompt(missing[0]),
                intent=state.form_intent,
            )
        if message.confirmed and prediction is not None and prediction.intent == state.form_intent:
            # Back to the form (its button, after a question answered on the way).
            prompt = slot_prompt(missing[0])
            return Decision(route="ask_slot", state=state, text=prompt, intent=state.form_intent)
        understood = (
            prediction is not None
            and prediction.in_scope
            and prediction.confidence >= self.rules.clarify_below
        )
        if understood and prediction is not None and asks_about(message.text):
            # A question on the way (on the form's topic or another): answered, the form
            # kept for the customer to go on.
            form_intent = state.form_intent or prediction.intent
            kept = replace(state.settled(), offered=(form_intent,))
            title = (intent_title(form_intent),)
            return Decision(route="answer", state=kept, intent=prediction.intent, buttons=title)
        if understood and prediction is not None and prediction.intent != state.form_intent:
            return None  # another topic: the form is left
        attempts = state.form_attempts + 1
        if attempts > self.rules.form_max_attempts:
            return self.handoff(state, "form_failed")
        return Decision(
            route="ask_slot",
            state=replace(state, form_attempts=attempts),
            text=slot_prompt(missing[0], retry=True),
            intent=state.form_intent,
        )
