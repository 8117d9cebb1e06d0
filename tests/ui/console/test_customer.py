"""The customer panel and the Find tab without a browser: what the site and the customer
typed shows as typed, statuses read as words, filters are checked, and no handler
answers a request without an agent's session."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.models import Conversation
from deskbot.bot.store.search import ConversationSummary
from deskbot.ui.accounts.auth import SessionSigner
from deskbot.ui.console.customer import customer_markdown, past_rows, status_words
from deskbot.ui.console.find import FindError, FindHandlers, conversation_filter
from deskbot.ui.console.handlers import ConsoleHandlers
from tests.ui.test_render import shown

TYPED = ["<b>Ann</b> *Lee*", "# not a heading", "1. not a list", "[x](https://evil.example)"]


def summary(**kw: Any) -> ConversationSummary:
    conv = Conversation(id="c" * 32, token_hash="x", status=kw.pop("status", "open"))
    values: dict[str, Any] = {
        "handoff_status": None,
        "agent": None,
        "intent": None,
        "first_message": "hello",
        "match": "",
        "turns": 2,
    }
    return ConversationSummary(conversation=conv, **{**values, **kw})


def test_the_panel_shows_what_the_site_passed_as_typed() -> None:
    for typed in TYPED:
        conv = Conversation(
            id="c" * 32,
            token_hash="x",
            customer_id=typed,
            customer_name=typed,
            language="en-GB",
            page="https://shop.example/a_b*c*",
        )
        text, tags = shown(customer_markdown(conv))
        assert f"Customer id: {typed}" in text and f"Name: {typed}" in text, text
        assert "Page: https://shop.example/a_b*c*" in text and "Language: en-GB" in text
        assert "\\" not in text
        assert tags <= {"h4", "ul", "li", "strong", "em", "p"}, (typed, tags)
    anonymous, _ = shown(customer_markdown(Conversation(id="c", token_hash="x")))
    assert "Customer id: anonymous" in anonymous and "Name: not given" in anonymous


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({}, "with the bot"),
        ({"handoff_status": "queued"}, "waiting for a person"),
        ({"handoff_status": "claimed", "agent": "alice"}, "with alice"),
        ({"handoff_status": "resolved", "agent": "bob"}, "back with the bot (after bob)"),
        ({"handoff_status": "resolved", "agent": "bob", "status": "closed"}, "closed by bob"),
    ],
)
def test_statuses_read_as_words(kw: dict[str, Any], words: str) -> None:
    assert status_words(summary(**kw)) == words
    assert words in past_rows([summary(**kw)])[0][0]


def test_filters_are_checked_and_say_what_to_type() -> None:
    where = conversation_filter(" 50% ", "closed", "alice", "any", "2026-12-01", "2026-12-07")
    assert (where.text, where.status, where.agent, where.intent) == ("50%", "closed", "alice", None)
    assert where.since is not None and where.since.isoformat() == "2026-12-01T00:00:00+00:00"
    assert where.until is not None and where.until.isoformat() == "2026-12-08T00:00:00+00:00"
    for args, reason in [
        (("", "any", "any", "any", "1/12/2026", ""), "must be a date like"),
        (("", "any", "any", "any", "2026-12-07", "2026-12-01"), "must not be after"),
        (("", "done", "any", "any", "", ""), "status is one of"),
        (("x" * 201, "any", "any", "any", "", ""), "at most 200 characters"),
    ]:
        with pytest.raises(FindError, match=reason):
            conversation_filter(*args)


def test_no_handler_answers_without_an_agents_session(store: SqlConversationStore) -> None:
    bot = SimpleNamespace(store=store, classifier=SimpleNamespace(labels=[]), pipeline=None)
    h = ConsoleHandlers(bot, SessionSigner(b"k" * 32, store))  # type: ignore[arg-type]
    f = FindHandlers(h)
    forged = gr.Request(cookies={"deskbot_agent": "alice.forged"}, headers={})
    calls = [
        lambda r: f.choices(r),
        lambda r: f.search("card", "any", "any", "any", "", "", r),
        lambda r: f.turn_page(1)(None, r),
    ]
    for call in calls:
        for request in (gr.Request(cookies={}, headers={}), forged):
            with pytest.raises(gr.Error, match="log in again"):
                call(request)
