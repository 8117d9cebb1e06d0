"""What an agent sees of a candidate intent: a name from its keywords, representatives,
a cohesion score.

Keywords are class-based TF-IDF (as BERTopic's c-TF-IDF): a word scores high in a
cluster when it is frequent there and rare across the clusters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from deskbot.training.discovery.scoring import OUTLIER

_WORD = r"(?u)\b[a-zA-Z][a-zA-Z']+\b"


def keywords(texts: Sequence[str], labels: np.ndarray, *, top: int = 5) -> dict[int, list[str]]:
    """Each cluster's `top` words by c-TF-IDF (stop words left out)."""
    from sklearn.feature_extraction.text import CountVectorizer

    clusters = sorted(set(labels.tolist()) - {OUTLIER})
    if not clusters:
        return {}
    docs = [" ".join(texts[int(i)] for i in np.flatnonzero(labels == c)) for c in clusters]
    vectorizer = CountVectorizer(stop_words="english", token_pattern=_WORD, lowercase=True)
    try:
        counts = vectorizer.fit_transform(docs).toarray().astype(np.float64)
    except ValueError:  # only stop words
        return {c: [] for c in clusters}
    words = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    average = counts.sum() / len(clusters)
    idf = np.log1p(average / np.maximum(counts.sum(axis=0), 1.0))
    weights = tf * idf
    out: dict[int, list[str]] = {}
    for row, c in enumerate(clusters):
        best = np.argsort(-weights[row], kind="stable")[:top]
        out[c] = [str(words[j]) for j in best if weights[row, j] > 0]
    return out


def suggested_name(words: Sequence[str], *, taken: set[str] | None = None) -> str:
    """An intent-like name from the first keywords (`card_arrive`), unique among `taken`."""
    base = "_".join(re.sub(r"[^a-z0-9]+", "", w.lower()) for w in words[:3]).strip("_")
    base = base or "unnamed"
    name, n = base, 2
    while taken is not None and name in taken:
        name, n = f"{base}_{n}", n + 1
    if taken is not None:
        taken.add(name)
    return name


def representatives(
    vectors: np.ndarray, members: np.ndarray, centre: np.ndarray, *, count: int = 5
) -> list[int]:
    """Indices of the `count` members nearest the centroid, nearest first."""
    sims = vectors[members] @ centre
    return [int(members[j]) for j in np.argsort(-sims, kind="stable")[:count]]


def cohesion(vectors: np.ndarray, members: np.ndarray, centre: np.ndarray) -> float:
    """Mean cosine similarity of the members to their centroid (1.0: all alike)."""
    return float(np.mean(vectors[members] @ centre)) if len(members) else 0.0
