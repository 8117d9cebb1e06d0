"""The FAQ as the intent classifier: the best entry is the intent, the lead over the
runner-up its confidence, under `min_score` out of scope."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskbot.bot.core.types import OUT_OF_SCOPE
from deskbot.bot.nlu.retrieval import RetrievalIntentClassifier
from deskbot.knowledge.embedding.embedder import Embedder
from deskbot.knowledge.indexing.ingest import ingest
from deskbot.knowledge.retrieval.retriever import FaissRetriever

FAQ = """\
entries:
  - id: shoe-sizes
    question: What sizes do your shoes come in?
    alternatives: ["Do you have size 47?"]
    answer: EU sizes 35 to 48.
  - id: returns
    intent: return_shoes
    question: How do I return a pair of shoes?
    answer: Within 30 days, with the free label.
  - id: delivery-time
    question: How long does delivery take?
    answer: Two to four working days.
"""


@pytest.fixture(scope="module")
def shoe_retriever(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> FaissRetriever:
    folder = tmp_path_factory.mktemp("shoes")
    faq = folder / "faq.yaml"
    faq.write_text(FAQ, encoding="utf-8")
    ingest([faq], folder / "index", embedder, show_progress=False)
    return FaissRetriever(folder / "index", embedder)


def test_the_closest_entry_is_the_intent_and_its_id_when_it_has_none(
    shoe_retriever: FaissRetriever,
) -> None:
    clf = RetrievalIntentClassifier(shoe_retriever, min_score=0.5)
    sizes, returns = clf.predict(["do you have size 47", "how can I return my shoes"])
    assert sizes.intent == "shoe-sizes" and sizes.confidence == 1.0
    assert returns.intent == "return_shoes"
    assert sizes.ranking[0][0] == "shoe-sizes"
    assert clf.labels == ("shoe-sizes", "return_shoes", "delivery-time")
    assert clf.version.startswith("faq:") and shoe_retriever.version in clf.version
    encoded = clf.predict_encoded(["how long does delivery take"])[0]
    assert encoded.prediction.intent == "delivery-time"


def test_a_message_far_from_every_entry_is_out_of_scope(shoe_retriever: FaissRetriever) -> None:
    clf = RetrievalIntentClassifier(shoe_retriever, min_score=0.5)
    off, blank = clf.predict(["what is the capital of Peru", "   "])
    assert off.intent == OUT_OF_SCOPE and not off.in_scope
    assert blank.intent == OUT_OF_SCOPE


def test_a_near_tie_between_two_entries_has_a_low_confidence(
    shoe_retriever: FaissRetriever,
) -> None:
    # A margin wider than any lead: every message is a near tie, so the bot asks.
    clf = RetrievalIntentClassifier(shoe_retriever, min_score=0.0, margin=10.0)
    prediction = clf.predict(["shoes"])[0]
    assert prediction.in_scope and prediction.confidence < 0.5
    assert len(prediction.ranking) >= 2  # the entries the clarifying question offers


def test_an_unreadable_index_has_no_labels(tmp_path: Path, embedder: Embedder) -> None:
    clf = RetrievalIntentClassifier(FaissRetriever(tmp_path / "none", embedder))
    assert clf.labels == ()
    with pytest.raises(ValueError, match="margin"):
        RetrievalIntentClassifier(FaissRetriever(tmp_path, embedder), margin=0)
