"""The console's customer panel and Find tab (`ui.console.customer`, `ui.console.find`)
in Debian's Chromium against the real app: who the customer is beside the transcript,
their other conversations, search by words and by filters, resolved conversations opened
read-only, and the page and language passed by the embed script through the widget's URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deskbot.bot.store import SqlConversationStore
from tests.ui.conftest import LiveApp, axe_violations
from tests.ui.test_browser import log_in, wait_until

pytestmark = pytest.mark.browser

PAGE = "https://shop.example/help/cards?from=app"


@pytest.fixture
def console(live_app: LiveApp, new_page: Callable[..., Any]) -> Any:
    """A page of the console on a 1280x720 laptop, signed in as the test agent."""
    return log_in(new_page, live_app.url, screen=(1280, 720))


def said(store: SqlConversationStore, *texts: str, **customer: Any) -> str:
    """A conversation whose customer wrote `texts`, each answered by the bot."""
    conv, _ = store.create_conversation(**customer)
    for text in texts:
        store.append_turn(conv.id, "user", text, intent="card_arrival", confidence=0.7)
        store.append_turn(conv.id, "bot", "Cards arrive in 3 days.", intent="card_arrival")
    return conv.id


def closed_by(store: SqlConversationStore, conversation_id: str, agent: str) -> None:
    h = store.open_handoff(conversation_id, "customer_request")
    assert store.claim_handoff(int(h.id or 0), agent)
    store.append_turn(conversation_id, "agent", "Refunded, sorry about that.", author=agent)
    store.resolve_handoff(int(h.id or 0), back_to_bot=False)


def visible(page: Any, selector: str) -> Any:
    return page.locator(selector).filter(visible=True)


def cell(table: Any, text: str) -> Any:
    """The table's visible cell holding `text`."""
    return table.get_by_text(text).filter(visible=True).first


def open_find(console: Any) -> Any:
    console.get_by_role("tab", name="Find").click()
    tab = visible(console, "#find-results")
    tab.wait_for()
    return tab


def search(console: Any, text: str) -> None:
    box = console.locator("#find-text textarea, #find-text input").first
    box.fill(text)
    console.get_by_role("button", name="Search", exact=True).click()


def customer_panel(console: Any, text: str, shown: str) -> Any:
    """Who the customer is, for the queue's conversation whose customer wrote `text`, once
    the reloaded console shows `shown` in it."""
    console.reload()
    cell(console.locator("#console-queue"), text).click()
    who = console.locator("#queue-customer-who")
    who.get_by_text(shown).wait_for()
    return who


def test_the_agent_sees_who_the_customer_is_and_their_other_conversations(
    live_app: LiveApp, console: Any
) -> None:
    store = live_app.bot.store
    earlier = said(store, "my old card never came", customer_id="cust-ann")
    closed_by(store, earlier, "bob")
    current = said(
        store,
        "the new card is late too",
        customer_id="cust-ann",
        customer_name="Ann <b>Lee</b> *VIP*",
        page=PAGE,
        language="en-GB",
        channel="api",
    )
    said(store, "someone else's question", customer_id="cust-other")
    store.open_handoff(current, "customer_request")
    who = customer_panel(console, "the new card is late too", "cust-ann")
    shown = who.inner_text()
    # The name as the site typed it, as text (never bold, never a tag).
    assert "Ann <b>Lee</b> *VIP*" in shown
    assert who.locator("b, strong em, em").filter(has_text="VIP").count() == 0
    for value in (PAGE, "en-GB", "API"):
        assert value in shown, value
    past = console.locator("#queue-customer-past")
    cell(past, "my old card never came").wait_for()
    assert "closed by bob" in past.inner_text()
    assert "someone else" not in past.inner_text()
    assert "the new card is late too" not in past.inner_text()  # the one on screen

    # The past conversation opens read-only in the Find tab.
    cell(past, "my old card never came").click()
    transcript = console.locator("#find-transcript")
    transcript.get_by_text("Refunded, sorry about that.").wait_for()
    assert "read-only" in console.locator("#find-title").inner_text()
    assert console.get_by_role("tab", name="Find").get_attribute("aria-selected") == "true"
    assert visible(console, "#console-reply").count() == 0
    assert console.get_by_role("button", name="Send reply").filter(visible=True).count() == 0


def test_search_by_text_and_by_filter_opens_a_resolved_conversation_read_only(
    live_app: LiveApp, console: Any
) -> None:
    store = live_app.bot.store
    refund = said(store, "I want a refund of the 50% fee", customer_name=None)
    closed_by(store, refund, "alice")
    said(store, "a fee of 500 pounds")  # `%` is no wildcard: not found by "50%"
    said(store, "where is my card")
    results = open_find(console)
    cell(results, "where is my card").wait_for()  # every conversation, first

    search(console, "50%")
    found = console.locator("#find-found")
    found.get_by_text("1 conversation found").wait_for()
    assert "a fee of 500" not in results.inner_text()
    assert "closed by alice" in results.inner_text()

    search(console, "")
    console.locator("#find-status input").click()
    console.get_by_role("option", name="Closed").first.click()
    console.get_by_role("button", name="Search", exact=True).click()
    found.get_by_text("1 conversation found").wait_for()
    cell(results, "I want a refund of the 50% fee").click()

    transcript = console.locator("#find-transcript")
    transcript.get_by_text("Refunded, sorry about that.").wait_for()
    assert "closed" in console.locator("#find-title").inner_text()
    # Read-only: nothing to write with, nothing to claim or close.
    for name in ("Send reply", "Claim", "Resolve and close", "Save label"):
        assert console.get_by_role("button", name=name).filter(visible=True).count() == 0, name
    assert visible(console, "#find-customer textarea").count() == 0


def test_a_bad_date_is_refused_with_what_to_type(live_app: LiveApp, console: Any) -> None:
    said(live_app.bot.store, "where is my card")
    open_find(console)
    console.locator("#find-since input, #find-since textarea").first.fill("07/12/2026")
    console.get_by_role("button", name="Search", exact=True).click()
    console.locator("#find-found").get_by_text("must be a date like 2026-12-07").wait_for()


def test_the_find_tab_has_no_serious_accessibility_violations(
    axe_source: str, live_app: LiveApp, console: Any
) -> None:
    store = live_app.bot.store
    closed_by(store, said(store, "refund please", customer_id="cust-9", page=PAGE), "alice")
    results = open_find(console)
    cell(results, "refund please").click()
    console.locator("#find-transcript").get_by_text("refund please").wait_for()
    assert axe_violations(console, source=axe_source) == []


def test_the_embedding_page_and_its_language_reach_the_agent(
    live_app: LiveApp, new_page: Callable[..., Any], console: Any
) -> None:
    # A shop's page (served by the browser itself, on the app's origin: Chromium lets no
    # other origin load a script from loopback) embeds the widget with the script tag;
    # the script passes the page and its language in the widget's URL.
    shop = live_app.url + "/shop/help/cards"
    html = (
        '<html lang="fr-ca"><body><h1>Shop</h1>'
        f'<script src="{live_app.url}/widget.js"></script></body></html>'
    )
    host = new_page(1024, 768)
    host.route(shop + "*", lambda route: route.fulfill(content_type="text/html", body=html))
    host.goto(shop + "?session=secret#top")
    host.click("#deskbot-open")
    box = host.frame_locator("#deskbot-frame").locator("#deskbot-input textarea")
    box.fill("I need to talk to a person about my card")
    box.press("Enter")
    store = live_app.bot.store

    def identified() -> Any:
        convs = store.search_conversations().results
        return convs and convs[0].conversation.language == "fr-CA" and convs[0].conversation

    conv = wait_until(identified, timeout=30)
    # The page without its query and fragment (they may hold tokens); no customer id.
    assert conv.page == shop and conv.customer_id is None and conv.channel == "web"
    if store.active_handoff(conv.id) is None:
        store.open_handoff(conv.id, "customer_request")
    who = customer_panel(console, "talk to a person", "fr-CA")
    assert shop in who.inner_text() and "chat widget" in who.inner_text()
