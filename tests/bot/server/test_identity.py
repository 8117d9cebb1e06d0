"""What the site may say of its customer (`deskbot.bot.server.identity`): the checks, and
`POST /api/sessions` over the real bot, which stores what passes and nothing else."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deskbot.bot.core.config import BotConfig
from deskbot.bot.privacy.erasure import customer_hash
from deskbot.bot.server.container import Bot
from deskbot.bot.server.identity import (
    MAX_LANGUAGE,
    MAX_NAME,
    MAX_PAGE,
    CustomerContext,
    IdentityRefused,
    check_language,
    check_page,
    context_from_query,
)
from deskbot.bot.store.models import Conversation
from tests.bot.server.conftest import counts, session

KEY = "site-key-" + "k" * 40
PAGE = "https://shop.example/help/cards?from=app#top"


@pytest.fixture(scope="module")
def bot_config() -> Callable[[BotConfig], BotConfig]:
    def with_key(cfg: BotConfig) -> BotConfig:
        return dataclasses.replace(cfg, privacy=dataclasses.replace(cfg.privacy, customer_key=KEY))

    return with_key


def signed(customer_id: str) -> dict[str, str]:
    return {"customer_id": customer_id, "customer_hash": customer_hash(KEY, customer_id)}


def stored(bot: Bot, conversation_id: str) -> Conversation:
    conv = bot.store.get_conversation(conversation_id)
    assert conv is not None
    return conv


# -- the checks ----------------------------------------------------------------------


def test_the_limits_are_the_columns() -> None:
    columns = Conversation.model_fields
    for name, limit in (
        ("customer_name", MAX_NAME),
        ("page", MAX_PAGE),
        ("language", MAX_LANGUAGE),
    ):
        assert any(getattr(m, "max_length", None) == limit for m in columns[name].metadata), name


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("en", "en"), ("EN-gb", "en-GB"), ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419")],
)
def test_languages_are_bcp47_tags_in_their_usual_case(tag: str, expected: str) -> None:
    assert check_language(tag) == expected


@pytest.mark.parametrize("tag", ["english", "e", "en_GB", "en-", "-en", "en GB", "x" * 17, ""])
def test_other_languages_are_refused(tag: str) -> None:
    with pytest.raises(ValueError, match="BCP-47"):
        check_language(tag)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://shop.example/",
        "https://",
        "shop.example/help",
        "https://shop.example/a b",
        'https://shop.example/"><script>',
        "https://shop.example:port/",
        "https://shop.example/" + "a" * MAX_PAGE,
        "https://shöp.example/",
    ],
)
def test_a_page_is_an_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https:// URL"):
        check_page(url)


def test_the_widgets_query_follows_the_apis_rules() -> None:
    query = {
        **signed("cust-7"),
        "customer_name": " Ann  Lee ",
        "customer_page": PAGE,
        "customer_language": "en-gb",
    }
    assert context_from_query(query, KEY) == CustomerContext("cust-7", "Ann Lee", PAGE, "en-GB")
    # Other names are not ours (`page` is Gradio's own: a page of a multipage app).
    assert context_from_query(
        {"customer_page": PAGE, "page": "x", "utm_source": "mail"}, None
    ) == CustomerContext(page=PAGE)
    assert not context_from_query({}, KEY)
    refused = [
        ({**signed("cust-7"), "customer_hash": customer_hash("guess", "cust-7")}, "does not match"),
        ({"customer_id": "cust-7"}, "go together"),
        ({"customer_name": "Ann"}, "only with a signed customer_id"),
        ({"customer_language": "english"}, "BCP-47"),
        ({"customer_page": "javascript:alert(1)"}, "http"),
        ({**signed("cust-7"), "customer_name": "Ann\x07"}, "control characters"),
    ]
    for query, reason in refused:
        with pytest.raises(IdentityRefused, match=reason):
            context_from_query(query, KEY)
    with pytest.raises(IdentityRefused, match="no customer key"):
        context_from_query(signed("cust-7"), None)


# -- POST /api/sessions ----------------------------------------------------------------


def test_a_session_stores_the_sites_customer_page_and_language(
    client: TestClient, bot: Bot
) -> None:
    body = {**signed("cust-ann"), "customer_name": "Ann\tLee", "page": PAGE, "language": "EN-gb"}
    conv = stored(bot, session(client, body)[0])
    assert (conv.customer_id, conv.customer_name, conv.page, conv.language) == (
        "cust-ann",
        "Ann Lee",
        PAGE,
        "en-GB",
    )
    # The page and the language need no customer id.
    anonymous = stored(bot, session(client, {"page": PAGE, "language": "fr"})[0])
    assert (anonymous.customer_id, anonymous.page, anonymous.language) == (None, PAGE, "fr")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"customer_name": "Ann"}, "customer_name is taken only with a signed customer_id"),
        ({**signed("c"), "customer_name": ""}, "customer_name must be 1 to 128"),
        ({**signed("c"), "customer_name": "A" * (MAX_NAME + 1)}, "customer_name must be 1 to 128"),
        ({**signed("c"), "customer_name": "Ann\x00"}, "without control characters"),
        ({**signed("c"), "customer_name": 7}, "customer_name: Input should be a valid string"),
        ({"page": "javascript:alert(1)"}, "page: page must be an http:// or https:// URL"),
        ({"page": "https://x.example/" + "a" * MAX_PAGE}, "page: String should have at most 512"),
        ({"language": "english"}, "language: language must be a BCP-47 language tag"),
        ({"language": "en-GB-" + "x" * 20}, "language: String should have at most 16"),
        ({"page": PAGE, "customer_hash": "0" * 64}, "customer_id and customer_hash go together"),
    ],
)
def test_what_fails_a_check_is_a_422_saying_why_and_stores_nothing(
    client: TestClient, bot: Bot, body: dict[str, Any], reason: str
) -> None:
    before = counts(bot)
    r = client.post("/api/sessions", json=body)
    assert r.status_code == 422, r.text
    assert reason in r.json()["detail"]
    assert counts(bot) == before


def test_a_forged_customer_with_a_name_stores_nothing(client: TestClient, bot: Bot) -> None:
    before = counts(bot)
    forged = {"customer_id": "cust-victim", "customer_hash": customer_hash("guess", "cust-victim")}
    r = client.post("/api/sessions", json={**forged, "customer_name": "Victim", "page": PAGE})
    assert r.status_code == 403 and counts(bot) == before
