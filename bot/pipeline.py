"""One customer turn, from the stored message to the stored reply.

Example:
    >>> reply = pipeline.handle(conversation_id, "my card hasn't arrived yet")  # doctest: +SKIP
    >>> reply.kind, reply.passages[0].id                                         # doctest: +SKIP
    ('faq', 'card-arrival')
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from deskbot.bot.intents import IntentClassifier
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.types import IntentPrediction, Passage, Reply
from deskbot.knowledge.retriever import Retriever

logger = logging.getLogger(__name__)

CLARIFY_TEXT = (
    "I'm not sure I understood. Could you tell me a bit more about what you need help with?"
)
HUMAN_SILENT_TEXT = ""


@dataclass(frozen=True)
class PipelineSettings:
    top_k: int = 3
    min_score: float = 0.35
    clarify_below: float = 0.5


class TurnPipeline:
    """Classify, retrieve, answer, and log one turn.

    The customer's message is stored before any model runs, so no failure later in
    the turn can lose it.

    Args:
        store: where both turns are written.
        classifier: names the intent.
        retriever: finds the FAQ answers.
        settings: thresholds (from the config).
    """

    def __init__(
        self,
        store: SqlConversationStore,
        classifier: IntentClassifier,
        retriever: Retriever,
        settings: PipelineSettings | None = None,
    ) -> None:
        self.store = store
        self.classifier = classifier
        self.retriever = retriever
        self.settings = settings or PipelineSettings()

    def handle(self, conversation_id: str, text: str) -> Reply:
        started = time.perf_counter()
        user_turn = self.store.append_turn(conversation_id, "user", text)
        latency: dict[str, float] = {}
        conv = self.store.get_conversation(conversation_id)
        if conv is not None and conv.status == "handoff":
            # A person owns the conversation: the message waits for them, the bot stays silent.
            return Reply(text=HUMAN_SILENT_TEXT, kind="handoff")

        t = time.perf_counter()
        prediction = self.classifier.predict([text])[0]
        latency["classify"] = _ms(t)
        if user_turn.id is not None:
            self.store.update_turn(
                user_turn.id, intent=prediction.intent, confidence=prediction.confidence
            )

        t = time.perf_counter()
        passages = self.retriever.retrieve(
            text,
            top_k=self.settings.top_k,
            intent=prediction.intent if prediction.in_scope else None,
        )
        latency["retrieve"] = _ms(t)

        reply = self._decide(prediction, passages)
        latency["total"] = _ms(started)
        versions = {"intents": self.classifier.version}
        index_version = getattr(self.retriever, "version", None)
        if index_version:
            versions["faq_index"] = str(index_version)
        reply = Reply(
            text=reply.text,
            kind=reply.kind,
            intent=prediction,
            passages=reply.passages,
            citations=reply.citations,
            buttons=reply.buttons,
            latency_ms=latency,
            model_versions=versions,
        )
        self.store.append_turn(
            conversation_id,
            "bot",
            reply.text,
            intent=prediction.intent,
            confidence=prediction.confidence,
            kind=reply.kind,
            passages=[asdict(p) for p in reply.passages],
            model_versions=versions,
            latency_ms=latency,
        )
        logger.info(
            "turn %s: intent=%s conf=%.3f kind=%s %.1fms",
            conversation_id,
            prediction.intent,
            prediction.confidence,
            reply.kind,
            latency["total"],
        )
        return reply

    def _decide(self, prediction: IntentPrediction, passages: list[Passage]) -> Reply:
        best = passages[0] if passages else None
        if best is None or best.score < self.settings.min_score:
            return Reply(text=CLARIFY_TEXT, kind="clarify", passages=tuple(passages))
        return Reply(text=best.text, kind="faq", passages=(best,), citations=(best.id,))


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)
