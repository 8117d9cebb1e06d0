from __future__ import annotations

from deskbot.knowledge.retrieval.lexical import Bm25Index, tokenize


def test_bm25_prefers_rare_exact_words() -> None:
    docs = [
        "How do I send money abroad with a SWIFT transfer?",
        "How do I send money to a friend?",
        "Why was my card payment declined?",
    ]
    bm25 = Bm25Index(docs)
    scores = bm25.scores("swift transfers")
    assert scores.argmax() == 0 and scores[0] == 1.0 and scores[2] == 0.0
    assert bm25.scores("the weather").max() == 0.0
    assert tokenize("What are my Transfers?") == ["transfer"]
