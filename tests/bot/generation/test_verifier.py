"""The guard with a claim verifier: claims, not words.

The verifier is a real one, trained on a dozen demo FAQ entries (`tiny_verifier`); the
replies are the two issue #23 quotes and sentences like the small model writes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from deskbot.bot.core.errors import ArtifactError
from deskbot.bot.core.types import Passage
from deskbot.bot.generation.guard import GroundingGuard, quoted_in
from deskbot.bot.generation.responder import load_verifier
from deskbot.bot.generation.verifier import ClaimVerifier, find_verifier_dir, passage_units
from deskbot.knowledge.sources.faq import load_faq
from tests.conftest import DEMO_FAQ

FAQ = {e.id: e for e in load_faq(DEMO_FAQ)}


def cited(*ids: str) -> list[Passage]:
    return [Passage(i, FAQ[i].answer, 0.8, "faq") for i in ids]


TOP_UP_FEE = cited("top-up-by-card-charge", "supported-cards-and-currencies")
APPLE_PAY = cited("apple-pay-or-google-pay", "topping-up-by-card")


@pytest.fixture(scope="module")
def guard(embedder, tiny_verifier) -> GroundingGuard:  # type: ignore[no-untyped-def]
    return GroundingGuard(embedder, verifier=tiny_verifier)


@pytest.mark.parametrize(
    ("reply", "passages"),
    [
        ("Yes, there is a fee for topping up by card.", TOP_UP_FEE),
        (
            "No, you cannot use Apple Pay when using Northwind App. "
            "You need to use Apple Pay instead.",
            APPLE_PAY,
        ),
    ],
)
def test_the_issues_quoted_replies_are_caught(
    guard: GroundingGuard, reply: str, passages: list[Passage]
) -> None:
    decision = guard.check(reply, passages)
    assert not decision.ok
    assert decision.reason.startswith(("contradicts", "unsupported claim")), decision


def test_the_old_guard_let_the_first_quote_through(embedder) -> None:  # type: ignore[no-untyped-def]
    # What the verifier adds: made of the passage's words, the claim passes the rules.
    assert (
        GroundingGuard(embedder).check("Yes, there is a fee for topping up by card.", TOP_UP_FEE).ok
    )


@pytest.mark.parametrize(
    "sentence",
    [
        "Topping up with a personal debit or credit card issued in the UK, EEA or Switzerland is free.",
        "Cards issued elsewhere, such as US cards, and business cards cost 2% of the top-up amount.",
    ],
)
def test_a_supported_sentence_passes(guard: GroundingGuard, sentence: str) -> None:
    check = guard.check_sentence(sentence, TOP_UP_FEE)
    assert check.decision.ok, check.decision
    assert check.passage_id in {p.id for p in TOP_UP_FEE}


@pytest.mark.parametrize(
    "sentence",
    [
        'To top up, simply open the Northwind app and tap the "Order" button.',
        "The top-up fee depends on the country you live in.",
        "No, topping up your card doesn't have a fee.",
    ],
)
def test_an_unsupported_or_contradicted_sentence_is_refused(
    guard: GroundingGuard, sentence: str
) -> None:
    decision = guard.check_sentence(sentence, TOP_UP_FEE).decision
    assert not decision.ok and decision.unsupported, decision


@pytest.mark.parametrize("sentence", ["Yes.", "No, there isn't.", "No, you cannot.", "No, no, no!"])
def test_a_bare_yes_or_no_is_refused(guard: GroundingGuard, sentence: str) -> None:
    decision = guard.check_sentence(sentence, TOP_UP_FEE).decision
    assert not decision.ok and decision.reason == "a bare yes or no states no claim"


def test_courtesy_passes_but_not_a_claim_dressed_as_courtesy(guard: GroundingGuard) -> None:
    assert guard.check_sentence("I hope this helps.", TOP_UP_FEE).decision.ok
    assert not guard.check_sentence("Sure, every card top-up is free.", TOP_UP_FEE).decision.ok


def test_the_verifier_names_the_deciding_passage(tiny_verifier: ClaimVerifier) -> None:
    verdict = tiny_verifier.judge("No, you can't use Apple Pay or Google Pay.", APPLE_PAY)
    assert verdict.label == "contradicted"
    assert verdict.passage_id == "apple-pay-or-google-pay"
    assert verdict.evidence in passage_units(FAQ["apple-pay-or-google-pay"].answer)


def test_passage_units_are_its_sentences() -> None:
    units = passage_units("Yes: tap Cards > Add. It costs £1.50 (or €2). Done!\nNext line")
    assert units == ["Yes: tap Cards > Add.", "It costs £1.50 (or €2).", "Done!", "Next line"]


def test_no_verifier_trained_warns_and_keeps_the_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert load_verifier(tmp_path / "var" / "models" / "verifier") is None
    assert "no claim verifier" in caplog.text and "train verifier" in caplog.text


def test_a_live_verifier_is_found_through_its_pointer(
    tmp_path: Path, tiny_verifier_dir: Path
) -> None:
    root = tmp_path / "verifier"
    (root / "versions").mkdir(parents=True)
    (root / "versions" / "v1").symlink_to(tiny_verifier_dir, target_is_directory=True)
    (root / "LIVE").write_text("v1\n")
    assert find_verifier_dir(root) == root / "versions" / "v1"
    (root / "LIVE").write_text("v2\n")
    with pytest.raises(ArtifactError, match="v2"):
        find_verifier_dir(root)


def test_a_foreign_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deskbot-verifier.json").write_text('{"format": "something/9", "labels": []}')
    with pytest.raises(ArtifactError, match="not a deskbot.claim-verifier"):
        ClaimVerifier(tmp_path)


def test_every_sentence_of_a_passage_passes_against_that_passage(guard: GroundingGuard) -> None:
    # Identity is support: the verifier alone refused about 2% of these (those with "can't").
    for entry in FAQ.values():
        passages = cited(entry.id)
        for sentence in passage_units(entry.answer):
            if len(sentence.split()) >= 5:
                check = guard.check_sentence(sentence + " [1]", passages)
                assert check.decision.ok, (entry.id, sentence, check.decision)
                assert check.passage_id == entry.id


def test_only_a_whole_sentence_of_the_passage_counts_as_quoted() -> None:
    whole = (
        "Topping up with a personal debit or credit card issued in the UK, EEA or "
        "Switzerland is free."
    )
    assert quoted_in(whole.upper() + " [1]", TOP_UP_FEE) == "top-up-by-card-charge"
    # A part of a sentence can drop a condition; it is judged as a claim instead.
    assert quoted_in("Topping up with a personal debit or credit card is free.", TOP_UP_FEE) is None
    assert quoted_in("Yes.", TOP_UP_FEE) is None
