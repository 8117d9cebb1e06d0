"""Scoring a generator on held-out cases: what counts as sent, refused and correct.

The replies are scripted (a generator that says what the test needs, through the
`Generator` protocol) so that each case has a known answer; the guard that judges them
is the real one, with the real encoder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.guard import GroundingGuard
from deskbot.bot.generation.protocol import GeneratorUnavailable
from deskbot.training.generator.scoring import (
    HeldOutCase,
    rouge_l,
    score_case,
    score_cases,
    summarize,
)
from tests.bot.generation.passages import DELIVERY

FEES = Passage(
    id="top-up-fees",
    text="Topping up with a UK debit card is free. Other cards pay a 2% fee.",
    score=0.5,
    source="faq",
)
REFERENCE = "Cards arrive 3 to 5 working days after they are posted [1]."


class Scripted:
    """A generator whose reply to a customer message is written in `replies`."""

    name = "scripted"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        reply = self.replies[history[-1].text]
        if reply == "<down>":
            raise GeneratorUnavailable("server down")
        yield from reply.split(" ")[:1]
        for word in reply.split(" ")[1:]:
            yield " " + word


def case(message: str, gold: str | None = "card-delivery-estimate") -> HeldOutCase:
    return HeldOutCase(
        id=message,
        history=(Turn("user", message),),
        passages=(DELIVERY, FEES),
        reference=REFERENCE,
        gold_passage=gold,
    )


def test_rouge_l_is_the_f1_of_the_longest_common_word_sequence() -> None:
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("x y", "a b") == 0.0
    # LCS "3 days" (2 words): precision 2/5, recall 2/7.
    assert rouge_l("cards arrive in 3 days", "your card arrives within 3 working days") == (
        pytest.approx(2 * (2 / 5) * (2 / 7) / (2 / 5 + 2 / 7))
    )
    # Citations are not words of the answer.
    assert rouge_l("Cards arrive [1].", "Cards arrive.") == 1.0
    assert rouge_l("", "anything") == 0.0


def test_a_supported_reply_is_sent_and_cites_its_gold_passage(guard: GroundingGuard) -> None:
    reply = (
        "Cards are posted within 2 working days and arrive 3 to 5 working days later in the UK [1]."
    )
    score = score_case(Scripted({"when?": reply}), guard, case("when?"))
    assert score.sent and score.refused == 0 and score.sentences == 1
    assert score.cited_gold is True
    assert score.rouge_l > 0.3


def test_an_invented_fact_is_refused_and_the_reply_falls_back(guard: GroundingGuard) -> None:
    reply = (
        "Cards are posted within 2 working days of ordering [1]. Express delivery costs £25 [1]."
    )
    score = score_case(Scripted({"express?": reply}), guard, case("express?"))
    assert not score.sent
    assert score.sentences == 2 and score.refused == 1
    assert "£25" in score.reason


def test_citing_another_passage_is_not_the_gold_one(guard: GroundingGuard) -> None:
    reply = "Topping up with a UK debit card is free [2]."
    score = score_case(Scripted({"fee?": reply}), guard, case("fee?"))
    assert score.sent and score.cited_gold is False
    assert score_case(Scripted({"fee?": reply}), guard, case("fee?", gold=None)).cited_gold is None


def test_a_generator_that_fails_counts_as_a_fallback_without_claims(
    guard: GroundingGuard,
) -> None:
    scores = score_cases(Scripted({"a": "<down>", "b": ""}), guard, [case("a"), case("b")])
    assert [s.sent for s in scores] == [False, False]
    assert scores[0].reason.startswith("generator unavailable")
    assert scores[1].reason == "empty reply"
    summary = summarize(scores)
    assert summary["sent_rate"] == 0.0 and summary["fallback_rate"] == 1.0
    assert summary["sentences"] == 0 and summary["refused_sentence_rate"] == 0.0


def test_summary_rates(guard: GroundingGuard) -> None:
    replies = {
        "1": "Cards arrive 3 to 5 working days later in the UK [1].",
        "2": "Express delivery costs £25 [1].",
        "3": "Topping up with a UK debit card is free [2].",
    }
    seen: list[str] = []
    scores = score_cases(
        Scripted(replies), guard, [case(k) for k in replies], on_case=lambda s: seen.append(s.id)
    )
    assert seen == ["1", "2", "3"]
    summary = summarize(scores)
    assert summary["cases"] == 3
    assert summary["sent_rate"] == pytest.approx(2 / 3)
    assert summary["refused_sentence_rate"] == pytest.approx(1 / 3)
    assert summary["cited_gold_rate"] == pytest.approx(2 / 3)
