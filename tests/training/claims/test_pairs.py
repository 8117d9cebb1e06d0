"""Passage/claim pairs made from the FAQ: the labels follow what each rule does."""

from __future__ import annotations

import pytest

from deskbot.bot.core.errors import DataError
from deskbot.knowledge.sources.faq import FaqEntry, load_faq
from deskbot.training.claims.pairs import make_pairs, split_entries
from deskbot.training.claims.trainer import VerifierArgs
from tests.conftest import DEMO_FAQ

ENTRIES = load_faq(DEMO_FAQ)
BY_ID = {e.id: e for e in ENTRIES}


def entry(question: str, answer: str, id_: str = "e1") -> FaqEntry:
    return FaqEntry(id=id_, question=question, answer=answer, source="test.yaml")


def test_every_sentence_is_supported_by_itself_and_contradicted_by_its_negation() -> None:
    e = entry("Can I freeze my card?", "You can freeze your card under Cards > Freeze.")
    pairs = make_pairs([e], others=ENTRIES[:5])
    verbatim = [p for p in pairs if p.kind == "verbatim"]
    assert [(p.claim, p.label) for p in verbatim] == [(e.answer, "supported")]
    negated = {p.claim for p in pairs if p.kind == "negation"}
    assert "You can't freeze your card under Cards > Freeze." in negated
    assert all(p.label == "contradicted" for p in pairs if p.kind == "negation")


@pytest.mark.parametrize(
    ("entry_id", "labels"),
    [
        pytest.param(
            "top-up-by-card-charge",
            {
                "Yes, there is a fee for topping up with a card.": "contradicted",
                "No, there is no fee for topping up with a card.": "contradicted",
            },
            id="a conditional answer contradicts both blanket answers",
        ),
        pytest.param(
            "apple-pay-or-google-pay",
            {
                "Yes, you can use Apple Pay or Google Pay.": "supported",
                "No, you can't use Apple Pay or Google Pay.": "contradicted",
            },
            id="a yes answer supports yes and contradicts no",
        ),
    ],
)
def test_the_blanket_answers_to_the_question_are_labelled(
    entry_id: str, labels: dict[str, str]
) -> None:
    pairs = make_pairs([BY_ID[entry_id]], others=ENTRIES)
    assert {p.claim: p.label for p in pairs if p.kind.startswith("question")} == labels


def test_a_conditional_answer_without_its_condition_is_contradicted() -> None:
    pairs = make_pairs([BY_ID["top-up-by-card-charge"]], others=ENTRIES)
    dropped = [p for p in pairs if p.kind == "dropped condition"]
    assert [(p.claim, p.label) for p in dropped] == [
        ("Topping up with a personal debit or credit card is free.", "contradicted")
    ]


def test_other_entries_sentences_are_unsupported_unless_said_here() -> None:
    pairs = make_pairs(ENTRIES[:10], others=ENTRIES)
    others = [p for p in pairs if p.kind == "other entry"]
    assert others and all(p.label == "unsupported" for p in others)
    # Every entry yields the three labels, and the set is the same for the same seed.
    assert {p.label for p in pairs} == {"supported", "contradicted", "unsupported"}
    assert make_pairs(ENTRIES[:10], others=ENTRIES) == pairs


def test_dev_entries_are_held_out_by_id() -> None:
    train, dev = split_entries(ENTRIES, 0.2)
    assert dev and train and not {e.id for e in train} & {e.id for e in dev}
    assert split_entries(list(reversed(ENTRIES)), 0.2)[1] == list(reversed(dev))


@pytest.mark.parametrize(
    "bad", [{"epochs": 0}, {"lr": 0}, {"dev_share": 0.7}, {"target_recall": 0.2}, {"dropout": 1}]
)
def test_bad_training_arguments_say_what_to_fix(bad: dict[str, float]) -> None:
    with pytest.raises(DataError):
        VerifierArgs(**bad)  # type: ignore[arg-type]
