"""What the turn pipeline works with: the collaborators' Protocols and one turn's values.

The Protocols name every method the turn calls on a collaborator; the concrete classes
(`GroundedResponder`, `FaissRetriever`) satisfy them without knowing of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from deskbot.bot.core.types import IntentPrediction, Passage, ReplyKind, Turn
from deskbot.bot.dialogue.policy import DialogueState, HandoffReason, Message
from deskbot.bot.nlu.classifier import EncodedPrediction
from deskbot.bot.store import TurnRecord
from deskbot.knowledge.retrieval.retriever import QueryEncoder

__all__ = [
    "Classifying",
    "Heard",
    "Outcome",
    "Responder",
    "ResponderOutcome",
    "TurnRetriever",
    "TurnSoFar",
]


class ResponderOutcome(Protocol):
    """What a responder returns (`deskbot.bot.generation.responder.ResponderResult`)."""

    @property
    def text(self) -> str: ...
    @property
    def kind(self) -> Literal["generated", "faq"]: ...
    @property
    def citations(self) -> tuple[str, ...]: ...
    @property
    def generator(self) -> str | None: ...


class Responder(Protocol):
    """Composes the answer from the passages (`GroundedResponder`): no routing, the
    policy already decided that the passages answer."""

    def stream(
        self, history: Sequence[Turn], passages: Sequence[Passage], *, deadline: float | None
    ) -> Iterator[str | ResponderOutcome]:
        """The reply's pieces as they may be shown, then the outcome; `deadline` is a
        `time.perf_counter()` value."""
        ...


class TurnRetriever(Protocol):
    """The FAQ search as the turn uses it (`FaissRetriever`)."""

    @property
    def version(self) -> str | None: ...

    @property
    def shared_encoder(self) -> QueryEncoder | None:
        """The classifier's encoder when it embeds the FAQ queries too, else None."""
        ...

    def retrieve(
        self,
        query: str,
        *,
        top_k: int = 3,
        intent: str | None = None,
        query_vector: np.ndarray | None = None,
        vector_model: str | None = None,
    ) -> list[Passage]: ...


@dataclass
class TurnSoFar:
    """One turn in progress: what every step reads, and the latencies they add."""

    conversation_id: str
    text: str
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    latency: dict[str, float] = field(default_factory=dict)
    # The client's id of the message (retries with it make no second turn), the copy
    # stored before when this is a retry, and the event its retries wait on while it runs.
    message_id: str | None = None
    stored: TurnRecord | None = None
    running: threading.Event | None = None


@dataclass(frozen=True)
class Classifying:
    """The classifier's work on the message, started before the message is stored."""

    future: Future[list[EncodedPrediction]] | None = None
    started: float = 0.0
    # The message as read (a correction without its "no, I meant"), and the thread
    # text it is also classified after (the future's second text), if any.
    said: str = ""
    context: str | None = None
    correction: bool = False
    clicked: IntentPrediction | None = None  # a button named the intent: no classifier


@dataclass(frozen=True)
class Heard:
    """The message as classified: what the policy is told, and the FAQ query (the
    message, or its thread when it was read in it) with its vector."""

    message: Message
    encoded: EncodedPrediction | None = None
    query: str = ""


@dataclass
class Outcome:
    """The bot's side of one turn, before it is stored."""

    text: str
    kind: ReplyKind
    state: DialogueState
    passages: tuple[Passage, ...] = ()
    citations: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()
    handoff_reason: HandoffReason | None = None
    action: str | None = None
    generator: str | None = None
    # Its text already went out as streamed pieces.
    streamed: bool = False
