"""Thread examples made from single labelled messages (`training.context_pairs`)."""

from __future__ import annotations

from collections import Counter

from deskbot.bot.nlu.context import THREAD_CHARS
from deskbot.training.data.context_pairs import context_pairs

PIN = [
    "How do I change my PIN at a cash machine?",
    "Can I change my PIN in the app?",
    "where can i change the pin of my card",
    "I want a new PIN for my card please",
]
RATE = [
    "What exchange rate do you give for euros?",
    "Is your exchange rate the same at weekends?",
    "what rate will I get converting dollars",
    "how is the exchange rate worked out",
]
ARRIVAL = [
    "My new card still has not arrived after two weeks",
    "The card I ordered never arrived in the post",
    "Where is the card you sent me, it has not arrived",
    "card not arrived yet, was it lost in the post?",
]


def data() -> tuple[list[str], list[str]]:
    texts = PIN + RATE + ARRIVAL
    labels = ["change_pin"] * 4 + ["exchange_rate"] * 4 + ["card_arrival"] * 4
    return texts, labels


def test_the_count_follows_the_ratio_and_every_label_is_an_intent_of_the_data() -> None:
    texts, labels = data()
    out, their = context_pairs(texts, labels, ratio=2.0, seed=0)
    assert len(out) == len(their) == 24
    assert set(their) <= set(labels)
    assert all(len(t) <= THREAD_CHARS for t in out)


def test_the_same_seed_gives_the_same_examples_and_another_seed_others() -> None:
    texts, labels = data()
    assert context_pairs(texts, labels, ratio=1.0, seed=3) == context_pairs(
        texts, labels, ratio=1.0, seed=3
    )
    assert context_pairs(texts, labels, ratio=1.0, seed=3) != context_pairs(
        texts, labels, ratio=1.0, seed=4
    )


def test_each_example_ends_with_a_message_of_its_label_whole_or_cut_to_its_first_words() -> None:
    texts, labels = data()
    out, their = context_pairs(texts, labels, ratio=4.0, seed=1)
    kinds: Counter[str] = Counter()
    for example, y in zip(out, their, strict=True):
        own = [t for t, label in zip(texts, labels, strict=True) if label == y]
        if any(example.endswith(" " + m) for m in own):
            kinds["whole"] += 1
        else:
            cut = [m for m in own if example.endswith(" " + " ".join(m.split()[:3]))]
            cut += [m for m in own if any(
                example.endswith(" " + " ".join(m.split()[:n])) for n in range(3, len(m.split()))
            )]  # fmt: skip
            assert cut, example
            kinds["cut"] += 1
    assert kinds["whole"] and kinds["cut"]


def test_some_examples_switch_from_another_intents_message_to_a_whole_one_of_the_label() -> None:
    texts, labels = data()
    out, their = context_pairs(texts, labels, ratio=4.0, seed=2)
    intent_of = dict(zip(texts, labels, strict=True))
    switches = [
        example
        for example, y in zip(out, their, strict=True)
        if any(example.startswith(t) and intent_of[t] != y for t in texts)
        and any(example.endswith(" " + t) and intent_of[t] == y for t in texts)
    ]
    assert switches


def test_too_few_intents_or_no_ratio_makes_nothing() -> None:
    assert context_pairs(PIN, ["change_pin"] * 4, ratio=1.0, seed=0) == ([], [])
    texts, labels = data()
    assert context_pairs(texts, labels, ratio=0.0, seed=0) == ([], [])
