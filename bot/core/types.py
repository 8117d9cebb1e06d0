"""Small frozen values passed between the pipeline's components."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from deskbot.knowledge.passage import Passage

__all__ = [
    "OUT_OF_SCOPE",
    "HandoffReason",
    "IntentPrediction",
    "Passage",
    "Reply",
    "ReplyKind",
    "Role",
    "Turn",
]

OUT_OF_SCOPE = "out_of_scope"

Role = Literal["user", "bot", "agent", "system"]
#: What a bot reply is (stored as the bot turn's `kind`).
ReplyKind = Literal[
    "faq", "generated", "clarify", "handoff", "action", "smalltalk", "fallback", "form"
]

#: Why the bot hands a conversation to a person (the policy decides; the config's
#: `teams` section routes by it, so it lives below both).
HandoffReason = Literal[
    "customer_request",
    "out_of_scope",
    "negative_feedback",
    "unclear",
    "action",
    "action_unavailable",
    "form_failed",
]


@dataclass(frozen=True, slots=True)
class IntentPrediction:
    """What the classifier says about one message.

    `intent` is `OUT_OF_SCOPE` when the calibrated confidence is under the model's
    threshold; `ranking` still holds the best in-scope candidates then.
    """

    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...] = ()

    @property
    def in_scope(self) -> bool:
        return self.intent != OUT_OF_SCOPE


@dataclass(frozen=True, slots=True)
class Turn:
    """One message in a conversation, as the pipeline sees it."""

    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The bot's answer to one customer message.

    `kind` is "handoff" with an empty `text` while a person owns the conversation: the
    bot stays silent and the message waits for the agent. "form" asks for a slot value.
    """

    text: str
    kind: ReplyKind
    intent: IntentPrediction | None = None
    passages: tuple[Passage, ...] = ()
    citations: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()
    latency_ms: dict[str, float] = field(default_factory=dict)
    model_versions: dict[str, str] = field(default_factory=dict)
    # The stored bot turn (for feedback); None when the bot stayed silent.
    turn_id: int | None = None
    # Why a person was asked to take over, when `kind` is "handoff" and one was.
    handoff_reason: str | None = None
    # The custom action that ran, when `kind` is "action".
    action: str | None = None
