"""The grounding guard on handcrafted replies: what it must catch, what it must let through."""

from __future__ import annotations

import pytest

from deskbot.bot.core.types import Passage
from deskbot.bot.generation.guard import (
    GroundingGuard,
    content_coverage,
    extract_facts,
    split_sentences,
)
from deskbot.bot.generation.prompting import SYSTEM_RULES

DELIVERY = Passage(
    id="card-delivery-estimate",
    text=(
        "With free standard delivery, cards are posted within 2 working days of ordering and "
        "arrive 3 to 5 working days later in the UK, or 5 to 10 working days later in the EEA "
        "and Switzerland. If you need it sooner, choose express delivery for £10 when you order: "
        "UK orders placed before 14:00 on a working day arrive the next working day."
    ),
    score=0.8,
    source="faq",
    url="https://northwindbank.example/help/card-delivery-estimate",
)
CHARGE = Passage(
    id="extra-charge-on-statement",
    text=(
        "A £1 (or €1 or $1) charge is usually a temporary authorisation that hotels, fuel "
        "stations and online shops use to check that a card is valid. It shows as pending and "
        "is released automatically within 7 days, after which it disappears from your statement. "
        "Questions? Write to help@northwindbank.example or call +44 20 7946 0000."
    ),
    score=0.7,
    source="faq",
)
PASSAGES = [DELIVERY, CHARGE]


@pytest.mark.parametrize(
    ("reply", "fact"),
    [
        ("Express delivery costs £15 when you order.", "£15"),
        ("Express delivery costs 10 euros when you order.", "10 euros"),
        ("The temporary charge is released automatically within 7 weeks.", "7 weeks"),
        ("The temporary charge is released automatically within 7 working days.", "7 working days"),
        ("The temporary charge is released automatically within seven months.", "seven months"),
        ("Cards are posted within 4 working days of ordering.", "4 working days"),
        ("UK orders placed before 16:00 arrive the next working day.", "16:00"),
        ("A 2% fee applies to express delivery.", "2%"),
        ("See https://northwindbank.example/help/free-cards for card delivery.", "free-cards"),
        ("Read more at www.cards-fast.com about card delivery.", "www.cards-fast.com"),
        ("Write to support@northwind.example about the temporary charge.", "support@"),
        ("Call +44 20 7946 1234 about the temporary charge.", "7946 1234"),
        ("Cards are posted within 2 working days, 30 currencies included.", "30"),
    ],
)
def test_invented_facts_are_refused(guard: GroundingGuard, reply: str, fact: str) -> None:
    decision = guard.check(reply, PASSAGES)
    assert not decision.ok, decision
    assert any(fact in u for u in decision.unsupported), decision.unsupported


@pytest.mark.parametrize(
    "reply",
    [
        "Cards are posted within 2 working days and arrive 3 to 5 working days later in the UK [1].",
        "Your card should arrive 5 to 10 working days after it is posted in the EEA and Switzerland.",
        "If you need your card sooner, express delivery costs £10 when you order.",
        "The £1 charge is a temporary authorisation that is released within 7 days.",
        "I'm sorry for the worry. The £1 charge is a temporary check that the card is valid, released within seven days.",
        "You can write to help@northwindbank.example or call +44 20 7946 0000.",
        "More at https://northwindbank.example/help/card-delivery-estimate.",
    ],
)
def test_supported_paraphrases_pass(guard: GroundingGuard, reply: str) -> None:
    decision = guard.check(reply, PASSAGES)
    assert decision.ok, decision


def test_invented_product_name_is_refused(guard: GroundingGuard) -> None:
    decision = guard.check(
        "Cards are posted within 2 working days and work with Google Pay right away.", PASSAGES
    )
    assert not decision.ok
    assert "Google" in decision.unsupported


def test_sentence_off_the_passages_is_refused(guard: GroundingGuard) -> None:
    decision = guard.check(
        "Cards are posted within 2 working days. Ask a trusted friend or a family member to collect it for you.",
        PASSAGES,
    )
    assert not decision.ok
    assert decision.reason.startswith("unsupported sentence")


def test_echo_of_the_system_prompt_is_refused(guard: GroundingGuard) -> None:
    rules = SYSTEM_RULES.format(bot_name="Northwind Bank")
    decision = guard.check(f"Cards are posted within 2 working days. {rules}", PASSAGES)
    assert not decision.ok
    assert decision.reason == "echoes the system prompt"
    assert not guard.check("Sure. <|im_start|>system", PASSAGES).ok


def test_request_for_credentials_is_refused(guard: GroundingGuard) -> None:
    decision = guard.check("To check the charge, please tell me your card number.", PASSAGES)
    assert not decision.ok
    assert decision.reason == "asks for credentials"


def test_no_passages_nothing_passes(guard: GroundingGuard) -> None:
    assert not guard.check("Cards are posted within 2 working days.", []).ok
    assert not guard.check("", PASSAGES).ok


def test_fact_extraction_normalises() -> None:
    facts = extract_facts("Up to £1,000 a month, 0.5% above, 3 to 5 working days, 2pm [2].")
    assert ("gbp", "1000") in facts.money
    assert "0.5" in facts.percents
    assert ("3", "working", "day") in facts.durations and ("5", "working", "day") in facts.durations
    assert "14:00" in facts.times
    assert "2" not in facts.numbers  # [2] is a citation and 2pm a time, neither a number
    assert extract_facts("see [2]").numbers == set()


def test_sentence_split_keeps_decimals_and_abbreviations() -> None:
    assert split_sentences("A 0.5% fee applies, e.g. for GBP. Cards arrive soon!\nThanks") == [
        "A 0.5% fee applies, e.g. for GBP.",
        "Cards arrive soon!",
        "Thanks",
    ]


def test_content_coverage_tells_grounded_from_invented() -> None:
    assert content_coverage("Choose express delivery when you order.", DELIVERY.text) == 1.0
    assert content_coverage("Ask a trusted friend or family member.", DELIVERY.text) < 0.5
