from __future__ import annotations

from pathlib import Path

from deskbot.knowledge.sources.documents import read_document, section_key

GUIDE = """---
title: Card guide
tags: [cards]
url: https://bank.example/cards
---
# Cards

Everything about your card.

## Ordering a card

Order it in the app under Cards > New card.

It arrives in 3 to 5 days.

```
# not a heading: code
```

## Fees

Ordering is free.

## My card hasn't arrived. What should I do?
<!-- id: card-arrival; intent: card_arrival; tags: delivery, cards -->
Report it under Cards > Card delivery and we send a new one.
"""


def test_markdown_is_split_by_heading_with_lines_positions_and_stable_ids(tmp_path: Path) -> None:
    path = tmp_path / "cards.md"
    path.write_text(GUIDE, encoding="utf-8")
    sections, problems = read_document(path)
    assert problems == []
    assert [s.id for s in sections] == [
        "cards:cards",
        "cards:cards-ordering-a-card",
        "cards:cards-fees",
        "card-arrival",
    ]
    intro, ordering, fees, faq = sections
    assert (
        intro.title == "Cards" and intro.text == "Everything about your card." and intro.line == 8
    )
    assert ordering.title == "Cards > Ordering a card" and ordering.line == 12
    assert "# not a heading: code" in ordering.text and "3 to 5 days" in ordering.text
    assert [s.position for s in sections] == [0, 1, 2, 3]
    assert fees.tags == ("cards",) and fees.url == "https://bank.example/cards"
    # A question heading is an FAQ entry; its metadata comment is not part of the answer.
    assert faq.question == "My card hasn't arrived. What should I do?"
    assert faq.intent == "card_arrival" and faq.tags == ("delivery", "cards")
    assert faq.text == "Report it under Cards > Card delivery and we send a new one."

    # Editing one section (and adding another before it) leaves the other ids alone.
    path.write_text(
        GUIDE.replace("Ordering is free.", "Ordering costs nothing.").replace(
            "## Fees", "## Limits\n\nUp to 3 cards.\n\n## Fees"
        ),
        encoding="utf-8",
    )
    again, _ = read_document(path)
    ids = [s.id for s in again]
    assert set(ids) >= {s.id for s in sections} and "cards:cards-limits" in ids
    assert next(s for s in again if s.id == "cards:cards-fees").text == "Ordering costs nothing."


def test_long_sections_are_cut_at_paragraph_and_sentence_boundaries(tmp_path: Path) -> None:
    sentence = "Transfers to other banks take one working day to arrive. "
    body = "\n\n".join(sentence * 6 for _ in range(5))  # 5 paragraphs of ~340 chars
    path = tmp_path / "transfers.md"
    path.write_text(f"# Transfers\n\n{body}\n\n# Limits\n\nNone.\n", encoding="utf-8")
    sections, _ = read_document(path, max_chars=400)
    chunks = [s for s in sections if s.title == "Transfers"]
    assert len(chunks) == 5
    assert all(len(s.text) <= 400 for s in chunks)
    assert [s.id for s in chunks] == [
        "transfers:transfers",
        *(f"transfers:transfers:{k}" for k in range(2, 6)),
    ]
    assert [s.line for s in chunks] == [3, 5, 7, 9, 11]
    assert "".join(s.text for s in chunks).count("Transfers to other banks") == 30
    one_paragraph = tmp_path / "wall.txt"
    one_paragraph.write_text(sentence * 40 + "x" * 900, encoding="utf-8")
    pieces, _ = read_document(one_paragraph, max_chars=300)
    assert all(len(p.text) <= 300 for p in pieces) and len(pieces) >= 8


def test_the_pieces_of_a_section_share_its_key_and_nothing_else_does(tmp_path: Path) -> None:
    sentence = "Transfers to other banks take one working day to arrive. "
    body = "\n\n".join(sentence * 6 for _ in range(3))
    path = tmp_path / "transfers.md"
    path.write_text(
        f"# Transfers\n\n{body}\n\n## Limits\n\nNone.\n\n## Limits\n\nStill none.\n"
        "\n## Can I cancel one?\n\nNo.\n",
        encoding="utf-8",
    )
    sections, _ = read_document(path, max_chars=400)
    keys = {s.id: section_key(s) for s in sections}
    pieces = [k for i, k in keys.items() if i.rstrip(":23") == "transfers:transfers"]
    assert len(pieces) == 3 and len(set(pieces)) == 1
    assert len(set(keys.values())) == len(keys) - 2  # the two repeated "Limits" stay apart
    assert keys["transfers:transfers-limits"] != keys["transfers:transfers-limits-2"]


def test_html_headings_and_text_without_scripts(tmp_path: Path) -> None:
    path = tmp_path / "help.html"
    path.write_text(
        "<html><head><title>Help centre</title><style>p{color:red}</style></head>\n"
        "<body>\n<script>var secret = 1;</script>\n<h1>Payments</h1>\n"
        "<p>Card payments show at once.</p>\n<ul><li>Pending: up to 7 days</li></ul>\n"
        "<h2>Refunds</h2>\n<p>Refunds take &amp; arrive in 5 days.</p>\n</body></html>\n",
        encoding="utf-8",
    )
    sections, problems = read_document(path)
    assert problems == []
    assert [(s.title, s.line) for s in sections] == [
        ("Payments", 5),
        ("Payments > Refunds", 8),
    ]
    assert sections[0].text == "Card payments show at once.\n\nPending: up to 7 days"
    assert sections[1].text == "Refunds take & arrive in 5 days."
    assert "secret" not in " ".join(s.text for s in sections)


def test_plain_text_paragraphs_keep_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("First paragraph\nstill first.\n\n\nSecond one.\n", encoding="utf-8")
    sections, _ = read_document(path, max_chars=100)
    assert [(s.text, s.line) for s in sections] == [
        ("First paragraph\nstill first.\n\nSecond one.", 1)
    ]
    assert sections[0].id == "notes"


def test_a_huge_markdown_answer_is_a_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "faq.md"
    path.write_text(
        "## Small?\n\nYes.\n\n## Big?\n\n" + "word " * 2_000_000 + "\n", encoding="utf-8"
    )
    sections, problems = read_document(path)
    assert [s.question for s in sections] == ["Small?"]
    assert len(problems) == 1 and str(problems[0]).startswith(f"{path}:5: answer has ")
    headings_only = tmp_path / "toc.md"
    headings_only.write_text("# A\n## B\n", encoding="utf-8")
    assert [str(p) for p in read_document(headings_only)[1]] == [
        f"{headings_only}: no text to index (only headings or markup)"
    ]
