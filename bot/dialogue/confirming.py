"""Actions with a side effect: asked before they run (`actions.confirm`).

An action listed in `actions.confirm` is offered only when the intent is at least its
own `min_confidence` and the message asks for it rather than about it (`asks_how_to`);
the bot then asks its yes/no question (after asking which card, when the customer has
several) and keeps the offer in the dialogue state (`DialogueState.pending`). "Yes"
runs it; "No" cancels it; anything else cancels it too and is answered as a new
message.

Example:
    >>> asks_how_to("how do I freeze my card?"), asks_how_to("please freeze my card")
    (True, False)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from deskbot.bot.core.config_sections import ConfirmConfig, prompt_slots
from deskbot.bot.dialogue.decision import Decision, DialogueState

__all__ = [
    "BUTTON_NO",
    "BUTTON_YES",
    "CANCELLED_TEXT",
    "Confirmations",
    "asks_about",
    "asks_how_to",
    "is_no",
    "is_yes",
]

BUTTON_YES = "Yes"
BUTTON_NO = "No"
CANCELLED_TEXT = "All right, I haven't done anything. Is there anything else I can help with?"
CHOOSE_TEXT = "Which one do you mean?"
NOTHING_TO_ACT_ON_TEXT = (
    "Sorry, I couldn't find what to do that on. Could you tell me more, or ask for a colleague?"
)

# What makes a message a question ABOUT an action rather than a request to run it: the
# customer asks how they (first person) would do it, or what it means. Requests made as
# questions to the bot ("can you freeze my card?") are not matched: they say "you".
# Checked on the phrasings in tests/bot/dialogue/how_to_phrasings.py.
_HOW_TO = re.compile(
    r"\b(?:"
    r"how\s+(?:do|can|could|would|should|to|does|do\s+you)\b"
    r"|(?:can|could|may|should|shall)\s+i\b"
    r"|(?:is\s+it|is\s+there\s+a\s+way|am\s+i\s+able|do\s+i\s+(?:need|have))\b"
    r"|(?:where|what)\s+(?:do|can|should|would)\s+i\b"
    r"|where\s+in\s+the\s+app"
    r"|what\s+(?:happens|does\s+\w+ing)\b"
    r")",
    re.IGNORECASE,
)

_YES = {"yes", "y", "yes please", "yep", "yeah", "sure", "ok", "okay", "go ahead", "confirm"}
_YES |= {"yes go ahead", "yes do it", "do it", "please do", "yes freeze it", "yes it is"}
_NO = {"no", "n", "nope", "no thanks", "no thank you", "cancel", "stop", "don t", "not now"}
_NO |= {"no don t", "don t do it", "leave it", "never mind", "nevermind"}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def asks_how_to(text: str) -> bool:
    """Whether `text` asks how to do something (or what it does) rather than asking the
    bot to do it: the one place this is decided."""
    return _HOW_TO.search(text) is not None


# A question the knowledge may answer, not a request: "how much is express delivery?",
# "is there a fee?", "when will it come?". Requests put to the bot ("can you check my
# order?", "will you freeze it?") say "you" and are not matched.
_QUESTION = re.compile(
    r"^\s*(?:(?:so|and|but|ok|okay|also)[\s,]+)?(?:"
    r"how\s+(?:much|long|many|often|soon|quickly|fast|far)\b"
    r"|(?:what|which|why|who|whom|whose)\b(?!.*\bstatus\b)"
    r"|when\s+(?!you\b)"
    r"|(?:is|are|was|were|does|do|did|has|have)\s"
    r"|(?:will|would)\s+(?!you\b)"
    r")",
    re.IGNORECASE,
)


def asks_about(text: str) -> bool:
    """Whether `text` is a question the knowledge may answer (how to, how much, is
    there, when...) rather than a request for the bot to act."""
    return asks_how_to(text) or _QUESTION.search(text) is not None


def is_yes(text: str) -> bool:
    """An explicit yes: the button, or a short yes in words. Nothing longer counts."""
    return _norm(text) in _YES


def is_no(text: str) -> bool:
    """An explicit no: the button, or a short no in words."""
    return _norm(text) in _NO


def _choice(button: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(title, slot, value) of a button whose payload sets one slot, Rasa's way:
    `/choose{"card_last4": "1234"}`."""
    title, payload = button.get("title"), button.get("payload")
    if not isinstance(title, str) or not isinstance(payload, str) or "{" not in payload:
        return None
    try:
        values = json.loads(payload[payload.index("{") :])
    except ValueError:
        return None
    if not isinstance(values, dict) or len(values) != 1:
        return None
    ((slot, value),) = values.items()
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    return title, str(slot), str(value)


class Confirmations:
    """The rules of `actions.confirm`: when an action is offered, the questions asked
    before it runs, and what the customer's reply does.

    Args:
        rules: per action, its confirmation (`ConfirmConfig`).
    """

    def __init__(self, rules: Mapping[str, ConfirmConfig]) -> None:
        self.rules = rules

    def may_offer(self, action: str, text: str, confidence: float, *, confirmed: bool) -> bool:
        """Whether the action is offered for this message: never for a question about
        it, and only at its own confidence (or when the customer clicked its intent)."""
        rule = self.rules.get(action)
        if rule is None:
            return True
        if asks_how_to(text):
            return False
        return confirmed or confidence >= rule.min_confidence

    def needs_yes(self, action: str) -> bool:
        return action in self.rules

    def offer(self, state: DialogueState, intent: str | None, action: str) -> Decision:
        """Ask before `action` runs: with `slots_from`, its slots are looked up afresh
        (a card chosen for an earlier offer is not taken for this one)."""
        rule = self.rules[action]
        state = replace(state.unconfirmed(), pending=action, pending_intent=intent)
        if rule.slots_from is not None:
            named = set(prompt_slots(rule.prompt))
            slots = {k: v for k, v in state.slots.items() if k not in named}
            return Decision(
                route="prepare",
                state=replace(state, slots=slots),
                intent=intent,
                action=rule.slots_from,
            )
        return self.after_lookup(state, (), ())

    def after_lookup(
        self,
        state: DialogueState,
        texts: Sequence[str],
        buttons: Sequence[Mapping[str, Any]],
    ) -> Decision:
        """The question once the `slots_from` action ran (its slot events already in
        `state`): yes/no when the prompt's slots are known, else which one (its buttons),
        else its own words and the offer is dropped."""
        assert state.pending is not None
        rule = self.rules[state.pending]
        missing = [s for s in prompt_slots(rule.prompt) if s not in state.slots]
        if not missing:
            return self._question(state)
        choices = [c for c in map(_choice, buttons) if c is not None and c[1] == missing[0]]
        if choices:
            return Decision(
                route="confirm",
                state=replace(state, choice_slot=missing[0], choices={t: v for t, _, v in choices}),
                text=" ".join(texts) or CHOOSE_TEXT,
                buttons=tuple(t for t, _, _ in choices),
                intent=state.pending_intent,
            )
        return Decision(
            route="cancel",
            state=state.unconfirmed(),
            text=" ".join(texts) or NOTHING_TO_ACT_ON_TEXT,
            intent=state.pending_intent,
        )

    def on_reply(self, state: DialogueState, text: str) -> Decision | None:
        """What the customer's reply to the offer does; None: it cancelled the offer and
        is a new message (`state.unconfirmed()` goes on with it)."""
        action = state.pending
        if action is None or action not in self.rules:
            return None
        if is_no(text):
            return Decision(
                route="cancel", state=state.unconfirmed(), text=CANCELLED_TEXT, intent=None
            )
        if state.choice_slot is not None:
            value = self._chosen(state, text)
            if value is None:
                return None
            slots = {**state.slots, state.choice_slot: value}
            return self.after_lookup(
                replace(state, slots=slots, choice_slot=None, choices={}), (), ()
            )
        if not is_yes(text):
            return None
        return Decision(
            route="action",
            state=state.unconfirmed().settled(),
            intent=state.pending_intent,
            action=action,
        )

    def _question(self, state: DialogueState) -> Decision:
        assert state.pending is not None
        rule = self.rules[state.pending]
        return Decision(
            route="confirm",
            state=state,
            text=rule.prompt.format_map(state.slots),
            buttons=(BUTTON_YES, BUTTON_NO),
            intent=state.pending_intent,
        )

    @staticmethod
    def _chosen(state: DialogueState, text: str) -> str | None:
        """The value the reply picks: a button's title, or the one value it names."""
        norm = _norm(text)
        for title, value in state.choices.items():
            if norm == _norm(title):
                return value
        words = set(norm.split())
        named = {value for value in state.choices.values() if _norm(value) in words}
        return named.pop() if len(named) == 1 else None
