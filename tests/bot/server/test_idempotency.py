"""Retried messages over the real API: a message sent again with its id (`message_id`
or the `Idempotency-Key` header, Rasa's message id on the REST channel) gets the first
copy's reply and is stored once, whether the first copy was answered, is being answered,
or was stored before its process died."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import text as sql

from deskbot.bot.server.container import Bot
from tests.bot.server.conftest import QUESTION, counts, session


def roles(client: TestClient, auth: dict[str, str]) -> list[str]:
    return [t["role"] for t in client.get("/api/history", headers=auth).json()]


def test_a_retry_gets_the_first_reply_and_stores_nothing(client: TestClient, bot: Bot) -> None:
    _conv, auth = session(client)
    body = {"text": QUESTION, "message_id": "m-1"}
    first = client.post("/api/messages", json=body, headers=auth)
    before = counts(bot)
    again = client.post("/api/messages", json=body, headers=auth)
    assert first.status_code == again.status_code == 200, again.text
    a, b = first.json(), again.json()
    assert (b["turn_id"], b["text"], b["kind"], b["citations"]) == (
        a["turn_id"],
        a["text"],
        a["kind"],
        a["citations"],
    )
    assert [s["id"] for s in b["sources"]] == [s["id"] for s in a["sources"]]
    assert counts(bot) == before and roles(client, auth) == ["user", "bot"]


def test_the_idempotency_key_header_and_the_stream_route_share_ids(client: TestClient) -> None:
    _conv, auth = session(client)
    keyed = {**auth, "Idempotency-Key": "k-42"}
    first = client.post("/api/messages", json={"text": QUESTION}, headers=keyed).json()
    with client.stream("POST", "/api/messages/stream", json={"text": QUESTION}, headers=keyed) as r:
        assert r.status_code == 200
        body = "".join(r.iter_text())
    final = json.loads(body.strip().split("\n\n")[-1].split("\n", 1)[1].removeprefix("data: "))
    assert (final["turn_id"], final["text"]) == (first["turn_id"], first["text"])
    assert roles(client, auth) == ["user", "bot"]


def test_an_id_reused_for_another_text_or_two_ids_that_differ_are_refused(
    client: TestClient, bot: Bot
) -> None:
    _conv, auth = session(client)
    client.post("/api/messages", json={"text": QUESTION, "message_id": "m-1"}, headers=auth)
    before = counts(bot)
    r = client.post("/api/messages", json={"text": "hello", "message_id": "m-1"}, headers=auth)
    assert r.status_code == 409 and r.json()["detail"].startswith("message_id:"), r.text
    r = client.post(
        "/api/messages",
        json={"text": "hello", "message_id": "m-2"},
        headers={**auth, "Idempotency-Key": "m-3"},
    )
    assert r.status_code == 422 and "differ" in r.json()["detail"]
    r = client.post("/api/messages", json={"text": "hi", "message_id": "no spaces"}, headers=auth)
    assert r.status_code == 422
    assert counts(bot) == before


def test_a_message_stored_before_its_process_died_is_answered_once_on_retry(
    client: TestClient, bot: Bot
) -> None:
    conv, auth = session(client)
    stored, _ = bot.store.append_message(conv, QUESTION, "lost-1")
    with bot.store.engine.begin() as db:  # the crash was longer ago than any turn lasts
        db.execute(
            sql("update turns set created_at = :t where id = :i"),
            {"t": stored.created_at - timedelta(hours=1), "i": stored.id},
        )
    retry = client.post(
        "/api/messages", json={"text": QUESTION, "message_id": "lost-1"}, headers=auth
    )
    assert retry.status_code == 200 and retry.json()["kind"] == "faq", retry.text
    assert roles(client, auth) == ["user", "bot"]
    answered = bot.store.reply_to(conv, int(stored.id or 0))
    assert answered is not None and answered.id == retry.json()["turn_id"]
    again = client.post(
        "/api/messages", json={"text": QUESTION, "message_id": "lost-1"}, headers=auth
    )
    assert again.json()["turn_id"] == retry.json()["turn_id"]
    assert roles(client, auth) == ["user", "bot"]


def test_copies_sent_at_once_make_one_turn_and_get_one_reply(client: TestClient) -> None:
    _conv, auth = session(client)
    replies: list[dict[str, object]] = []
    start = threading.Barrier(4)

    def send() -> None:
        start.wait()
        body = {"text": QUESTION, "message_id": "burst"}
        replies.append(client.post("/api/messages", json=body, headers=auth).json())

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["turn_id"] for r in replies}) == 1 and replies[0]["kind"] == "faq"
    assert roles(client, auth) == ["user", "bot"]


def test_a_retry_while_a_person_has_the_conversation_stays_silent(client: TestClient) -> None:
    _conv, auth = session(client)
    client.post("/api/handoff", headers=auth)
    body = {"text": "hello?", "message_id": "h-1"}
    first = client.post("/api/messages", json=body, headers=auth).json()
    again = client.post("/api/messages", json=body, headers=auth).json()
    assert first["kind"] == again["kind"] == "handoff" and again["text"] == ""
    assert [t["text"] for t in client.get("/api/history", headers=auth).json()].count("hello?") == 1


def test_the_rasa_channel_takes_the_message_id(client: TestClient, bot: Bot) -> None:
    body = {"sender": "retrying-app", "message": QUESTION, "message_id": "rasa-1"}
    first = client.post("/webhooks/rest/webhook", json=body)
    before = counts(bot)
    again = client.post("/webhooks/rest/webhook", json=body)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.json()[0]["text"]
    assert counts(bot) == before
