"""Rasa's REST channel closed by default (issue #22): a message needs a token, compared
in constant time; senders of different tokens never share a conversation; the channel
is open or off only when the config says so, and an old config is told."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from starlette.requests import Request

from deskbot.bot.core.config import BotConfig, config_from_dict
from deskbot.bot.core.errors import ConfigError
from deskbot.bot.server.container import Bot
from deskbot.bot.server.routers.rasa import rest_channel_notice, rest_credential, rest_customer
from tests.bot.server.conftest import QUESTION, counts

WEBHOOK = "/webhooks/rest/webhook"
TOKEN_A = "token-of-system-a-0123456789"
TOKEN_B = "token-of-system-b-9876543210"


@pytest.fixture(scope="module")
def bot_config() -> Callable[[BotConfig], BotConfig]:
    def closed(cfg: BotConfig) -> BotConfig:
        server = dataclasses.replace(
            cfg.server, rest_channel="token", rest_tokens=(TOKEN_A, TOKEN_B)
        )
        return dataclasses.replace(cfg, server=server)

    return closed


def test_a_message_without_the_token_is_401_and_stores_nothing(
    client: TestClient, bot: Bot
) -> None:
    before = counts(bot)
    body = {"sender": "alice", "message": QUESTION}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN_A}x"}):
        r = client.post(WEBHOOK, json=body, headers=headers)
        assert r.status_code == 401 and "token" in r.json()["detail"], headers
    assert client.post(f"{WEBHOOK}?token={TOKEN_A[:-1]}", json=body).status_code == 401
    assert counts(bot) == before
    r = client.post(WEBHOOK, json=body, headers={"Authorization": f"Bearer {TOKEN_A}"})
    assert r.status_code == 200 and r.json()[0]["recipient_id"] == "alice"
    # Rasa's clients send their token as ?token=.
    assert client.post(f"{WEBHOOK}?token={TOKEN_B}", json=body).status_code == 200


def test_senders_of_different_tokens_never_share_a_conversation(
    client: TestClient, bot: Bot
) -> None:
    a = {"Authorization": f"Bearer {TOKEN_A}"}
    b = {"Authorization": f"Bearer {TOKEN_B}"}
    client.post(WEBHOOK, json={"sender": "carol", "message": "/card_arrival"}, headers=a)
    r = client.post(WEBHOOK, json={"sender": "carol", "message": "NW654321"}, headers=a)
    assert r.json()[0]["text"].startswith("Card order NW654321")
    # The same sender under the other token starts from nothing: no slot, no history.
    r = client.post(WEBHOOK, json={"sender": "carol", "message": "NW654321"}, headers=b)
    assert "Card order" not in r.json()[0]["text"]
    conv_a = bot.store.conversation_for_customer(
        rest_customer("carol", _hash(TOKEN_A)), channel="rest"
    )
    conv_b = bot.store.conversation_for_customer(
        rest_customer("carol", _hash(TOKEN_B)), channel="rest"
    )
    assert conv_a is not None and conv_b is not None and conv_a.id != conv_b.id
    assert len(bot.store.history(conv_a.id)) == 4 and len(bot.store.history(conv_b.id)) == 2
    # The open channel's key (`rest:carol`) is neither.
    assert bot.store.conversation_for_customer("rest:carol", channel="rest") is None
    assert len(rest_customer("x" * 123, _hash(TOKEN_A))) <= 128


def _hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _request(query: str = "", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "query_string": query.encode(), "headers": raw})


def _with(bot: Bot, **server: Any) -> Any:
    return SimpleNamespace(
        config=dataclasses.replace(
            bot.config, server=dataclasses.replace(bot.config.server, **server)
        )
    )


def test_no_token_configured_is_403_off_is_404_open_takes_anyone(bot: Bot) -> None:
    with pytest.raises(HTTPException) as refused:
        rest_credential(_request(), _with(bot, rest_tokens=()))
    assert refused.value.status_code == 403 and "DESKBOT_REST_TOKENS" in refused.value.detail
    with pytest.raises(HTTPException) as off:
        rest_credential(_request(), _with(bot, rest_channel="off"))
    assert off.value.status_code == 404
    assert rest_credential(_request(), _with(bot, rest_channel="open")) is None
    assert rest_customer("dave", None) == "rest:dave"  # as before: old conversations go on


def test_tokens_come_from_the_environment_only_and_old_configs_are_told(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DESKBOT_REST_TOKENS"):
        config_from_dict({"server": {"rest_tokens": [TOKEN_A]}}, root=tmp_path)
    cfg = config_from_dict(
        {}, root=tmp_path, environ={"DESKBOT_REST_TOKENS": f"{TOKEN_A}, {TOKEN_B}"}
    )
    assert cfg.server.rest_channel == "token" and cfg.server.rest_tokens == (TOKEN_A, TOKEN_B)
    assert TOKEN_A not in repr(cfg)
    with pytest.raises(ConfigError, match="16 characters"):
        config_from_dict({}, root=tmp_path, environ={"DESKBOT_REST_TOKENS": "short"})
    notice = rest_channel_notice("token", ())
    assert notice is not None and "DESKBOT_REST_TOKENS" in notice and "403" in notice
    assert rest_channel_notice("token", (TOKEN_A,)) is None
    assert "public network" in (rest_channel_notice("open", ()) or "")
