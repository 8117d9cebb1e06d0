"""What the dialogue policy is told about a message and what it decides: plain frozen
values (the state kept between turns is `policy.DialogueState`; the rules over them are
`deskbot.bot.dialogue.policy`'s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from deskbot.bot.core.types import HandoffReason, IntentPrediction, ReplyKind
from deskbot.bot.nlu.smalltalk import SmallTalk

if TYPE_CHECKING:  # the policy's module imports this one
    from deskbot.bot.dialogue.policy import DialogueState

__all__ = ["Decision", "HandoffReason", "Message", "Route"]

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
