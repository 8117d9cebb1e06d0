"""The console handlers' own Markdown: what customers and agents typed stays as typed
where it follows our text on a line."""

from __future__ import annotations

from deskbot.bot.store.models import Agent, TurnRecord
from deskbot.ui.console.handlers import _err, review_context, signed_in
from tests.ui.test_render import shown

# Typed text that would start a heading or a list at the start of a line.
BLOCK_STARTS = ["# not a heading", "1. not a list", "- not a bullet", "> not a quote"]


def _turn(i: int, role: str, text: str, **kw: object) -> TurnRecord:
    return TurnRecord(id=i, conversation_id="c", seq=i, role=role, text=text, **kw)


def test_the_review_context_shows_typed_block_starts_as_text() -> None:
    for typed in BLOCK_STARTS:
        before = [_turn(1, "user", typed), _turn(2, "agent", typed, author="ann")]
        reviewed = _turn(3, "bot", typed, intent=typed, confidence=0.25)
        context = review_context(before, reviewed)
        # No backslash for a screen reader to read (Gradio's aria-label is the source).
        assert "\\" not in context, context
        text, tags = shown(context)
        assert text == f"Customer: {typed} Agent: {typed} Bot #3 ({typed}, 0.25): {typed}"
        assert tags <= {"p", "strong", "code"}, context


def test_the_header_and_refusals_show_typed_block_starts_as_text() -> None:
    for typed in BLOCK_STARTS:
        header = signed_in(Agent(username="ann", display_name=typed, role="agent"))
        assert shown(header) == (f"Signed in as {typed} (agent)", {"p", "strong"})
        assert shown(_err(typed)) == (f"Not done: {typed}", {"p", "strong"})
    # Markdown after our text still does nothing.
    assert shown(_err("<b>x</b> *y*")) == ("Not done: <b>x</b> *y*", {"p", "strong"})
