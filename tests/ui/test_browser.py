"""The widget and the console in Debian's Chromium, against the real app.

The app is the test project's (a fine-tuned model, the FAQ index, SQLite), served by
uvicorn on a loopback port. Screenshots of both views go to docs/screenshots/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.ui.conftest import AGENT, SCREENSHOTS, LiveApp


def click_and_see(page: Any, button: str, text: str) -> None:
    """Click `button` and wait for `text`; click once more if the first click was lost.

    Seen once in CI (not reproduced in 3 reruns): the console re-rendered the transcript
    just as the click landed and the event never reached the server. A click the server
    did handle is not repeated blindly: the second one would get an error, not `text`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(2):
        page.get_by_role("button", name=button).click()
        try:
            page.get_by_text(text).wait_for(timeout=15_000)
            return
        except PlaywrightTimeout:
            if attempt:
                raise


pytestmark = pytest.mark.browser

QUESTION = "my pin is blocked, how do I unblock it?"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
# Records every text the chat shows, so a test can tell a streamed reply from one that
# simply appeared.
RECORD_CHAT = """
window.__seen = [];
new MutationObserver(() => {
  const chat = document.querySelector('#deskbot-chat');
  if (chat) window.__seen.push(chat.innerText);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def wait_until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def ask(page: Any, text: str) -> None:
    page.fill("#deskbot-input textarea", text)
    page.keyboard.press("Enter")


def open_widget(new_page: Callable[..., Any], url: str) -> Any:
    page = new_page(390, 844)  # a phone
    page.add_init_script(RECORD_CHAT)
    page.goto(url + "/")
    page.wait_for_selector("#deskbot-input textarea")
    return page


def log_in(
    new_page: Callable[..., Any],
    url: str,
    who: tuple[str, str, str] = AGENT,
    screen: tuple[int, int] = (1280, 1000),
) -> Any:
    """The console in a new browser on `screen`, signed in as `who` (name, password, shown)."""
    page = new_page(*screen)
    page.goto(url + "/agent/")
    assert page.url.endswith("/agent/login")
    page.fill("#username", who[0])
    page.fill("#password", who[1])
    page.click("button[type=submit]")
    page.wait_for_selector("#console-header")
    page.get_by_text(f"Signed in as {who[2]}").wait_for()
    return page


def pick_option(page: Any, dropdown: str, search: str, option: str) -> None:
    box = page.locator(f"{dropdown} input")
    box.click()
    box.fill(search)
    page.get_by_role("option", name=option).first.click()


def test_customer_sees_a_streamed_answer_with_its_source_and_keeps_it_on_reload(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    page = open_widget(new_page, live_app.url)
    ask(page, QUESTION)
    chat = page.locator("#deskbot-chat")
    chat.get_by_text(re.compile("^Sources?:")).wait_for()

    bot_turn = wait_until(lambda: _last_bot_turn(live_app))
    assert bot_turn.kind == "faq" and bot_turn.passages
    shown = chat.inner_text()
    assert " ".join(bot_turn.text.split())[:60] in " ".join(shown.split())
    assert str(bot_turn.passages[0]["question"]) in shown
    # The answer streamed into a bubble that showed "…" while the bot worked.
    seen = page.evaluate("window.__seen")
    thinking = [i for i, s in enumerate(seen) if s.rstrip().endswith("…")]
    answered = [i for i, s in enumerate(seen) if "Source" in s]
    assert thinking and answered and thinking[0] < answered[0]

    # Thumbs-down on the reply reaches the store.
    chat.get_by_role("button", name="Dislike").last.click()
    wait_until(lambda: store.get_turn(int(bot_turn.id)).feedback == -1)

    # Usable on a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "customer-widget.png"))

    # A reload shows the same conversation; another browser sees none of it.
    page.reload()
    page.wait_for_selector("#deskbot-input textarea")
    chat.get_by_text(QUESTION).wait_for()
    other = open_widget(new_page, live_app.url)
    other.wait_for_timeout(1500)
    assert QUESTION not in other.locator("body").inner_text()

    # The script tag embeds the widget in another site's page.
    host = new_page(1024, 768)
    host.set_content(
        f'<html><body><h1>Shop</h1><script src="{live_app.url}/widget.js"></script></body></html>'
    )
    host.click("#deskbot-open")
    frame = host.frame_locator("#deskbot-frame")
    # The iframe loads the whole widget page: on 2 busy cores that took over the
    # default 15 s once in CI (the widget itself was fine), so it gets longer.
    frame.locator("#deskbot-input textarea").wait_for(timeout=45_000)


def _last_bot_turn(app: LiveApp) -> Any:
    from sqlmodel import col, select

    from deskbot.bot.store import TurnRecord

    with app.bot.store.session() as s:
        return s.exec(
            select(TurnRecord)
            .where(TurnRecord.role == "bot", col(TurnRecord.text) != "")
            .order_by(col(TurnRecord.id).desc())
        ).first()


def test_handoff_claim_live_reply_label_resolve_and_xss_shown_as_text(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    customer = open_widget(new_page, live_app.url)
    ask(customer, f"{XSS} my card never arrived")
    first_reply = wait_until(lambda: _last_bot_turn(live_app))
    customer.locator("#deskbot-chat").get_by_text(first_reply.text[:30]).wait_for()
    customer.get_by_role("button", name="Talk to a person").click()
    customer.get_by_text("Waiting for a person").wait_for()
    handoff = wait_until(lambda: store.handoff_queue())[0]
    assert handoff.reason == "customer_request"
    # A thumbs-down on the bot's reply (the first assistant message) reaches the store.
    customer.locator("#deskbot-chat").get_by_role("button", name="Dislike").first.click()
    wait_until(lambda: store.get_turn(int(first_reply.id)).feedback == -1)

    agent = log_in(new_page, live_app.url)
    queue = agent.locator("#console-queue")
    row = queue.get_by_text("Customer asked for a person").filter(visible=True).first
    row.wait_for()
    assert XSS in queue.inner_text()  # the payload is shown as the text it is
    row.click()
    transcript = agent.locator("#console-transcript")
    transcript.get_by_text("my card never arrived").wait_for()
    assert XSS in transcript.inner_text()
    assert re.search(r"confidence \d\.\d\d", transcript.inner_text())

    agent.get_by_role("button", name="Claim").click()
    agent.get_by_text(f"You claimed conversation #{handoff.id}").wait_for()
    customer.get_by_text(f"You're talking to {AGENT[2]}").wait_for()

    agent.fill("#console-reply textarea", "Hello, I'm checking your card now.")
    agent.get_by_role("button", name="Send reply").click()
    # The customer's page polls: the reply arrives without a reload, under Alice's name.
    customer.locator("#deskbot-chat").get_by_text("Hello, I'm checking your card now.").wait_for()
    assert f"{AGENT[2]} (support agent)" in customer.locator("#deskbot-chat").inner_text()

    # The review queue lists the disliked reply (the customer's text shown as text).
    agent.get_by_role("tab", name="Review").click()
    agent.get_by_role("button", name="Refresh").first.click()
    disliked = agent.locator("#review-down")
    cell = disliked.get_by_text("my card never arrived").filter(visible=True).first
    cell.wait_for()
    assert XSS in disliked.inner_text()
    cell.click()

    # Label the bot's reply: right intent from the searchable list, answer wrong + right one.
    bot_turns = [t for t in store.history(handoff.conversation_id) if t.role == "bot"]
    assert bot_turns[0].id == first_reply.id
    pick_option(agent, "#label-turn", f"#{bot_turns[0].id}", re.compile(f"^#{bot_turns[0].id} "))
    pick_option(agent, "#label-intent", "card_arr", "card_arrival")
    agent.get_by_label("The answer was wrong").check()
    agent.fill("#label-answer textarea", "Cards take 3 to 5 working days; we can resend it.")
    agent.get_by_role("button", name="Save label").click()
    agent.get_by_text(f"Saved the label of turn #{bot_turns[0].id}").wait_for()
    (label,) = store.labels()
    assert (label.turn_id, label.agent, label.intent) == (bot_turns[0].id, "alice", "card_arrival")
    assert label.answer_wrong and label.correct_answer.startswith("Cards take 3 to 5")

    agent.get_by_role("tab", name="Queue").click()
    transcript.get_by_text("labelled").wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    agent.screenshot(path=str(SCREENSHOTS / "agent-console.png"), full_page=True)
    click_and_see(agent, "Resolve and close", f"Conversation #{handoff.id} is resolved and closed")
    assert store.get_handoff(int(handoff.id)).status == "resolved"
    customer.get_by_text("closed this conversation").wait_for()

    # The dashboard plots what happened.
    agent.get_by_role("tab", name="Dashboard").click()
    agent.locator("#dashboard-headline").get_by_text("automation rate").wait_for()
    assert "v1" in agent.locator("#dashboard-headline").inner_text()
    wait_until(lambda: agent.locator(".gradio-container img").count() >= 4)
    agent.screenshot(path=str(SCREENSHOTS / "agent-dashboard.png"), full_page=True)

    for page in (customer, agent):
        assert page.evaluate("window.__xss") is None
        assert page.locator('img[src="x"]').count() == 0


def test_an_agent_marks_a_reply_out_of_scope_from_the_review_queue(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "which shares should I buy this year", intent="x")
    bot = store.append_turn(
        conv.id, "bot", "Here is how to top up.", intent="top_up", confidence=0.05, kind="faq"
    )
    agent = log_in(new_page, live_app.url)
    agent.get_by_role("tab", name="Review").click()
    agent.get_by_role("button", name="Refresh").first.click()
    least = agent.locator("#review-least")
    cell = least.get_by_text("which shares should I buy").filter(visible=True).first
    cell.wait_for()
    cell.click()
    pick_option(agent, "#label-turn", f"#{bot.id}", re.compile(f"^#{bot.id} "))
    # "Out of scope" heads the list of intents, and a search finds it
    box = agent.locator("#label-intent input")
    box.click()
    first = agent.locator("#label-intent").get_by_role("option").first
    first.wait_for()
    assert first.inner_text().startswith("Out of scope")
    pick_option(agent, "#label-intent", "out of", "Out of scope: a topic the bot must not answer")
    agent.get_by_role("button", name="Save label").click()
    agent.get_by_text(f"Saved the label of turn #{bot.id}").wait_for()
    label = next(x for x in store.labels() if x.turn_id == bot.id)
    assert (label.agent, label.intent, label.note) == ("alice", "out_of_scope", None)


def _join(fn_index: int) -> dict[str, Any]:
    return {"data": [], "fn_index": fn_index, "session_hash": "x1", "event_data": None}


def test_unauthenticated_visitors_get_no_console_data(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    store = live_app.bot.store
    conv, _ = store.create_conversation()
    secret = "my account number is 12345678"
    store.append_turn(conv.id, "user", secret)
    store.open_handoff(conv.id, "customer_request")

    with httpx.Client(base_url=live_app.url, follow_redirects=False, timeout=10) as http:
        page = http.get("/agent/")
        assert page.status_code == 303 and page.headers["location"].endswith("/agent/login")
        bodies = []
        for path in ("/agent/config", "/agent/gradio_api/info", "/agent/gradio_api/openapi.json"):
            r = http.get(path)
            assert r.status_code == 401, path
            bodies.append(r.text)
        for fn_index in range(40):  # every event of the console, called directly
            r = http.post("/agent/gradio_api/queue/join", json=_join(fn_index))
            assert r.status_code == 401
            bodies.append(r.text)
    forged = {"deskbot_agent": "YWxpY2V8OTk5OTk5OTk5OQ.AAAA"}  # alice, far expiry, bad MAC
    with httpx.Client(base_url=live_app.url, cookies=forged, timeout=10) as http:
        assert http.get("/agent/config").status_code == 401
    with httpx.Client(base_url=live_app.url, follow_redirects=False, timeout=10) as http:
        wrong = http.post("/agent/login", data={"username": "alice", "password": "nope-nope"})
        assert wrong.status_code == 303 and "failed=1" in wrong.headers["location"]
        assert "set-cookie" not in wrong.headers
        login_page = http.get("/agent/login?failed=1")
        assert login_page.headers["x-frame-options"] == "DENY"  # no clickjacking frame
        assert "x-frame-options" not in http.get("/").headers  # the widget may be framed
        bodies.append(login_page.text)
        assert not any(secret in b or conv.id in b for b in bodies)

    browser_page = new_page()
    browser_page.goto(live_app.url + "/agent/")
    browser_page.wait_for_selector("#username")
    assert secret not in browser_page.content()
    assert browser_page.locator("#console-queue").count() == 0

    agent = log_in(new_page, live_app.url)
    (cookie,) = [c for c in agent.context.cookies() if c["name"] == "deskbot_agent"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/agent"
    # The same calls with the session succeed: the 401s above were the login check.
    with httpx.Client(base_url=live_app.url, cookies={cookie["name"]: cookie["value"]}) as http:
        assert http.get("/agent/config").status_code == 200
        assert http.post("/agent/gradio_api/queue/join", json=_join(0)).status_code == 200
    agent.click("#console-logout")
    agent.wait_for_selector("#username")
    assert not [c for c in agent.context.cookies() if c["name"] == "deskbot_agent"]
