"""What the dialogue policy decides from and what it decides: plain frozen values.

`DialogueState` is what the bot remembers of a conversation between turns, `Message`
what is known of one customer message, `Decision` the route for it; the rules over them
are `deskbot.bot.dialogue.policy`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from deskbot.bot.core.types import HandoffReason, IntentPrediction, ReplyKind
from deskbot.bot.nlu.context import THREAD_MESSAGES, Reading
from deskbot.bot.nlu.smalltalk import SmallTalk

__all__ = ["Decision", "DialogueState", "HandoffReason", "Message", "Route"]

Route = Literal[
    "answer",
    "action",
    "ask_slot",
    "clarify",
    "handoff",
    "smalltalk",
    "out_of_scope",
    "prepare",
    "confirm",
    "cancel",
]


_COUNTERS = ("form_attempts", "oos_streak", "clarify_streak", "negative_streak")


def _text_or_none(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("must be a string")
    return value


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
        pending: an action with a side effect the bot offered to run and waits for the
            customer's "Yes" to (`actions.confirm`); any other reply cancels it.
        pending_intent: the intent that asked for `pending`.
        choice_slot: the slot the customer is choosing a value of for `pending` (which
            card), from `choices`: button title -> value.
        thread: the customer's last messages the next one is read after
            (`deskbot.bot.nlu.context`).
        topic: the intent the conversation is about (the last in-scope reading).
    """

    slots: dict[str, str] = field(default_factory=dict)
    form: str | None = None
    form_intent: str | None = None
    form_attempts: int = 0
    offered: tuple[str, ...] = ()
    oos_streak: int = 0
    clarify_streak: int = 0
    negative_streak: int = 0
    pending: str | None = None
    pending_intent: str | None = None
    choice_slot: str | None = None
    choices: dict[str, str] = field(default_factory=dict)
    thread: tuple[str, ...] = ()
    topic: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["offered"] = list(self.offered)
        d["thread"] = list(self.thread)
        return d

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> DialogueState:
        """Read a stored state; unknown or malformed keys are dropped, not fatal."""
        if not raw:
            return cls()
        try:
            slots = {str(k): str(v) for k, v in dict(raw.get("slots") or {}).items()}
            choices = {str(k): str(v) for k, v in dict(raw.get("choices") or {}).items()}
            counters = {name: int(raw.get(name) or 0) for name in _COUNTERS}
            return cls(
                slots=slots,
                form=_text_or_none(raw.get("form")),
                form_intent=_text_or_none(raw.get("form_intent")),
                offered=tuple(str(i) for i in raw.get("offered") or ()),
                pending=_text_or_none(raw.get("pending")),
                pending_intent=_text_or_none(raw.get("pending_intent")),
                choice_slot=_text_or_none(raw.get("choice_slot")),
                choices=choices,
                thread=tuple(str(m) for m in raw.get("thread") or ())[-THREAD_MESSAGES:],
                topic=_text_or_none(raw.get("topic")),
                **counters,
            )
        except (TypeError, ValueError):
            return cls()

    def settled(self) -> DialogueState:
        """The state after the bot answered: the fallback counters start again, except
        the customer's "that didn't help"s, which only a thumbs-up or a thanks ends (two
        thumbs-down on two answers in a row are two in a row)."""
        return replace(self, offered=(), oos_streak=0, clarify_streak=0)

    def unconfirmed(self) -> DialogueState:
        """The state without an action waiting for the customer's yes."""
        return replace(self, pending=None, pending_intent=None, choice_slot=None, choices={})


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
        reading: how the message was read in its thread (None: it was not classified);
            `prediction` is its `prediction`.
    """

    text: str
    smalltalk: SmallTalk | None = None
    prediction: IntentPrediction | None = None
    confirmed: bool = False
    classified: bool = True
    reading: Reading | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with one message.

    `route` says which step runs next: `answer` (answer from the FAQ passages; an
    `action` there is only offered, as a button, and runs when the FAQ has no answer),
    `action` (call `action`), `prepare` (call the read-only `action` that fills the
    slots a confirmation names, then `DialoguePolicy.after_lookup` decides again), or
    one of the routes that reply with `text` directly.
    `search`: the FAQ is searched (tagged with `query_intent`) and `DialoguePolicy.ground`
    decides again with the best passage. `candidates`: the classifier's top intents when
    it was unsure (a FAQ entry of another intent does not answer then).
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
    candidates: tuple[str, ...] = ()

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
    # A confirmation, or the choice of what an action acts on, is a short form.
    "prepare": "form",
    "confirm": "form",
    "cancel": "form",
}
