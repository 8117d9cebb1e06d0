"""What people typed reaches the page as text: escaping and the customer's view."""

from __future__ import annotations

from deskbot.bot.store.models import TurnRecord
from deskbot.ui.render import agent_transcript, customer_view, md_text, safe_url, sources_line

PAYLOAD = '<img src=x onerror="alert(1)"> **bold** [link](javascript:alert(1)) $x$'


def test_md_text_leaves_no_tag_and_no_markdown_syntax() -> None:
    out = md_text(PAYLOAD)
    assert "<" not in out and ">" not in out
    assert "&lt;img src=x onerror=" in out
    assert "\\*\\*bold\\*\\*" in out and "\\[link\\]\\(javascript" in out and "\\$x\\$" in out


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
    assert "<" not in view.messages[0]["content"]
    assert "Source: Where is my card?" in view.messages[1]["content"].replace("\\", "")
    assert view.feedback == ["Dislike", None]
    agent = view.messages[2]["content"]
    assert agent.startswith("**Alice &lt;Martin&gt;** (support agent)")
    assert "Hello &lt;b&gt;there&lt;/b&gt;" in agent


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
    assert "`#2`" in bot and "card\\_arrival" in bot and "confidence 0.41" in bot
    assert "passage card\\-arrival (0.72)" in bot and "labelled" in bot
