"""BM25 lexical scores, to mix with dense scores where exact words matter.

Dense embeddings blur product names, codes and rare words ("SEPA", "3DS", "IBAN");
BM25 rewards them. `Bm25Index.scores(query)` returns one score per document, scaled to
0..1 by the query's best document, so it can be added to a cosine with a weight.

Example:
    >>> bm25 = Bm25Index(["card arrival delay", "exchange rate markup"])
    >>> [round(float(s), 2) for s in bm25.scores("what exchange rate")]
    [0.0, 1.0]
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Words so common in questions that they carry no evidence either way.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "i'm",
        "if",
        "in",
        "into",
        "is",
        "it",
        "it's",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stop words, with a light plural stemming."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in STOPWORDS:
            continue
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


class Bm25Index:
    """Okapi BM25 over a fixed list of documents.

    Args:
        documents: the texts, in the order scores are returned.
        k1: term-frequency saturation.
        b: length normalisation.
    """

    def __init__(self, documents: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(documents)
        tokenized = [tokenize(d) for d in documents]
        lengths = np.array([len(t) for t in tokenized], dtype=np.float32)
        avg = float(lengths.mean()) if self.size and lengths.sum() else 1.0
        docs: dict[str, list[int]] = defaultdict(list)
        weights: dict[str, list[float]] = defaultdict(list)
        for i, toks in enumerate(tokenized):
            norm = k1 * (1 - b + b * lengths[i] / avg)
            for term, tf in Counter(toks).items():
                docs[term].append(i)
                weights[term].append(tf * (k1 + 1) / (tf + norm))
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, rows in docs.items():
            df = len(rows)
            idf = math.log(1 + (self.size - df + 0.5) / (df + 0.5))
            self._postings[term] = (
                np.array(rows, dtype=np.int64),
                np.array(weights[term], dtype=np.float32) * idf,
            )

    def scores(self, query: str) -> np.ndarray:
        """One score per document, divided by the best one (all zero when no word matches)."""
        out = np.zeros(self.size, dtype=np.float32)
        for term in set(tokenize(query)):
            posting = self._postings.get(term)
            if posting is not None:
                np.add.at(out, posting[0], posting[1])
        top = float(out.max()) if self.size else 0.0
        return out / top if top > 0 else out
