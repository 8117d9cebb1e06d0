"""Messages read after their thread, made from single labelled messages.

The served bot classifies a follow-up alone and after the customer's last messages
(`deskbot.bot.nlu.context.thread_text`). A classifier trained on single messages has
never seen such a thread: it reads "my card hasn't arrived how long does it take" as it
can, and calls many of them out of scope. These examples teach it threads, from the
intents file alone (no conversation needed), three kinds in equal shares, each labelled
with the last message's intent `y`:

- **same topic**: a message of `y`, then another of `y`;
- **a switch**: a message of another intent, then one of `y` (the last message decides
  when it is clear on its own);
- **an ellipsis**: a message of `y` or of one of `y`'s nearest intents (by their words),
  then only the first words of a message of `y` ("How long does it take" of "How long
  does it take for my card to arrive?"): the thread says what the question is about.

Example:
    >>> texts = ["my card has not arrived", "where is my new card", "what is the rate for euros",
    ...          "how long does delivery of a card take", "exchange rate for dollars today"]
    >>> labels = ["card_arrival", "card_arrival", "exchange_rate", "card_delivery_estimate",
    ...           "exchange_rate"]
    >>> pairs = context_pairs(texts, labels, ratio=1.0, seed=0)
    >>> len(pairs[0]) == len(texts) and set(pairs[1]) <= set(labels)
    True
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from deskbot.bot.nlu.context import thread_text

__all__ = ["context_pairs"]

# An ellipsis keeps this share of the last message's words (at least MIN_WORDS of them).
PREFIX_SHARE = 0.5
MIN_WORDS = 3
# Nearest intents an ellipsis's thread may come from.
NEAR_INTENTS = 3


def context_pairs(
    texts: Sequence[str], labels: Sequence[str], *, ratio: float, seed: int
) -> tuple[list[str], list[str]]:
    """`ratio` x len(texts) thread examples (texts, labels) from single messages."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(texts, labels, strict=True):
        by_intent[label].append(text)
    intents = sorted(by_intent)
    count = int(len(texts) * ratio)
    if len(intents) < 2 or count <= 0:
        return [], []
    rng = random.Random(seed)
    near = _nearest_intents(by_intent, intents)
    out_texts: list[str] = []
    out_labels: list[str] = []
    for i in range(count):
        label = labels[rng.randrange(len(labels))]
        last = rng.choice(by_intent[label])
        kind = i % 3
        words = last.split()
        if kind == 2 and len(words) >= MIN_WORDS + 2:
            keep = max(MIN_WORDS, round(len(words) * PREFIX_SHARE))
            first = rng.choice(by_intent[rng.choice([label, *near[label]])])
            last = " ".join(words[:keep])
        elif kind == 1:
            other = rng.choice([x for x in intents if x != label])
            first = rng.choice(by_intent[other])
        else:
            first = rng.choice(by_intent[label])
        out_texts.append(thread_text(first, last))
        out_labels.append(label)
    return out_texts, out_labels


def _nearest_intents(by_intent: dict[str, list[str]], intents: list[str]) -> dict[str, list[str]]:
    """Each intent's nearest intents by the words of their examples (TF-IDF centroids)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = [" ".join(by_intent[x]) for x in intents]
    matrix = TfidfVectorizer(sublinear_tf=True).fit_transform(docs)
    sims = (matrix @ matrix.T).toarray()
    np.fill_diagonal(sims, -1.0)
    return {
        x: [intents[j] for j in np.argsort(-sims[i])[:NEAR_INTENTS]] for i, x in enumerate(intents)
    }
