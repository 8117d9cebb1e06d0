"""The agent console's page in Debian's Chromium, against the real app, on a desktop
(1440x900) and a laptop (1280x720) screen."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from deskbot.bot.store import Handoff, SqlConversationStore
from deskbot.bot.store.models import utcnow
from tests.ui.conftest import LiveApp, axe_violations
from tests.ui.test_browser import log_in, wait_until

pytestmark = pytest.mark.browser

SCREENS = [(1440, 900), (1280, 720)]


@pytest.fixture(params=SCREENS, ids=[f"{w}x{h}" for w, h in SCREENS])
def screen(request: pytest.FixtureRequest) -> tuple[int, int]:
    return tuple(request.param)  # type: ignore[return-value]


@pytest.fixture
def console(live_app: LiveApp, new_page: Callable[..., Any], screen: tuple[int, int]) -> Any:
    """A page of the console, signed in as the test agent, on `screen`."""
    return log_in(new_page, live_app.url, screen=screen)


def handoff(
    store: SqlConversationStore, text: str, reason: str = "customer_request", **meta: Any
) -> Handoff:
    """A conversation whose customer wrote `text` and was handed off for `reason`."""
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", text, **meta)
    return store.open_handoff(conv.id, reason)


def pick(page: Any, text: str) -> None:
    """Pick the queue's row whose customer wrote `text`; wait for its transcript."""
    page.locator("#console-queue").get_by_text(text).filter(visible=True).first.click()
    page.locator("#console-transcript").get_by_text(text).wait_for()


def claim(page: Any, h: Handoff) -> None:
    page.get_by_role("button", name="Claim").click()
    page.get_by_text(f"You claimed conversation #{h.id}").wait_for()


def claimed(console: Any, store: SqlConversationStore, text: str) -> Handoff:
    """A handoff of a customer who wrote `text`, picked in the queue and claimed in `console`."""
    h = handoff(store, text)
    pick(console, text)
    claim(console, h)
    return h


def agent_turns(store: SqlConversationStore, h: Handoff) -> list[str]:
    return [t.text for t in store.history(h.conversation_id) if t.role == "agent"]


def test_enter_sends_the_reply_and_shift_enter_adds_a_line(live_app: LiveApp, console: Any) -> None:
    store = live_app.bot.store
    h = claimed(console, store, "my card never arrived")
    box = console.locator("#console-reply textarea")
    box.click()
    box.type("Hello,")
    box.press("Shift+Enter")
    box.type("checking now.")
    assert box.input_value() == "Hello,\nchecking now."
    assert agent_turns(store, h) == []
    box.press("Enter")
    wait_until(lambda: agent_turns(store, h) == ["Hello,\nchecking now."])
    wait_until(lambda: box.input_value() == "")
    assert console.get_by_text("Enter sends · Shift+Enter adds a line").is_visible()


@pytest.mark.parametrize(
    ("button", "confirmation"),
    [
        ("Resolve and close", "is resolved and closed"),
        ("Hand back to the bot", "is back with the bot"),
    ],
)
def test_closing_a_conversation_leaves_a_confirmation(
    live_app: LiveApp, console: Any, button: str, confirmation: str
) -> None:
    store = live_app.bot.store
    h = claimed(console, store, "my card never arrived")
    console.get_by_role("button", name=button).click()
    notice = console.locator("#console-notice")
    notice.get_by_text(f"Conversation #{h.id} {confirmation}").wait_for()
    # The queue no longer lists it, and the confirmation stays.
    wait_until(
        lambda: "my card never arrived" not in console.locator("#console-queue").inner_text()
    )
    console.locator("#console-pick input").click()  # any late redraw has landed by now
    assert f"Conversation #{h.id} {confirmation}" in notice.inner_text()


def test_actions_wait_for_a_conversation_to_act_on(live_app: LiveApp, console: Any) -> None:
    store = live_app.bot.store
    h = handoff(store, "my card never arrived")
    button = console.get_by_role
    for name in ("Claim", "Send reply", "Hand back to the bot", "Resolve and close"):
        assert button("button", name=name).is_disabled(), name
    pick(console, "my card never arrived")
    wait_until(lambda: button("button", name="Claim").is_enabled())
    assert button("button", name="Send reply").is_disabled()
    claim(console, h)
    for name in ("Send reply", "Hand back to the bot", "Resolve and close"):
        wait_until(lambda name=name: button("button", name=name).is_enabled())
    assert button("button", name="Claim").is_disabled()


def test_a_claimed_conversation_shows_how_long_it_waited_not_a_running_clock(
    live_app: LiveApp, console: Any
) -> None:
    store = live_app.bot.store
    h = handoff(store, "my card never arrived")
    assert store.claim_handoff(int(h.id or 0), "bob")
    asked = utcnow() - timedelta(hours=2)
    with store.engine.begin() as conn:
        conn.execute(
            update(Handoff)
            .where(col(Handoff.id) == h.id)
            .values(created_at=asked, claimed_at=asked + timedelta(seconds=42))
        )
    console.reload()
    queue = console.locator("#console-queue")
    queue.get_by_text("my card never arrived").filter(visible=True).first.wait_for()
    text = queue.inner_text()
    assert "42s" in text and "2h" not in text


def test_handoff_reasons_are_shown_in_words(live_app: LiveApp, console: Any) -> None:
    handoff(live_app.bot.store, "transfer money now", reason="action_unavailable")
    console.reload()
    queue = console.locator("#console-queue")
    queue.get_by_text("transfer money now").filter(visible=True).first.wait_for()
    assert "A task the bot started failed" in queue.inner_text()
    assert "action_unavailable" not in queue.inner_text()


def test_the_conversation_and_reply_box_fit_on_the_screen(
    live_app: LiveApp, console: Any, screen: tuple[int, int]
) -> None:
    store = live_app.bot.store
    for n in range(6):
        handoff(store, f"customer number {n} needs help with a long question about cards")
    console.reload()
    pick(console, "customer number 0")
    _, height = screen
    for selector in ("#console-transcript", "#console-reply textarea"):
        box = console.locator(selector).bounding_box()
        assert box is not None and box["y"] + min(box["height"], 120) <= height, selector
    button = console.get_by_role("button", name="Send reply").bounding_box()
    assert button is not None and button["y"] + button["height"] <= height


def test_the_label_form_is_under_the_queue_and_review_only(console: Any) -> None:
    form = console.locator("#console-label")
    form.wait_for()
    console.get_by_role("tab", name="Dashboard").click()
    console.locator("#dashboard-headline").get_by_text("automation rate").wait_for()
    form.wait_for(state="hidden")
    console.get_by_role("tab", name="Review").click()
    form.wait_for()
    console.get_by_role("tab", name="Queue").click()
    form.wait_for()


def test_review_headers_fit_and_rows_show_the_turns_before(live_app: LiveApp, console: Any) -> None:
    store = live_app.bot.store
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "hello there", intent="greet")
    store.append_turn(conv.id, "bot", "Hi! How can I help?", intent="greet", confidence=0.9)
    store.append_turn(conv.id, "user", "which shares should I buy", intent="x")
    store.append_turn(conv.id, "bot", "Here is how to top up.", intent="top_up", confidence=0.05)
    console.get_by_role("tab", name="Review").click()
    console.get_by_role("button", name="Refresh").first.click()
    least = console.locator("#review-least")
    cell = least.get_by_text("which shares should I buy").filter(visible=True).first
    cell.wait_for()
    lines = console.evaluate(
        """() => {
          const text = [...document.querySelectorAll('#review-least th span.header')]
            .find((h) => h.innerText.includes('confid'));
          const range = document.createRange();
          range.selectNodeContents(text);
          return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
        }"""
    )
    assert lines == 1
    cell.click()
    context = console.locator("#review-context")
    context.get_by_text("Here is how to top up.").wait_for()
    shown = context.inner_text()
    for text in ("hello there", "Hi! How can I help?", "which shares should I buy"):
        assert text in shown


def test_new_work_raises_the_unread_marker_and_the_title_count(
    live_app: LiveApp, console: Any
) -> None:
    store = live_app.bot.store
    mine = handoff(store, "my card never arrived")
    console.reload()
    pick(console, "my card never arrived")
    claim(console, mine)
    title = console.title()
    assert not title.startswith("(")

    handoff(store, "I was charged twice")  # a new handoff
    wait_until(lambda: console.title() == f"(1) {title}")
    unread = console.locator("#console-unread")
    unread.get_by_text("1 new").wait_for()
    queue = console.locator("#console-queue")
    queue.get_by_text("I was charged twice").filter(visible=True).first.wait_for()

    # The customer of the claimed conversation writes while the agent looks elsewhere.
    console.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {get: () => true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    store.append_turn(mine.conversation_id, "user", "are you still there?")
    wait_until(lambda: console.title() == f"(2) {title}")
    console.locator("#console-transcript").get_by_text("are you still there?").wait_for()
    # Opening the new handoff reads it.
    pick(console, "I was charged twice")
    wait_until(lambda: console.title() == f"(1) {title}")


@pytest.mark.parametrize("tab", ["Queue", "Review", "Dashboard"])
def test_each_tab_has_no_serious_accessibility_violations(
    axe_source: str, live_app: LiveApp, console: Any, tab: str
) -> None:
    store = live_app.bot.store
    h = handoff(store, "my card never arrived", intent="card_arrival")
    store.append_turn(h.conversation_id, "bot", "Cards take 3 days.", confidence=0.2)
    console.reload()
    console.get_by_role("tab", name=tab).click()
    if tab == "Queue":
        pick(console, "my card never arrived")
        wait_until(lambda: console.get_by_role("button", name="Claim").is_enabled())
    elif tab == "Review":
        review = console.locator("#review-least").get_by_text("Cards take")
        review.filter(visible=True).first.wait_for()
    else:
        console.locator("#dashboard-headline").get_by_text("automation rate").wait_for()
    assert axe_violations(console, source=axe_source) == []


def test_the_reply_box_and_actions_are_reachable_by_keyboard(
    live_app: LiveApp, console: Any
) -> None:
    store = live_app.bot.store
    h = claimed(console, store, "my card never arrived")
    box = console.locator("#console-reply textarea")
    box.focus()
    outline = console.evaluate(
        "() => getComputedStyle(document.activeElement).outlineStyle + ' ' +"
        " getComputedStyle(document.activeElement).boxShadow"
    )
    assert outline != "none none"
    console.keyboard.type("Typed with the keyboard only")
    for _ in range(6):  # Tab moves on to the send button
        console.keyboard.press("Tab")
        if console.evaluate("() => document.activeElement.innerText") == "Send reply":
            break
    console.keyboard.press("Enter")
    wait_until(lambda: agent_turns(store, h) == ["Typed with the keyboard only"])
