"""What people typed is shown as the text it is: inert (no HTML, no Markdown), and with no
escape characters on the page or in what a screen reader reads (issue #24)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.ui.conftest import LiveApp
from tests.ui.test_browser import _last_bot_turn, ask, log_in, open_widget, wait_until

pytestmark = pytest.mark.browser

MESSAGE = (
    "see northwindbank.example/help/card-arrival and https://shop.example.com/order-12345 "
    "(price: 5*2 = 10 > 8 <b>bold</b>)"
)
REAL_URL = "https://shop.example.com/order-12345"
# What escaping must never leave for people to see or hear.
ESCAPES = ("\\", "&gt;", "&lt;", "&amp;", "&#")

# Each chat message: who, the name screen readers read, the text shown, its links.
MESSAGES = """(root) => [...root.querySelectorAll('[aria-label*="message:"]')].map((m) => ({
  role: m.getAttribute('data-testid'),
  name: m.getAttribute('aria-label'),
  text: m.innerText.trim(),
  hrefs: [...m.querySelectorAll('a')].map((a) => a.getAttribute('href')),
  bold: m.querySelectorAll('b').length,
}))"""


def chat_messages(page: Any, root: str) -> list[dict[str, Any]]:
    return list(page.locator(root).evaluate(MESSAGES))


def assert_shown_as_typed(message: dict[str, Any], shown: str) -> None:
    """`message` (a customer's) shows `shown` exactly, links nowhere else, makes no tag."""
    assert message["text"] == shown, message
    assert message["bold"] == 0, message
    assert all(href == REAL_URL for href in message["hrefs"]), message
    # Read out as typed: text that Markdown would not act on carries no escape.
    for plain in ("see northwindbank.example/help/card-arrival and ", REAL_URL, "= 10 > 8"):
        assert plain in message["name"], message
    assert not any(e in message["name"] for e in ESCAPES[1:]), message  # no HTML entity


def assert_no_escapes(messages: list[dict[str, Any]]) -> None:
    for m in messages:
        assert not any(e in m["name"] for e in ESCAPES), m
        assert not any(e in m["text"] for e in ESCAPES), m


def test_typed_text_is_inert_and_shown_without_escape_characters(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    customer = open_widget(new_page, live_app.url)
    ask(customer, MESSAGE)
    reply = wait_until(lambda: _last_bot_turn(live_app))
    wait_until(lambda: len(chat_messages(customer, "#deskbot-chat")) >= 2)
    chat = customer.locator("#deskbot-chat")
    chat.get_by_text(reply.text[:30]).wait_for()

    mine, *bot = chat_messages(customer, "#deskbot-chat")
    assert mine["role"] == "user"
    assert_shown_as_typed(mine, MESSAGE)
    assert bot and all(m["role"] == "bot" for m in bot)
    assert_no_escapes(bot)
    assert customer.evaluate("window.__xss") is None

    # The same text in the agent console's transcript.
    customer.get_by_role("button", name="Talk to a person").click()
    wait_until(lambda: store.handoff_queue())
    agent = log_in(new_page, live_app.url)
    queue = agent.locator("#console-queue")
    queue.get_by_text("see northwindbank").filter(visible=True).first.click()
    transcript = agent.locator("#console-transcript")
    transcript.get_by_text("northwindbank.example").wait_for()
    (customer_line, *rest) = chat_messages(agent, "#console-transcript")
    first_line = customer_line["text"].split("\n")[0]
    assert first_line == f"Customer: {MESSAGE}", customer_line
    assert customer_line["bold"] == 0
    assert all(href == REAL_URL for href in customer_line["hrefs"]), customer_line
    assert_no_escapes(rest)
