"""The API's privacy calls over the real bot: sessions with a signed customer id, and
`DELETE /api/me`, which erases the caller's data and nobody else's."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from deskbot.bot.core.config import BotConfig
from deskbot.bot.privacy.erasure import customer_hash
from deskbot.bot.server.container import Bot
from tests.bot.privacy.test_erasure import dump_all_tables
from tests.bot.server.conftest import session

KEY = "site-key-" + "q" * 40


@pytest.fixture(scope="module")
def bot_config() -> Callable[[BotConfig], BotConfig]:
    def with_key(cfg: BotConfig) -> BotConfig:
        return dataclasses.replace(cfg, privacy=dataclasses.replace(cfg.privacy, customer_key=KEY))

    return with_key


def open_session(client: TestClient, customer: str | None = None) -> dict[str, str]:
    body = (
        {"customer_id": customer, "customer_hash": customer_hash(KEY, customer)}
        if customer
        else None
    )
    return session(client, body)[1]


def say(client: TestClient, auth: dict[str, str], text: str) -> None:
    r = client.post("/api/messages", json={"text": text}, headers=auth)
    assert r.status_code == 200, r.text
    turn = r.json()["turn_id"]
    if turn:
        assert (
            client.post(
                "/api/feedback", json={"turn_id": turn, "value": 1}, headers=auth
            ).status_code
            == 200
        )


def test_a_customer_id_needs_the_sites_signature(client: TestClient, bot: Bot) -> None:
    ok = open_session(client, "cust-signed")
    conv = bot.store.conversation_by_token(ok["Authorization"].removeprefix("Bearer "))
    assert conv is not None and conv.customer_id == "cust-signed"
    forged = {"customer_id": "cust-victim", "customer_hash": customer_hash("guess", "cust-victim")}
    r = client.post("/api/sessions", json=forged)
    assert r.status_code == 403 and bot.store.customer_conversation_ids("cust-victim") == []
    for bad in (
        {"customer_id": "a"},
        {"customer_id": "", "customer_hash": "0" * 64},
        {"customer_id": " x", "customer_hash": customer_hash(KEY, " x")},
        {"customer_id": "x\n", "customer_hash": customer_hash(KEY, "x\n")},
        {"customer_id": "x" * 129, "customer_hash": customer_hash(KEY, "x" * 129)},
        {"customer_id": "x", "customer_hash": customer_hash(KEY, "x"), "extra": 1},
    ):
        assert client.post("/api/sessions", json=bad).status_code == 422, bad
    assert client.post("/api/sessions").status_code == 201  # anonymous, as before


def test_delete_me_erases_all_my_conversations_and_nobody_elses(
    client: TestClient, bot: Bot
) -> None:
    first = open_session(client, "cust-erase")
    say(client, first, "What exchange rates do you use? zebra-one")
    second = open_session(client, "cust-erase")
    say(client, second, "How do I top up my account? zebra-two")
    assert client.post("/api/handoff", headers=second).status_code == 200
    other = open_session(client, "cust-other")
    say(client, other, "What exchange rates do you use? walrus-one")
    anonymous = open_session(client)
    say(client, anonymous, "What exchange rates do you use? ocelot-one")

    r = client.delete("/api/me", headers=first)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["conversations"] == 2 and report["rows"]["handoffs"] == 1
    dump = dump_all_tables(bot.store)
    assert "zebra" not in dump and "cust-erase" not in dump
    assert "walrus-one" in dump and "ocelot-one" in dump and "cust-other" in dump
    # Both tokens of the erased customer are dead; the others still work.
    for auth in (first, second):
        assert client.get("/api/history", headers=auth).status_code == 401
        assert client.delete("/api/me", headers=auth).status_code == 401
    assert len(client.get("/api/history", headers=other).json()) >= 2

    # An anonymous session erases its own conversation only.
    r = client.delete("/api/me", headers=anonymous)
    assert r.status_code == 200 and r.json()["conversations"] == 1
    assert "ocelot-one" not in dump_all_tables(bot.store)
    assert "walrus-one" in dump_all_tables(bot.store)
    assert bot.store.erasures()[-1].requested_by == "customer"


def test_delete_me_needs_a_valid_session(client: TestClient, bot: Bot) -> None:
    auth = open_session(client, "cust-safe")
    say(client, auth, "What exchange rates do you use? yak-one")
    conv = bot.store.customer_conversation_ids("cust-safe")[0]
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {conv}"}):
        assert client.delete("/api/me", headers=headers).status_code == 401
    assert "yak-one" in dump_all_tables(bot.store)


def test_an_erasure_during_the_nightly_retraining_is_refused_and_erases_nothing(
    client: TestClient, bot: Bot
) -> None:
    from typer.testing import CliRunner

    from deskbot.bot.cli import load_plugins
    from deskbot.bot.nlu.registry import ModelRegistry
    from deskbot.training.nightly.job import WORK_DIR, RetrainLock

    auth = open_session(client, "cust-waits")
    say(client, auth, "What exchange rates do you use? heron-one")
    registry = ModelRegistry(bot.config.intents.registry)
    with RetrainLock(registry.root / WORK_DIR / "lock", engine=bot.store.engine):
        r = client.delete("/api/me", headers=auth)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "300" and "try again" in r.json()["detail"]
        cli = CliRunner().invoke(
            load_plugins(),
            ["forget", "--customer", "cust-waits", "-c", str(bot.config.root), "--yes"],
        )
        assert cli.exit_code != 0 and "retrain" in cli.output, cli.output
        assert "heron-one" in dump_all_tables(bot.store)  # nothing erased
    # once the night is over, the same request goes through
    assert client.delete("/api/me", headers=auth).status_code == 200
    assert "heron-one" not in dump_all_tables(bot.store)
