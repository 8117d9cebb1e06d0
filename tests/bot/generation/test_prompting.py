"""Citations in replies: which passages a reply cites, and markers that cite nothing."""

from __future__ import annotations

from deskbot.bot.core.types import Passage
from deskbot.bot.generation.prompting import (
    CITATION,
    cited_passage_ids,
    drop_invalid_citations,
    strip_citations,
    system_prompt,
)

PASSAGES = [
    Passage(
        id="card-arrival", text="Cards arrive in 3 to 5 working days.", score=0.8, source="faq"
    ),
    Passage(id="express", text="Express delivery costs £10.", score=0.6, source="faq"),
]


def test_passages_are_numbered_as_they_are_cited() -> None:
    prompt = system_prompt(PASSAGES)
    assert "[1] Cards arrive" in prompt and "[2] Express" in prompt
    listed = prompt.split("Passages:")[1]
    assert [int(m.group(1)) for m in CITATION.finditer(listed)] == [1, 2]


def test_cited_ids_follow_the_order_of_first_citation() -> None:
    text = "Express costs £10 [2]. Cards arrive in 3 to 5 days [1][2]. See [9]."
    assert cited_passage_ids(text, PASSAGES) == ("express", "card-arrival")


def test_citations_of_passages_not_given_are_dropped() -> None:
    text = "Cards arrive in 3 to 5 days [1]. Express is faster [3]."
    assert drop_invalid_citations(text, len(PASSAGES)) == (
        "Cards arrive in 3 to 5 days [1]. Express is faster."
    )
    assert drop_invalid_citations("Nothing [1].", 0) == "Nothing."


def test_stripping_removes_every_marker_and_its_space() -> None:
    assert strip_citations("It costs £10 [2] or less [12].") == "It costs £10 or less."
