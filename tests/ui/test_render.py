"""What people typed reaches the page as text: escaping and the customer's view."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from deskbot.bot.store.models import TurnRecord
from deskbot.ui.render import agent_transcript, customer_view, md_text, safe_url, sources_line

PAYLOAD = '<img src=x onerror="alert(1)"> **bold** [link](javascript:alert(1)) $$x$$'
# CommonMark with GFM's tables and strikethrough: what Gradio's renderer (marked) acts on.
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# Texts that Markdown or HTML would act on, and ordinary text that needs no escape.
TYPED = [
    PAYLOAD,
    "<script>window.x=1</script> <!-- c --> <https://x.example> 5 < 6 <3 a > b",
    "a_b_c snake_case _x_ __y__ *z* **w** ~~s~~ ~t~ 5*2 = 10",
    "# h\n## h2\n> q\n- a\n+ b\n* c\n1. one\n2) two\n---\n===\n***\n___",
    "head\n===\nhead\n---",
    "a | b\n--- | ---\n1 | 2",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "    code block\n\n    indented",
    "```\nfence\n```\n~~~\nfence\n~~~ `code` ``x``",
    "[a](https://x.example) ![i](https://x.example/i.png) [r][1]\n[1]: https://evil.example",
    "[foo]: https://evil.example\n[foo]",
    "&amp; &lt; &#60; &#x3c; AT&T & co",
    "C:\\Users\\me \\* \\\\ end\\",
    "1986. A great year",
    "-",
    "- a list?\n2) or a step",
    "Ünïcödé _ü_ é*x*é",
]


class _Shown(HTMLParser):
    """The text and the tags of rendered HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown(markdown: str) -> tuple[str, set[str]]:
    parser = _Shown()
    parser.feed(MARKDOWN.render(markdown))
    return " ".join("".join(parser.text).split()), set(parser.tags)


@pytest.mark.parametrize("typed", TYPED)
def test_md_text_renders_as_exactly_the_typed_text(typed: str) -> None:
    for wrapped in (md_text(typed), f"**Customer:** {md_text(typed, line_start=False)}"):
        text, tags = shown(wrapped)
        assert text.removeprefix("Customer: ") == " ".join(typed.split()), wrapped
        assert tags <= {"p", "strong"}, wrapped
    text, tags = shown(f"[{md_text(typed, link_text=True)}](https://bank.example/faq)")
    assert text == " ".join(typed.split()) and tags == {"p", "a"}


def test_md_text_leaves_ordinary_text_and_urls_as_typed() -> None:
    """No escape is shown, read out by a screen reader (Gradio's aria-label is the
    source), or taken into an autolinked URL's target (issue #24)."""
    for typed in (
        "Switzerland.",
        "Cards > Card delivery",
        "see northwindbank.example/help/card-arrival (price: 10 > 8, 5 * 2 = 10)",
        "https://shop.example.com/order-12345, card_arrival, 3-5 days! #42 [1]. $5",
    ):
        assert md_text(typed) == typed
    # After our own text on its line: no block can start there.
    assert md_text("- 2. # -", line_start=False) == "- 2. # -"


def test_md_text_keeps_an_escape_out_of_a_linked_url() -> None:
    # The URL holds an escaped `*`: it is not linked, so no backslash reaches a target.
    out = md_text("https://x.example/a*b and https://y.example/ok")
    assert out == "https\\://x.example/a\\*b and https://y.example/ok"
    assert md_text("<https://x.example>") == "\\<https\\://x.example>"


def test_md_text_leaves_no_tag_and_no_markdown_syntax() -> None:
    out = md_text(PAYLOAD)
    assert out.count("<") == out.count("\\<") == 1 and "\\<img" in out
    assert "\\*\\*bold\\*\\*" in out and "\\[link](javascript" in out and "\\$\\$x\\$\\$" in out


def test_safe_url_accepts_only_plain_http_links() -> None:
    assert safe_url("https://bank.example/help/cards") == "https://bank.example/help/cards"
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("https://x.example/a) [b](c") is None
    assert safe_url(None) is None


def _turn(i: int, role: str, text: str, **kw: object) -> TurnRecord:
    return TurnRecord(id=i, conversation_id="c", seq=i, role=role, text=text, **kw)


def test_customer_view_shows_sources_agent_names_and_hides_empty_turns() -> None:
    turns = [
        _turn(1, "user", PAYLOAD),
        _turn(
            2,
            "bot",
            "Cards arrive in 3 days.",
            kind="faq",
            intent="card_arrival",
            passages=[{"id": "card-arrival", "question": "Where is my card?", "url": None}],
            feedback=-1,
        ),
        _turn(3, "bot", "", kind="handoff"),
        _turn(4, "agent", "Hello <b>there</b>", author="alice"),
    ]
    view = customer_view(turns, {"alice": "Alice <Martin>"}.__getitem__)
    assert view.turn_ids == [1, 2, 4]
    assert [m["role"] for m in view.messages] == ["user", "assistant", "assistant"]
    assert "\\<img" in view.messages[0]["content"]
    assert "*Source: Where is my card?*" in view.messages[1]["content"]
    assert view.feedback == ["Dislike", None]
    agent = view.messages[2]["content"]
    assert agent.startswith("**Alice \\<Martin>** (support agent)")
    assert "Hello \\<b>there\\</b>" in agent


def test_sources_line_links_only_safe_urls() -> None:
    line = sources_line(
        [
            {"question": "Fees", "url": "https://bank.example/fees"},
            {"question": "Evil", "url": "javascript:alert(1)"},
        ]
    )
    assert line == "Sources: [Fees](https://bank.example/fees); Evil"


def test_agent_transcript_shows_intent_confidence_passages_and_labels() -> None:
    turns = [
        _turn(1, "user", "card?", intent="card_arrival", confidence=0.4),
        _turn(
            2,
            "bot",
            "Cards arrive in 3 days.",
            kind="faq",
            intent="card_arrival",
            confidence=0.41,
            passages=[{"id": "card-arrival", "question": "Where is my card?", "score": 0.72}],
        ),
    ]
    messages = agent_transcript(turns, str, labelled={2})
    bot = messages[1]["content"]
    assert "`#2`" in bot and "intent **card_arrival**" in bot and "confidence 0.41" in bot
    assert "passage card-arrival (0.72): Where is my card?" in bot and "labelled" in bot


def test_agent_transcript_shows_no_escape_for_plain_text() -> None:
    """A handoff turn (no intent) and a customer's plain text: nothing for a screen reader
    to read out as a backslash (Gradio's aria-label is the message's source)."""
    turns = [
        _turn(1, "user", "- see northwindbank.example/help. 10 > 8"),
        _turn(2, "bot", "I'm passing you to a colleague.", kind="handoff"),
    ]
    messages = agent_transcript(turns, str, labelled=set())
    assert messages[0]["content"] == "**Customer:** - see northwindbank.example/help. 10 > 8"
    assert "intent **-** · handoff" in messages[1]["content"]
    assert "\\" not in messages[1]["content"]
