"""Understanding a message from the FAQ alone, until a first intent model is live.

A project that has only a help centre (`deskbot init --from-faq`) has no intent model
to serve. `RetrievalIntentClassifier` stands in for one: each FAQ entry is an intent
(the entry's `intent`, or its `id` when it has none), and a message's intent is the
entry whose question or alternative phrasings it is closest to. The pipeline and the
policy do not know the difference: out of scope, clarification and handoff are decided
as with a trained model (`bot/dialogue/policy.py`).

`ReloadingIntentClassifier(fallback=...)` serves it while the registry has no live
model, and switches to the first model promoted, without a restart.

**Confidence.** With `s1` the best entry's cosine score and `s2` the runner-up's
(another entry), or `min_score` when no other entry reaches it::

    confidence = clamp((s1 - s2) / margin, 0, 1)

So a message that matches one entry clearly better than any other (by `margin`, 0.05
by default) is confident; one whose two best entries are nearly tied has a confidence
near 0 and, under `intents.clarify_below`, the bot asks which of the top entries it
is. `s1` under `min_score` is out of scope. A cosine itself is not a probability, so
it is not used as one; the margin is what says the entry is *this* one rather than
another.

Example:
    >>> clf = RetrievalIntentClassifier(retriever, min_score=0.5)   # doctest: +SKIP
    >>> clf.predict(["what sizes do your shoes come in?"])[0].intent  # doctest: +SKIP
    'shoe-sizes'
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from deskbot.bot.core.types import OUT_OF_SCOPE, IntentPrediction
from deskbot.bot.nlu.classifier import EncodedPrediction
from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.passage import IndexedPassage, Passage

__all__ = ["RETRIEVAL_PREFIX", "FaqRetriever", "RetrievalIntentClassifier", "entry_intent"]

# The prefix of the version a retrieval classifier reports (then the index version).
RETRIEVAL_PREFIX = "faq:"


class FaqRetriever(Protocol):
    """What the classifier needs of the FAQ search (`FaissRetriever` is one)."""

    @property
    def version(self) -> str | None: ...

    def retrieve(self, query: str, *, top_k: int = 3) -> list[Passage]: ...

    def passages(self) -> tuple[IndexedPassage, ...]: ...


def entry_intent(passage: Passage | IndexedPassage) -> str:
    """The intent an FAQ entry stands for: its own, else its id."""
    return passage.intent or passage.id


class RetrievalIntentClassifier:
    """An `IntentClassifier` whose intents are the FAQ's entries (see the module).

    Args:
        retriever: the FAQ search the turn also answers from.
        min_score: under this cosine the message is out of scope (`knowledge.min_score`).
        top_k: entries searched per message; the ranking holds their intents.
        margin: the lead over the runner-up at which the confidence reaches 1.
    """

    def __init__(
        self,
        retriever: FaqRetriever,
        *,
        min_score: float = 0.5,
        top_k: int = 3,
        margin: float = 0.05,
    ) -> None:
        if margin <= 0:
            raise ValueError(f"margin must be above 0, got {margin}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.retriever = retriever
        self.min_score = min_score
        self.top_k = top_k
        self.margin = margin
        self._labels: tuple[str | None, tuple[str, ...]] = (None, ())
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return f"{RETRIEVAL_PREFIX}{self.retriever.version or 'none'}"

    @property
    def labels(self) -> tuple[str, ...]:
        """The FAQ entries' intents, in file order (empty while the index is unreadable)."""
        version = self.retriever.version
        cached_version, cached = self._labels
        if version is not None and version == cached_version:
            return cached
        try:
            passages = self.retriever.passages()
        except IndexCorrupt:
            return ()
        labels = tuple(dict.fromkeys(entry_intent(p) for p in passages))
        with self._lock:
            self._labels = (self.retriever.version, labels)
        return labels

    def warm_up(self) -> None:
        """Nothing of its own to load: the retriever is warmed by the bot."""

    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Each text's best FAQ entry as its intent (see the module for the confidence).

        Raises:
            IndexCorrupt: the index cannot be read (the turn then searches the FAQ
                without an intent, as when a classifier fails).
        """
        return [self._predict(text) for text in texts]

    def predict_encoded(self, texts: Sequence[str]) -> list[EncodedPrediction]:
        """`predict`, with no vector to share (`knowledge.query_encoder: intents` needs a
        trained model: the retriever embeds the query itself)."""
        empty = np.zeros(0, dtype=np.float32)
        return [EncodedPrediction(p, empty, self.version) for p in self.predict(texts)]

    def _predict(self, text: str) -> IntentPrediction:
        if not text.strip():
            return IntentPrediction(OUT_OF_SCOPE, 0.0)
        best: dict[str, float] = {}
        for passage in self.retriever.retrieve(text, top_k=self.top_k):
            intent = entry_intent(passage)
            best[intent] = max(best.get(intent, -1.0), passage.score)
        ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)
        if not ranked:
            return IntentPrediction(OUT_OF_SCOPE, 0.0)
        intent, s1 = ranked[0]
        s2 = max(ranked[1][1] if len(ranked) > 1 else self.min_score, self.min_score)
        confidence = float(min(1.0, max(0.0, (s1 - s2) / self.margin)))
        ranking = tuple((i, round(float(s), 4)) for i, s in ranked)
        if s1 < self.min_score:
            return IntentPrediction(OUT_OF_SCOPE, confidence, ranking)
        return IntentPrediction(intent, confidence, ranking)
