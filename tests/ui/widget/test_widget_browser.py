"""The customer widget in Debian's Chromium, on a 390x844 phone page and a desktop page:
long words, messages typed during a reply, handoff states, the greeting, the survey and
accessibility. What the customer sees is read from the page; what happened, from the store.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.ui.conftest import LiveApp, axe_violations
from tests.ui.test_browser import ask, wait_until

pytestmark = pytest.mark.browser

PHONE = (390, 844)
DESKTOP = (1280, 900)
NO_SIDE_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def open_chat(new_page: Callable[..., Any], url: str, size: tuple[int, int] = PHONE) -> Any:
    page = new_page(*size)
    page.goto(url + "/")
    page.wait_for_selector("#deskbot-input textarea")
    return page


def conversations(app: LiveApp) -> dict[str, list[Any]]:
    """Every conversation's turns (role, text, ...), in the order they were stored."""
    from sqlmodel import col, select

    from deskbot.bot.store import TurnRecord

    with app.bot.store.session() as s:
        rows = s.exec(select(TurnRecord).order_by(col(TurnRecord.id))).all()
    out: dict[str, list[Any]] = {}
    for t in rows:
        out.setdefault(t.conversation_id, []).append(t)
    return out


def answered(app: LiveApp, n: int, *, others: tuple[str, ...] = ()) -> list[Any] | None:
    """The one conversation's turns (not counting `others`) once it holds `n` customer
    messages, each answered."""
    convs = [turns for c, turns in conversations(app).items() if c not in others]
    if len(convs) != 1:
        return None
    turns = convs[0]
    said = [t for t in turns if t.role == "user"]
    replies = [t for t in turns if t.role == "bot" and t.text]
    return turns if len(said) == n and len(replies) >= n and turns[-1].role == "bot" else None


def said(app: LiveApp) -> list[str]:
    """What the customers wrote, in the order it was stored."""
    return [t.text for turns in conversations(app).values() for t in turns if t.role == "user"]


THINKING = "…"
LONG_MESSAGES = [
    "please check https://northwindbank.example/help/" + "very-long-path-segment" * 12,
    "my reference is REF" + "0123456789ABCDEF" * 20 + " what happened?",
    "```\nprint('" + "x" * 240 + "')\n```",
    "y" * 2000,
]


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_long_words_wrap_inside_bubbles_and_the_page_never_scrolls_sideways(
    live_app: LiveApp, new_page: Callable[..., Any], size: tuple[int, int]
) -> None:
    page = open_chat(new_page, live_app.url, size)
    chat = page.locator("#deskbot-chat")
    for i, message in enumerate(LONG_MESSAGES, start=1):
        ask(page, message)
        # Stored and dealt with (answered, or queued for a person after clarifications).
        wait_until(lambda i=i: len(said(live_app)) == i)
        chat.get_by_text(message[-40:].strip("`\n")).first.wait_for()
        chat.get_by_text(THINKING, exact=True).wait_for(state="detached")
        assert page.evaluate(NO_SIDE_SCROLL), (size, message[:30])
        assert page.get_by_role("button", name="Send").is_visible()
    send_box = page.get_by_role("button", name="Send").bounding_box()
    assert send_box["x"] + send_box["width"] <= size[0]
    page.reload()
    page.wait_for_selector("#deskbot-input textarea")
    chat.get_by_text(LONG_MESSAGES[-1][-40:]).first.wait_for()
    assert page.evaluate(NO_SIDE_SCROLL)


FIRST = "my pin is blocked, how do I unblock it?"
TYPED_DURING_REPLY = "and can I do it abroad?"
QUICK = ["hello?", "what exchange rate do you use?", "is there an age limit?", "my top up failed"]


def hold_first_reply(app: LiveApp, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The reply to FIRST waits until the returned event is set: a slow reply, made certain."""
    release = threading.Event()
    pipeline = app.bot.pipeline
    real = pipeline.handle_stream

    def held(conversation_id: str, text: str, **kw: Any) -> Iterator[Any]:
        if text == FIRST:
            assert release.wait(timeout=60)
        yield from real(conversation_id, text, **kw)

    monkeypatch.setattr(pipeline, "handle_stream", held)
    return release


def test_text_typed_during_a_reply_stays_in_the_box(
    live_app: LiveApp, new_page: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = hold_first_reply(live_app, monkeypatch)  # until the customer has typed
    page = open_chat(new_page, live_app.url)
    box = page.locator("#deskbot-input textarea")
    ask(page, FIRST)
    page.locator("#deskbot-chat").get_by_text("…").wait_for()  # the reply is under way
    box.click()
    page.keyboard.type(TYPED_DURING_REPLY, delay=15)
    typed.set()
    wait_until(lambda: answered(live_app, 1))
    page.locator("#deskbot-chat").get_by_text(re.compile("^Sources?:")).first.wait_for()
    assert box.input_value() == TYPED_DURING_REPLY
    page.keyboard.press("Enter")
    turns = wait_until(lambda: answered(live_app, 2), timeout=60)
    assert [t.text for t in turns if t.role == "user"] == [FIRST, TYPED_DURING_REPLY]


def test_five_messages_sent_in_a_row_during_a_reply_are_all_stored_in_order_and_answered(
    live_app: LiveApp, new_page: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first reply is held until all five are sent: they are typed while it is being
    # written, however slow the machine running the test. The test does not time them:
    # under the load of a shared test machine Playwright's own round trips took over 1 s.
    all_sent = hold_first_reply(live_app, monkeypatch)
    page = open_chat(new_page, live_app.url)  # no conversation yet: the first one starts it
    box = page.locator("#deskbot-input textarea")
    sent = [FIRST, *QUICK]
    for text in sent:
        box.fill(text)
        box.press("Enter")
    all_sent.set()
    try:
        turns = wait_until(lambda: answered(live_app, len(sent)), timeout=90)
    except AssertionError:
        stored = {
            c: [(t.role, t.text[:40]) for t in ts] for c, ts in conversations(live_app).items()
        }
        raise AssertionError(f"not all answered; stored: {stored}") from None
    assert [t.text for t in turns if t.role == "user"] == sent
    assert [t.role for t in turns] == ["user", "bot"] * len(sent)  # each answered, in order
    assert all(t.text for t in turns)
    assert box.input_value() == ""
    mine = page.locator("#deskbot-chat [data-testid=user]")
    for text in sent:
        mine.get_by_text(text, exact=True).wait_for()


def test_a_send_that_fails_after_the_turn_was_stored_is_sent_again_and_stored_once(
    live_app: LiveApp, new_page: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reply is stored, then the event fails before the page hears of it (as when the
    # connection drops): the page sends the same message again, with the same id.
    from deskbot.ui.widget.events import ChatEvents

    failures: list[str] = []
    real = ChatEvents.render

    def fail_once_after_storing(self: ChatEvents, conv_id: str) -> Any:
        turns = live_app.bot.store.history(conv_id)
        if not failures and turns and turns[-1].role == "bot" and turns[-1].text:
            failures.append(conv_id)
            raise ConnectionError("the connection dropped")
        return real(self, conv_id)

    monkeypatch.setattr(ChatEvents, "render", fail_once_after_storing)
    page = open_chat(new_page, live_app.url)
    box = page.locator("#deskbot-input textarea")
    box.fill(FIRST)
    box.press("Enter")
    box.fill(QUICK[0])
    box.press("Enter")
    turns = wait_until(lambda: answered(live_app, 2), timeout=90)
    assert failures  # it did fail once
    assert [(t.role, t.text) for t in turns if t.role == "user"] == [
        ("user", FIRST), ("user", QUICK[0])
    ]  # fmt: skip
    assert [t.role for t in turns] == ["user", "bot", "user", "bot"]  # answered once each
    assert all(t.message_id for t in turns if t.role == "user")  # the page's ids
    page.locator("#deskbot-chat [data-testid=user]").get_by_text(QUICK[0], exact=True).wait_for()
    assert page.locator("#deskbot-waiting-text").inner_text() == ""


def like_buttons(page: Any) -> int:
    chat = page.locator("#deskbot-chat")
    return (
        chat.get_by_role("button", name=re.compile("^(Like|Liked)$")).filter(visible=True).count()
    )


def test_handoff_states_are_announced_once_with_the_queue_position(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    earlier, _ = store.create_conversation(channel="web")
    store.append_turn(earlier.id, "user", "someone else waiting")
    store.open_handoff(earlier.id, "customer_request")  # first in the queue
    page = open_chat(new_page, live_app.url)
    chat = page.locator("#deskbot-chat")
    status = page.locator("#deskbot-status")
    person = page.get_by_role("button", name="Talk to a person")
    ask(page, FIRST)
    wait_until(lambda: answered(live_app, 1, others=(earlier.id,)))
    chat.get_by_role("button", name="Dislike").first.wait_for()
    person.click()
    status.get_by_text("Waiting for a person").wait_for()
    assert not person.is_visible()  # no second "passing you to a colleague"
    assert re.search(r"number 2 in the queue", status.inner_text())
    assert re.search(r"about \d+ minutes?", status.inner_text())

    ask(page, "are you still there?")
    chat.get_by_text(re.compile("number 2 in the queue")).wait_for()  # an answer, not silence
    (conv_id,) = [c for c in conversations(live_app) if c != earlier.id]
    assert [t.text for t in store.history(conv_id) if t.role == "user"][-1] == (
        "are you still there?"
    )
    passing = [t for t in store.history(conv_id) if t.kind == "handoff" and t.text]
    assert len(passing) == 1
    assert like_buttons(page) == 1  # the bot's answer only: not the handoff notice

    handoff = store.active_handoff(conv_id)
    assert handoff is not None and store.claim_handoff(int(handoff.id), "alice")
    status.get_by_text("You're talking to").wait_for()
    store.append_turn(conv_id, "agent", "Hello, Alice here.", author="alice")
    chat.get_by_text("Hello, Alice here.").wait_for()
    assert not person.is_visible()
    assert like_buttons(page) == 1  # not on the agent's message either

    live_app.bot.pipeline.hand_back(int(handoff.id))
    status.get_by_text(re.compile("bot", re.IGNORECASE)).wait_for()
    assert "back" in status.inner_text()
    person.wait_for()
    ask(page, "what exchange rate do you use?")
    wait_until(lambda: len([t for t in store.history(conv_id) if t.role == "bot" and t.text]) >= 3)
    wait_until(lambda: like_buttons(page) == 2)


def test_a_new_customer_is_greeted_with_suggested_questions_that_send_themselves(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    page = open_chat(new_page, live_app.url)
    chat = page.locator("#deskbot-chat")
    chat.get_by_text(re.compile("^Hi")).first.wait_for()
    suggestions = chat.get_by_role("button", name=re.compile(r"\?$"))
    assert 3 <= suggestions.count() <= 4
    question = suggestions.nth(1).inner_text().strip()
    suggestions.nth(1).click()
    turns = wait_until(lambda: answered(live_app, 1))
    assert turns[0].text == question
    mine = chat.locator("[data-testid=user]")
    mine.get_by_text(question, exact=True).wait_for()
    assert suggestions.count() == 0  # the greeting is for an empty conversation only
    page.reload()
    mine.get_by_text(question, exact=True).wait_for()
    assert suggestions.count() == 0


def test_after_an_agent_closes_the_conversation_the_customer_rates_it(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    page = open_chat(new_page, live_app.url)
    ask(page, FIRST)
    wait_until(lambda: answered(live_app, 1))
    page.get_by_role("button", name="Talk to a person").click()
    page.locator("#deskbot-status").get_by_text("Waiting for a person").wait_for()
    (conv_id,) = conversations(live_app)
    handoff = store.active_handoff(conv_id)
    assert handoff is not None and store.claim_handoff(int(handoff.id), "alice")
    store.append_turn(conv_id, "agent", "It is on its way again.", author="alice")
    store.resolve_handoff(int(handoff.id), back_to_bot=False)  # "Resolve and close"

    survey = page.locator("#deskbot-survey")
    survey.get_by_text("How would you rate").wait_for()
    survey.get_by_text("4 good").click()
    assert survey.get_by_role("radio", checked=True).count() == 1
    survey.get_by_role("textbox").fill("quick and kind")
    survey.get_by_role("button", name="Send rating").click()
    page.get_by_text("Thank you for your rating").wait_for()
    answer = wait_until(lambda: store.satisfaction(conv_id))
    assert (answer.score, answer.comment, answer.agent_id) == (4, "quick and kind", "alice")
    assert not survey.is_visible()
    page.reload()
    page.locator("#deskbot-chat").get_by_text("It is on its way again.").wait_for()
    page.locator("#deskbot-status").get_by_text("closed").wait_for()
    assert not survey.is_visible()  # asked once


def test_the_widget_is_usable_with_a_keyboard_and_a_screen_reader(
    axe_source: str, live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    page = open_chat(new_page, live_app.url)
    assert axe_violations(page, source=axe_source) == []
    box = page.get_by_role("textbox", name="Your message")
    assert box.count() == 1
    status = page.locator("#deskbot-status")
    assert status.get_attribute("aria-live") == "polite"
    assert status.get_attribute("role") == "status"

    # Keyboard only: type, send with Enter, then Tab to the thumbs and press one.
    box.focus()
    page.keyboard.type(FIRST)
    page.keyboard.press("Enter")
    wait_until(lambda: answered(live_app, 1))
    chat = page.locator("#deskbot-chat")
    chat.get_by_text(re.compile("^Sources?:")).first.wait_for()
    dislike = chat.get_by_role("button", name="Dislike").first
    assert dislike.get_attribute("aria-pressed") == "false"
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == "Dislike":
            break
    else:
        raise AssertionError("Dislike cannot be reached with Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")  # the focus is visible
    page.keyboard.press("Enter")
    pressed = chat.locator("button[aria-pressed=true]")
    pressed.first.wait_for()
    (conv_id,) = conversations(live_app)
    wait_until(lambda: [t.feedback for t in live_app.bot.store.history(conv_id)][-1] == -1)

    page.get_by_role("button", name="Talk to a person").click()
    status.get_by_text("Waiting for a person").wait_for()
    assert axe_violations(page, source=axe_source) == []
