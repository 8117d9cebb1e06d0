"""One front door: the same bad messages (too long for `limits.max_message_chars`,
control characters, an expired session) sent through the API and through the widget's
handler get the same refusal, and neither stores anything."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deskbot.bot.core.config import BotConfig
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import Bot
from deskbot.bot.server.frontdoor import SESSION_REFUSED, Refused, accept_message, clean_message
from deskbot.ui.render import md_text
from deskbot.ui.widget.chat import chat_events
from tests.bot.server.conftest import counts, expire, session

MAX_CHARS = 40  # not the default 2,000: both doors must read the configured limit


@pytest.fixture(scope="module")
def bot_config() -> Callable[[BotConfig], BotConfig]:
    def short(cfg: BotConfig) -> BotConfig:
        return dataclasses.replace(
            cfg, limits=dataclasses.replace(cfg.limits, max_message_chars=MAX_CHARS)
        )

    return short


def widget_says(bot: Bot, message: str, token: str) -> tuple[Any, ...]:
    """What the widget's send handler shows for `message` (it must answer at once)."""
    (shown,) = list(chat_events(bot).respond(message, token))
    return shown


BAD_MESSAGES = [
    pytest.param("a" * (MAX_CHARS + 1), f"longer than {MAX_CHARS} characters", id="too-long"),
    pytest.param("  " + "a " * 30, f"longer than {MAX_CHARS} characters", id="long-once-cleaned"),
    pytest.param("hi\x00there", "control characters", id="nul"),
    pytest.param("bell\x07", "control characters", id="bell"),
    pytest.param("del\x7f", "control characters", id="delete"),
    pytest.param("x" * 50 + "\x1b", "control characters", id="long-and-control"),
]


@pytest.mark.parametrize(("message", "says"), BAD_MESSAGES)
def test_a_bad_message_gets_the_same_refusal_from_the_api_and_the_widget(
    bot: Bot, client: TestClient, message: str, says: str
) -> None:
    _conv, auth = session(client)
    _conv, token = chat_events(bot).svc.start()
    before = counts(bot)
    r = client.post("/api/messages", json={"text": message}, headers=auth)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert says in detail
    with pytest.raises(Refused) as refused:
        accept_message(message, MAX_CHARS)
    assert detail == refused.value.detail == f"text: {refused.value.reason}"

    chat, notice, _timer, kept_token, box, _seen = widget_says(bot, message, token)
    assert md_text(refused.value.reason) in notice and "not sent" in notice
    assert kept_token == token and box == message  # the text stays, to be fixed
    assert not isinstance(chat, list)  # nothing added to the chat
    # Rasa's channel: the same reason (its field is `message`).
    r = client.post("/webhooks/rest/webhook", json={"sender": "door", "message": message})
    assert r.status_code == 422 and refused.value.reason in r.json()["detail"]
    assert counts(bot) == before


def test_an_expired_session_gets_the_same_refusal_from_the_api_and_the_widget(
    bot: Bot, client: TestClient
) -> None:
    api_conv, auth = session(client)
    widget_conv, token = chat_events(bot).svc.start()
    expire(bot, api_conv)
    expire(bot, widget_conv)
    before = counts(bot)
    r = client.post("/api/messages", json={"text": "hello"}, headers=auth)
    assert r.status_code == 401 and r.json()["detail"] == SESSION_REFUSED

    _chat, notice, _timer, kept_token, box, _seen = widget_says(bot, "hello", token)
    assert md_text(SESSION_REFUSED) in notice and "start a new conversation" in notice
    assert kept_token is None and box == "hello"  # the next message starts a new session
    assert counts(bot) == before


def test_the_widget_stores_a_good_message_as_the_api_does(bot: Bot, client: TestClient) -> None:
    conv, auth = session(client)
    message = "  What exchange\n rates do you use? "
    assert client.post("/api/messages", json={"text": message}, headers=auth).status_code == 200
    *_, last = list(chat_events(bot).respond(message, None))
    widget_conv = bot.store.conversation_by_token(last[3])
    assert widget_conv is not None
    stored = [bot.store.history(c)[0].text for c in (conv, widget_conv.id)]
    assert stored == [clean_message(message)] * 2 == ["What exchange rates do you use?"] * 2


def test_the_configured_limit_is_the_one_checked(bot: Bot) -> None:
    """The default bot (2,000 characters) takes what this module's bot refuses."""
    relaxed = dataclasses.replace(
        bot.config, limits=dataclasses.replace(bot.config.limits, max_message_chars=2_000)
    )
    client = TestClient(create_api(dataclasses.replace(bot, config=relaxed)))
    _conv, auth = session(client)
    r = client.post("/api/messages", json={"text": "a" * (MAX_CHARS + 1)}, headers=auth)
    assert r.status_code == 200, r.text
