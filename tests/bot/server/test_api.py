"""The HTTP API over the real bot: sessions, messages, streaming, feedback, handoff, the
Rasa REST channel, ops endpoints, and every kind of bad input."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deskbot.bot.server.container import Bot
from tests.bot.server.conftest import QUESTION, counts, expire, session


def test_message_reply_history_and_feedback(client: TestClient, bot: Bot) -> None:
    _conv, auth = session(client)
    r = client.post("/api/messages", json={"text": f"  {QUESTION}\n"}, headers=auth)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["kind"] == "faq" and reply["citations"] == ["exchange-rate"]
    assert reply["sources"][0]["id"] == "exchange-rate" and reply["turn_id"] > 0
    history = client.get("/api/history", headers=auth).json()
    assert [t["role"] for t in history] == ["user", "bot"]
    assert history[0]["text"] == QUESTION and history[1]["turn_id"] == reply["turn_id"]
    r = client.post("/api/feedback", json={"turn_id": reply["turn_id"], "value": 1}, headers=auth)
    assert r.json() == {"recorded": True, "reply": None}
    assert bot.store.get_turn(reply["turn_id"]).feedback == 1  # type: ignore[union-attr]


def test_streamed_reply_is_server_sent_events(client: TestClient) -> None:
    _conv, auth = session(client)
    with client.stream("POST", "/api/messages/stream", json={"text": QUESTION}, headers=auth) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    events = [block.split("\n", 1) for block in body.strip().split("\n\n")]
    names = [e[0] for e in events]
    assert names[-1] == "event: reply" and set(names[:-1]) == {"event: token"}
    pieces = "".join(json.loads(e[1].removeprefix("data: "))["text"] for e in events[:-1])
    final = json.loads(events[-1][1].removeprefix("data: "))
    assert pieces == final["text"] and final["kind"] == "faq"


def test_request_a_human_then_messages_wait_for_the_agent(client: TestClient, bot: Bot) -> None:
    conv, auth = session(client)
    client.post("/api/messages", json={"text": QUESTION}, headers=auth)
    r = client.post("/api/handoff", headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert body["reason"] == "customer_request" and body["status"] == "queued"
    assert body["reply"]["handoff"] is True
    silent = client.post("/api/messages", json={"text": "hello?"}, headers=auth).json()
    assert silent["text"] == "" and silent["kind"] == "handoff"
    queued = {h.id: h for h in bot.store.handoff_queue()}
    assert queued[body["handoff_id"]].conversation_id == conv
    bot.pipeline.hand_back(body["handoff_id"])
    back = client.post("/api/messages", json={"text": QUESTION}, headers=auth).json()
    assert back["kind"] == "faq"


def test_repeated_thumbs_down_hands_off(client: TestClient) -> None:
    _conv, auth = session(client)
    ids = [
        client.post("/api/messages", json={"text": QUESTION}, headers=auth).json()["turn_id"]
        for _ in range(2)
    ]
    first = client.post("/api/feedback", json={"turn_id": ids[0], "value": -1}, headers=auth)
    assert first.json()["reply"] is None
    second = client.post("/api/feedback", json={"turn_id": ids[1], "value": -1}, headers=auth)
    assert second.json()["reply"]["handoff_reason"] == "negative_feedback"


def test_rasa_rest_channel(client: TestClient, bot: Bot) -> None:
    r = client.post("/webhooks/rest/webhook", json={"sender": "alice", "message": QUESTION})
    assert r.status_code == 200
    (msg,) = r.json()
    assert msg["recipient_id"] == "alice" and msg["text"].startswith("From Sunday 22:00")
    r = client.post("/webhooks/rest/webhook", json={"sender": "alice", "message": "/card_arrival"})
    assert "order number" in r.json()[0]["text"]
    r = client.post("/webhooks/rest/webhook", json={"sender": "alice", "message": "NW654321"})
    assert r.json()[0]["text"].startswith("Card order NW654321 is being printed")
    # Another sender is another conversation.
    r = client.post("/webhooks/rest/webhook", json={"sender": "bob", "message": "NW654321"})
    assert "Card order" not in r.json()[0]["text"]
    alice = bot.store.conversation_for_customer("rest:alice", channel="rest")
    assert alice is not None and len(bot.store.history(alice.id)) == 6


def test_ops_endpoints_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["intent_model"] == "v1"
    metrics = client.get("/metrics").text
    for name in (
        "deskbot_turns_total",
        "deskbot_turn_step_seconds_bucket",
        "deskbot_handoffs_total",
        "deskbot_fallbacks_total",
    ):
        assert name in metrics
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/sessions",
        "/api/messages",
        "/api/messages/stream",
        "/api/history",
        "/api/feedback",
        "/api/handoff",
        "/webhooks/rest/webhook",
        "/metrics",
    } <= set(paths)
    assert client.get("/docs").status_code == 200


BAD_BODIES = [
    pytest.param({"text": ""}, 422, "text", id="empty"),
    pytest.param({"text": " \n\t "}, 422, "empty", id="whitespace"),
    pytest.param({"text": "a" * 2001}, 422, "longer than 2000", id="too-long"),
    pytest.param({"text": "hi\x00there"}, 422, "control characters", id="nul"),
    pytest.param({"text": "bell\x07"}, 422, "control characters", id="bell"),
    pytest.param({"text": 42}, 422, "text", id="number"),
    pytest.param({"text": ["hi"]}, 422, "text", id="list"),
    pytest.param({"text": None}, 422, "text", id="null"),
    pytest.param({"message": "hi"}, 422, "text", id="wrong-field"),
    pytest.param({"text": "hi", "extra": 1}, 422, "extra", id="extra-field"),
    pytest.param(["hi"], 422, "", id="not-an-object"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD_BODIES)
def test_bad_message_bodies_are_4xx_and_store_nothing(
    client: TestClient, bot: Bot, body: object, status: int, says: str
) -> None:
    _conv, auth = session(client)
    before = counts(bot)
    for path in ("/api/messages", "/api/messages/stream"):
        r = client.post(path, json=body, headers=auth)
        assert r.status_code == status, r.text
        assert says in r.json()["detail"]
    assert counts(bot) == before


def test_raw_bodies_invalid_utf8_bad_json_and_100kb(client: TestClient, bot: Bot) -> None:
    _conv, auth = session(client)
    before = counts(bot)
    headers = {**auth, "Content-Type": "application/json"}
    for raw in (b'{"text": "caf\xe9"}', b'{"text": "hi"', b"", b"\xff\xfe\x00"):
        r = client.post("/api/messages", content=raw, headers=headers)
        assert 400 <= r.status_code < 500, (raw, r.status_code, r.text)
        assert r.json()["detail"]
    big = json.dumps({"text": "a" * 100_000}).encode()
    r = client.post("/api/messages", content=big, headers=headers)
    assert r.status_code == 413 and "larger than" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is counted as it comes
        for _ in range(10):
            yield b" " * 10_000

    r = client.post("/api/messages", content=chunks(), headers=headers)
    assert r.status_code == 413
    r = client.post("/webhooks/rest/webhook", content=big, headers=headers)
    assert r.status_code == 413
    assert counts(bot) == before


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Token abc"}, id="not-bearer"),
        pytest.param({"Authorization": "Bearer "}, id="empty"),
        pytest.param({"Authorization": "Bearer nope"}, id="unknown"),
        pytest.param({"Authorization": "Bearer " + "x" * 5000}, id="huge"),
    ],
)
def test_bad_tokens_are_401_and_store_nothing(
    client: TestClient, bot: Bot, auth: dict[str, str]
) -> None:
    before = counts(bot)
    for method, path, body in (
        ("POST", "/api/messages", {"text": "hi"}),
        ("GET", "/api/history", None),
        ("POST", "/api/feedback", {"turn_id": 1, "value": 1}),
        ("POST", "/api/handoff", None),
    ):
        r = client.request(method, path, json=body, headers=auth)
        assert r.status_code == 401, (path, r.text)
        assert "token" in r.json()["detail"]
    assert counts(bot) == before


def test_expired_sessions_are_refused(client: TestClient, bot: Bot) -> None:
    conv, auth = session(client)
    expire(bot, conv)
    before = counts(bot)
    r = client.post("/api/messages", json={"text": "hi"}, headers=auth)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert counts(bot) == before


def test_nothing_of_another_session_is_revealed(client: TestClient, bot: Bot) -> None:
    _a, auth_a = session(client)
    conv_b, auth_b = session(client)
    secret = client.post("/api/messages", json={"text": QUESTION}, headers=auth_b).json()
    before = counts(bot)
    r = client.post(
        "/api/feedback", json={"turn_id": secret["turn_id"], "value": -1}, headers=auth_a
    )
    assert r.status_code == 404 and "your conversation" in r.json()["detail"]
    assert QUESTION not in r.text and conv_b not in r.text
    assert bot.store.get_turn(secret["turn_id"]).feedback is None  # type: ignore[union-attr]
    # The id of someone else's conversation is no token, and history is one's own.
    assert (
        client.get("/api/history", headers={"Authorization": f"Bearer {conv_b}"}).status_code == 401
    )
    assert client.get("/api/history", headers=auth_a).json() == []
    # A REST sender named like an API conversation does not reach it.
    r = client.post("/webhooks/rest/webhook", json={"sender": conv_b, "message": "hi"})
    assert r.status_code == 200
    assert len(bot.store.history(conv_b)) == 2
    assert counts(bot)[0] == before[0] + 2  # only the REST conversation's two turns


@pytest.mark.parametrize(
    "body",
    [
        {"turn_id": "1", "value": 1},
        {"turn_id": 1, "value": 0},
        {"turn_id": 1, "value": True},
        {"turn_id": -5, "value": 1},
        {"turn_id": 1},
    ],
)
def test_bad_feedback_is_422(client: TestClient, body: dict[str, object]) -> None:
    _conv, auth = session(client)
    assert client.post("/api/feedback", json=body, headers=auth).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"sender": "", "message": "hi"},
        {"sender": "a", "message": "   "},
        {"sender": 5, "message": "hi"},
        {"sender": "a\x00", "message": "hi"},
        {"message": "hi"},
    ],
)
def test_bad_rest_bodies_are_422(client: TestClient, bot: Bot, body: dict[str, object]) -> None:
    before = counts(bot)
    assert client.post("/webhooks/rest/webhook", json=body).status_code == 422
    assert counts(bot) == before


def test_an_unknown_token_is_refused_before_the_message_is_judged(
    client: TestClient, bot: Bot
) -> None:
    """POST /api/messages looks its token up on the turn's thread; a bad body with an
    unknown token is still 401, not 422, and a known token with a bad body is 422."""
    token = client.post("/api/sessions").json()["session_token"]
    before = counts(bot)
    unknown = {"Authorization": "Bearer " + "x" * 43}
    for body in (None, {"text": 3}, {"txt": "hi"}):
        r = client.post("/api/messages", json=body, headers=unknown)
        assert r.status_code == 401 and "token" in r.json()["detail"], (body, r.text)
    r = client.post("/api/messages", json={"text": 3}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422 and "text" in r.json()["detail"]
    assert counts(bot) == before


@pytest.mark.parametrize("body", [None, {}], ids=["no-body", "empty-object"])
def test_a_session_opens_without_a_body_or_with_an_empty_one(
    client: TestClient, bot: Bot, body: object
) -> None:
    conv_id, auth = session(client, body)
    conv = bot.store.get_conversation(conv_id)
    assert conv is not None and conv.customer_id is None and conv.channel == "api"
    assert client.get("/api/history", headers=auth).json() == []
    # A body that says something must still say all of it.
    r = client.post("/api/sessions", json={"customer_id": "a"})
    assert r.status_code == 422
    assert "customer_id and customer_hash go together" in r.json()["detail"]


def test_readyz_reports_the_generators_live_adapter_and_follows_promotions(
    bot_project: Path,
) -> None:
    """The adapter loaded into the (scripted) vLLM server at start, a promotion followed
    by the watcher without any turn, and a version the server refuses reported."""
    from pytest_httpserver import HTTPServer

    from deskbot.bot.core.config import GeneratorConfig, load_config
    from deskbot.bot.generation.adapters import AdapterRegistry
    from deskbot.bot.server.api import create_api
    from deskbot.bot.server.container import build_bot
    from tests.adapters import make_adapter
    from tests.bot.generation.conftest import FakeOpenAI, status

    registry = AdapterRegistry(bot_project / "var" / "models" / "generator")
    for seed, version in enumerate(("g1", "g2", "g3"), start=1):
        make_adapter(registry.versions_dir / version, seed=seed)
    registry.set_live("g1")
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    fake = FakeOpenAI(server)
    cfg = load_config(bot_project)
    generator = GeneratorConfig(
        backend="openai", url=fake.url, model="deskbot-generator", adapters=registry.root,
        adapters_served_at="/srv/registry/generator", retries=0,
    )  # fmt: skip
    bot = build_bot(dataclasses.replace(cfg, generator=generator))
    try:
        bot.warm_up()
        client = TestClient(create_api(bot))
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["generator_adapter"] == "g1"
        assert fake.loads == [
            {"lora_name": "g1", "lora_path": "/srv/registry/generator/versions/g1"}
        ]

        registry.set_live("g2")
        wait_until(lambda: client.get("/readyz").json()["generator_adapter"] == "g2")
        fake.load_actions = [status(404)]  # the server cannot find g3's files
        registry.set_live("g3")
        wait_until(lambda: len(fake.loads) == 3)
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded" and ready["generator_adapter"] == "g2"
        assert ready["degraded"][0].startswith("generator_adapter: still serving g2 (g3 refused")
    finally:
        bot.close()
        server.stop()


def wait_until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
