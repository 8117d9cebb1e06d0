from __future__ import annotations

import pytest

from deskbot.knowledge.errors import SourceError
from deskbot.knowledge.sources import markup
from deskbot.knowledge.sources.markup import Block


def blocks_of(blocks: list[Block]) -> list[tuple[str, str, int, int]]:
    return [(b.kind, b.text, b.line, b.level) for b in blocks]


def test_markdown_headings_paragraphs_and_fences_keep_their_lines() -> None:
    text = "# Cards #\n\nThey arrive.\nSoon.\n\nOrdering\n---\n```\n# not a heading\n\n```\n"
    assert blocks_of(markup.markdown_blocks(text, 2)) == [
        ("heading", "Cards", 3, 1),
        ("para", "They arrive.\nSoon.", 5, 0),
        ("heading", "Ordering", 8, 2),
        ("para", "```\n# not a heading\n\n```", 10, 0),
    ]


def test_html_blocks_skip_scripts_and_keep_the_title() -> None:
    html = "<title>Help</title><h2>Fees?</h2>\n<script>x()</script><p>None\n at all.</p><a "
    blocks, title = markup.html_blocks(html)
    assert title == "Help"
    assert blocks_of(blocks) == [("heading", "Fees?", 1, 2), ("para", "None at all.", 2, 0)]


def test_text_blocks_are_paragraphs() -> None:
    assert blocks_of(markup.text_blocks("a\nb\n\n\nc")) == [
        ("para", "a\nb", 1, 0),
        ("para", "c", 5, 0),
    ]


def test_front_matter_is_taken_off_with_its_line_count() -> None:
    rest, meta, lines = markup.front_matter("---\nid: cards\ntags: [a]\n---\n# T\n", "f.md")
    assert (rest, meta, lines) == ("# T\n", {"id": "cards", "tags": ["a"]}, 4)
    assert markup.front_matter("# T\n", "f.md") == ("# T\n", {}, 0)
    with pytest.raises(SourceError, match="f.md:1: front matter must be a mapping"):
        markup.front_matter("---\n- a\n---\n", "f.md")


def test_metadata_comments_are_pulled_out_of_the_text() -> None:
    text, meta = markup.parse_meta("Cards arrive.\n<!-- id: arrival; Intent: card_arrival -->")
    assert (text, meta) == ("Cards arrive.", {"id": "arrival", "intent": "card_arrival"})
    assert markup.parse_meta("no comment <!-- open") == ("no comment <!-- open", {})
