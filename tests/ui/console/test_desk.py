"""The help desk's tools in Debian's Chromium, against the real app: a canned reply
inserted with its placeholders filled, a note the customer's widget never shows,
release and transfer between two agents, and typing indicators both ways."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col

from deskbot.bot.store import Agent, Conversation, SqlConversationStore
from deskbot.ui.accounts.auth import create_agent
from tests.ui.conftest import AGENT, LiveApp, axe_violations
from tests.ui.console.test_page import agent_turns, claim, handoff, pick
from tests.ui.test_browser import ask, log_in, wait_until

pytestmark = pytest.mark.browser

BOB = ("bob", "battery-staple-horse", "Bob Stone")
ADMIN = ("root", "admin-password-123", "Rita Admin")
NOTE = "Internal: card stolen in Lisbon, do not reissue to the old address"
DESK = (1440, 900)  # the screen the desk is used on here
GREETING = "Hi {customer_name}, I'm {agent_name}. Your reference is {conversation_id}."


def admin(store: SqlConversationStore) -> Agent:
    return create_agent(store, ADMIN[0], ADMIN[1], display_name=ADMIN[2], role="admin")


def choose(page: Any, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option).first.click()


def customer_in_handoff(new_page: Callable[..., Any], app: LiveApp, text: str) -> Any:
    """A customer's widget (a phone) that wrote `text` and asked for a person."""
    page = new_page(390, 844)
    page.goto(app.url + "/")
    page.wait_for_selector("#deskbot-input textarea")
    ask(page, text)
    page.locator("#deskbot-chat").get_by_text("…", exact=True).wait_for(state="detached")
    wait_until(lambda: any(t.text == text for t in _user_turns(app)))
    page.get_by_role("button", name="Talk to a person").click()
    page.locator("#deskbot-status").get_by_text("Waiting for a person").wait_for()
    return page


def claimed_by_an_agent(new_page: Callable[..., Any], app: LiveApp, text: str) -> tuple[Any, Any]:
    """A customer's widget in a handoff after writing `text`, and the console of the agent
    who picked and claimed it."""
    widget = customer_in_handoff(new_page, app, text)
    console = log_in(new_page, app.url, AGENT, DESK)
    pick(console, text)
    claim(console, app.bot.store.handoff_queue()[0])
    return widget, console


def _user_turns(app: LiveApp) -> list[Any]:
    from sqlmodel import select

    from deskbot.bot.store import TurnRecord

    with app.bot.store.session() as s:
        return list(s.exec(select(TurnRecord).where(TurnRecord.role == "user")).all())


def test_an_agent_inserts_a_canned_reply_with_its_placeholders_filled(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    store.save_canned_reply(admin(store), "Greeting", GREETING)
    h = handoff(store, "my card never arrived")
    with store.engine.begin() as conn:
        conn.execute(
            update(Conversation)
            .where(col(Conversation.id) == h.conversation_id)
            .values(customer_name="Ann Lee")
        )
    console = log_in(new_page, live_app.url, AGENT, DESK)
    assert not console.locator("#canned-admin").is_visible()  # agents do not edit them
    pick(console, "my card never arrived")
    claim(console, h)
    choose(console, "#console-canned", "Greeting")
    console.get_by_role("button", name="Insert in reply").click()
    box = console.locator("#console-reply textarea")
    filled = f"Hi Ann Lee, I'm {AGENT[2]}. Your reference is {h.conversation_id}."
    wait_until(lambda: box.input_value() == filled)
    console.locator("#console-notice").get_by_text('Inserted "Greeting"').wait_for()
    assert agent_turns(store, h) == []  # inserted, not sent
    box.press("End")
    box.type(" How can I help?")
    box.press("Enter")
    wait_until(lambda: agent_turns(store, h) == [filled + " How can I help?"])


def test_an_admin_edits_canned_replies_and_an_unknown_placeholder_is_refused(
    axe_source: str, live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    admin(store)
    handoff(store, "my card never arrived")
    console = log_in(new_page, live_app.url, ADMIN, DESK)
    console.get_by_text("Manage canned replies (admins)").click()
    console.locator("#canned-title input, #canned-title textarea").first.fill("Email")
    console.locator("#canned-text textarea").fill("We wrote to {customer_email}.")
    console.get_by_role("button", name="Save canned reply").click()
    notice = console.locator("#canned-notice")
    notice.get_by_text("Not done").wait_for()
    assert "Unknown placeholder {customer_email}" in notice.inner_text()
    assert store.canned_replies() == []
    console.locator("#canned-text textarea").fill("Hello {customer_name}!")
    console.get_by_role("button", name="Save canned reply").click()
    notice.get_by_text('Saved the canned reply "Email"').wait_for()
    assert [(r.title, r.text) for r in store.canned_replies()] == [
        ("Email", "Hello {customer_name}!")
    ]
    # The queue tab with every tool of the desk shown, the editor open.
    pick(console, "my card never arrived")
    wait_until(lambda: console.get_by_role("button", name="Claim").is_enabled())
    assert axe_violations(console, source=axe_source) == []


def test_a_note_is_seen_by_agents_and_never_by_the_customer(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    widget, console = claimed_by_an_agent(new_page, live_app, "my card never arrived")
    console.locator("#console-note textarea").fill(NOTE)
    console.get_by_role("button", name="Add note").click()
    console.locator("#console-notes").get_by_text(NOTE).wait_for()
    assert f"{AGENT[2]} ·" in console.locator("#console-notes").inner_text()
    reply = console.locator("#console-reply textarea")
    reply.fill("I'm checking your card now.")
    reply.press("Enter")
    widget.locator("#deskbot-chat").get_by_text("I'm checking your card now.").wait_for()
    widget.reload()
    widget.locator("#deskbot-chat").get_by_text("I'm checking your card now.").wait_for()
    assert "Lisbon" not in widget.content()
    assert "Lisbon" not in widget.locator("body").inner_text()
    # Nor in what the API's customers read (a conversation of theirs, with a note).
    api = httpx.Client(base_url=live_app.url)
    token = api.post("/api/sessions").json()["session_token"]
    auth = {"Authorization": f"Bearer {token}"}
    api.post("/api/messages", json={"text": "my card never arrived"}, headers=auth)
    theirs = api.post("/api/handoff", headers=auth).json()
    store.add_note(store.get_handoff(theirs["handoff_id"]).conversation_id, "alice", NOTE)  # type: ignore[union-attr]
    history = api.get("/api/history", headers=auth)
    assert history.status_code == 200 and "Lisbon" not in history.text


def test_release_to_queue_and_transfer_between_agents(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    create_agent(store, BOB[0], BOB[1], display_name=BOB[2])
    widget = customer_in_handoff(new_page, live_app, "my card never arrived")
    status = widget.locator("#deskbot-status")
    alice = log_in(new_page, live_app.url, AGENT, DESK)
    bob = log_in(new_page, live_app.url, BOB, DESK)
    pick(alice, "my card never arrived")
    h = store.handoff_queue()[0]
    claim(alice, h)
    status.get_by_text(f"You're talking to {AGENT[2]}").wait_for()

    alice.get_by_role("button", name="Release to queue").click()
    alice.locator("#console-notice").get_by_text("is back in the queue").wait_for()
    assert store.get_handoff(int(h.id or 0)).status == "queued"  # type: ignore[union-attr]
    status.get_by_text(re.compile(r"You're number 1 in the queue")).wait_for()
    bob_queue = bob.locator("#console-queue")
    wait_until(lambda: "claimed by" not in bob_queue.inner_text())

    claim(alice, h)  # alice takes it again, then hands it to bob
    choose(alice, "#console-transfer-to", f"{BOB[2]} ({BOB[0]})")
    wait_until(lambda: alice.get_by_role("button", name="Transfer").is_enabled())
    alice.get_by_role("button", name="Transfer").click()
    alice.locator("#console-notice").get_by_text(f"now with {BOB[2]}").wait_for()
    wait_until(lambda: alice.get_by_role("button", name="Send reply").is_disabled())
    status.get_by_text(f"You're talking to {BOB[2]}").wait_for()
    bob_queue.get_by_text("claimed by bob").filter(visible=True).first.wait_for()  # by push
    pick(bob, "my card never arrived")
    moved = f"Transferred conversation #{h.id} to {BOB[2]}."
    bob.locator("#console-notes").get_by_text(moved).wait_for()
    wait_until(lambda: bob.get_by_role("button", name="Send reply").is_enabled())
    reply = bob.locator("#console-reply textarea")
    reply.fill("Bob here, I'll take it from now.")
    reply.press("Enter")
    widget.locator("#deskbot-chat").get_by_text("Bob here, I'll take it from now.").wait_for()


def test_typing_indicators_show_on_both_sides_and_go_when_typing_stops(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    widget, console = claimed_by_an_agent(new_page, live_app, "my card never arrived")
    widget.locator("#deskbot-status").get_by_text("You're talking to").wait_for()

    seen_by_customer = widget.locator("#deskbot-typing")
    console.locator("#console-reply textarea").click()
    console.keyboard.type("Let me look at your", delay=40)
    seen_by_customer.get_by_text(f"{AGENT[2]} is typing…").wait_for(timeout=8_000)
    seen_by_customer.get_by_text("is typing").wait_for(state="hidden", timeout=12_000)
    console.keyboard.type(" account", delay=40)  # typing again, then sending: gone at once
    seen_by_customer.get_by_text("is typing").wait_for(timeout=8_000)
    console.keyboard.press("Enter")
    widget.locator("#deskbot-chat").get_by_text("Let me look at your account").wait_for()
    seen_by_customer.get_by_text("is typing").wait_for(state="hidden", timeout=5_000)

    seen_by_agent = console.locator("#console-typing")
    widget.locator("#deskbot-input textarea").click()
    widget.keyboard.type("it was sent to my old", delay=40)
    seen_by_agent.get_by_text("Customer is typing…").wait_for(timeout=8_000)
    seen_by_agent.get_by_text("Customer is typing…").wait_for(state="hidden", timeout=12_000)
