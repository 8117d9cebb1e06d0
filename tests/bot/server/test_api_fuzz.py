"""Fuzzing the HTTP API of the real bot (real model, real index, real SQLite and
PostgreSQL stores): any body (any JSON value, wrong types, huge strings, control
characters, invalid UTF-8, broken JSON) with any token (none, garbage, unknown, expired,
another session's) gives no 5xx; every 4xx is JSON with a `detail` message; and a refused
request stores nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text as sql

from deskbot.bot.core.config import DatabaseConfig, load_config
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import Bot, build_bot
from tests.bot.actions.action_server import configure, make_project
from tests.bot.server.conftest import QUESTION, expire, session
from tests.fuzzing import fuzz_settings, guard, hostile_bytes, hostile_text, scalars

pytestmark = pytest.mark.fuzz


@dataclasses.dataclass
class Api:
    """The app under test and the sessions the cases use."""

    bot: Bot
    client: TestClient
    mine: dict[str, str]  # a session with a bot reply to rate
    mine_turn: int
    other: dict[str, str]  # another customer's session
    other_turn: int  # a bot turn of the other session
    expired: dict[str, str]
    database: str


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    trained_model_dir: Path,
    faq_index_dir: Path,
    action_server: str,
) -> Iterator[Api]:
    project = make_project(tmp_path_factory.mktemp("fz") / "bot", trained_model_dir, faq_index_dir)
    config = configure(load_config(project), action_server)
    # Rate limits are tested on their own (test_ratelimit.py); here they would only
    # turn the cases into 429s.
    limits = dataclasses.replace(config.limits, ip_requests_per_minute=0)
    limits = dataclasses.replace(limits, session_requests_per_minute=0)
    config = dataclasses.replace(config, limits=limits)
    drop = None
    if request.param == "postgres":
        import psycopg

        admin = str(request.getfixturevalue("postgres_server"))
        name = f"deskbot_fuzz_{id(config) % 10**8}"
        with psycopg.connect(
            admin.replace("postgresql+psycopg", "postgresql"), autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        url = f"{admin.rsplit('/', 1)[0]}/{name}"
        config = dataclasses.replace(config, database=DatabaseConfig(url=url))
        drop = (admin, name)
    bot = build_bot(config)
    bot.warm_up()
    client = TestClient(create_api(bot), raise_server_exceptions=False)
    mine, mine_turn = session_with_reply(client)
    other, other_turn = session_with_reply(client)
    expired_conv, expired = session(client)
    expire(bot, expired_conv)
    yield Api(bot, client, mine, mine_turn, other, other_turn, expired, request.param)
    bot.close()
    bot.store.engine.dispose()
    if drop is not None:
        import psycopg

        with psycopg.connect(
            drop[0].replace("postgresql+psycopg", "postgresql"), autocommit=True
        ) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)')


def session_with_reply(client: TestClient) -> tuple[dict[str, str], int]:
    _conv, headers = session(client)
    r = client.post("/api/messages", json={"text": QUESTION}, headers=headers)
    assert r.status_code == 200, r.text
    return headers, int(r.json()["turn_id"])


def stored(bot: Bot) -> tuple[Any, ...]:
    """Everything a request could store: rows, feedback, conversation states."""
    with bot.store.engine.connect() as c:
        return tuple(
            c.execute(sql(q)).one()
            for q in (
                "select count(*), coalesce(max(id), 0) from turns",
                "select count(*), coalesce(sum(feedback), 0), count(feedback) from turns",
                "select count(*), coalesce(max(id), 0) from handoffs",
                "select count(*), max(updated_at), count(customer_id) from conversations",
                "select count(*) from conversations where status = 'open'",
            )
        )


# -- what the cases send --------------------------------------------------------------------------


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value (NaN and infinities too: Python's json writes them)."""
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=10,
    )


def texts() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(QUESTION),
        st.sampled_from(["hi", "/card_arrival", "NW654321", "talk to a person", "a" * 2001]),
        hostile_text(6),
        st.just("x" * 100_001),
        json_values(),
    )


@st.composite
def body(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> tuple[bytes | None, str]:
    """A request body (and its content type): the expected fields with any values, any
    JSON value, or raw bytes (broken JSON, invalid UTF-8, over the size limit)."""
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
        value: Any = {k: draw(fields[k]) for k in chosen}
        if draw(st.integers(0, 5)) == 0:
            value[draw(st.text(max_size=6))] = draw(scalars())
    elif kind <= 7:
        value = draw(json_values())
    else:
        raw = draw(
            st.one_of(
                hostile_bytes(),
                st.sampled_from(
                    [
                        b"",
                        b"{",
                        b'{"text": "caf\xe9"}',
                        b'{"text": NaN}',
                        b'{"turn_id": 1e999, "value": 1}',
                        b'{"turn_id": 1' + b"0" * 5000 + b', "value": 1}',
                        b"[" * 20_000 + b"]" * 20_000,
                        b'{"text": "' + b"a" * 20_000 + b'"}',
                        b"\xff\xfe{\x00}",
                    ]
                ),
            )
        )
        return raw, draw(st.sampled_from(["application/json", "text/plain", "multipart/form-data"]))
    try:
        data = json.dumps(value).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError):
        data = b"{}"
    return data, draw(st.sampled_from(["application/json", "application/json", "text/plain", ""]))


@st.composite
def auth(draw: st.DrawFn, api: Api) -> dict[str, str] | None:
    """Whose session the request claims: its own (a new one: None here), none, garbage,
    unknown, expired, or another customer's."""
    kind = draw(
        st.sampled_from(["own", "own", "mine", "none", "garbage", "unknown", "expired", "other"])
    )
    if kind == "own":
        return None
    if kind == "mine":
        return api.mine
    if kind == "none":
        return {}
    if kind == "expired":
        return api.expired
    if kind == "other":
        return api.other
    if kind == "unknown":
        return {"Authorization": "Bearer " + draw(st.text("abcdefXYZ0123456789-_", max_size=64))}
    value = draw(
        st.one_of(
            st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
            st.sampled_from(
                ["Bearer", "Bearer  ", "bearer x", "Basic Zm9vOmJhcg==", "Bearer " + "x" * 5000]
            ),
        )
    )
    return {"Authorization": value.encode("latin-1")}  # type: ignore[dict-item]


def turn_ids(api: Api) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([api.mine_turn, api.other_turn, 0, -1, 1, 2**31, 2**63, 2**64 + 1]),
        st.integers(),
        json_values(),
    )


def check(
    api: Api, target: str, method: str, path: str, draw: st.DrawFn, fields: dict[str, Any]
) -> None:
    client = api.client
    headers = draw(auth(api))
    if headers is None:
        _conv, headers = session(client)
    data, content_type = draw(body(fields))
    if content_type:
        headers = {**headers, "Content-Type": content_type}
    before = stored(api.bot)
    with guard(f"{target}[{api.database}]", "api"):
        r = client.request(method, path, content=data, headers=headers)
        assert r.status_code < 500, (r.status_code, r.text[:500])
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/json"), r.headers
            detail = r.json()["detail"]
            assert isinstance(detail, str) and detail.strip(), detail
            assert stored(api.bot) == before, (r.status_code, detail)
        elif path.endswith("/stream"):
            events = [e for e in r.text.split("\n\n") if e.strip()]
            assert events and events[-1].startswith("event: reply\ndata: ")
            json.loads(events[-1].split("data: ", 1)[1])
        else:
            r.json()


MESSAGE = {"text": texts()}


@fuzz_settings("api")
@given(data=st.data())
def test_sessions_fuzz(api: Api, data: st.DataObject) -> None:
    fields = {
        "customer_id": texts(),
        "customer_hash": st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64), texts()),
    }
    check(api, "api-sessions", "POST", "/api/sessions", data.draw, fields)


@fuzz_settings("api")
@given(data=st.data())
def test_messages_fuzz(api: Api, data: st.DataObject) -> None:
    check(api, "api-messages", "POST", "/api/messages", data.draw, MESSAGE)


@fuzz_settings("api")
@given(data=st.data())
def test_stream_fuzz(api: Api, data: st.DataObject) -> None:
    check(api, "api-stream", "POST", "/api/messages/stream", data.draw, MESSAGE)


@fuzz_settings("api")
@given(data=st.data())
def test_feedback_fuzz(api: Api, data: st.DataObject) -> None:
    fields = {
        "turn_id": turn_ids(api),
        "value": st.one_of(st.sampled_from([1, -1, 0, 2, True]), json_values()),
    }
    check(api, "api-feedback", "POST", "/api/feedback", data.draw, fields)


@fuzz_settings("api")
@given(data=st.data())
def test_handoff_fuzz(api: Api, data: st.DataObject) -> None:
    check(api, "api-handoff", "POST", "/api/handoff", data.draw, {"reason": texts()})


@fuzz_settings("api")
@given(data=st.data())
def test_history_fuzz(api: Api, data: st.DataObject) -> None:
    check(api, "api-history", "GET", "/api/history", data.draw, {"since": texts()})


@fuzz_settings("api")
@given(data=st.data())
def test_rest_webhook_fuzz(api: Api, data: st.DataObject) -> None:
    senders = st.one_of(
        st.sampled_from(["alice", "x" * 128, "y" * 129, " ", "a\x00", "é" * 128]), texts()
    )
    fields = {"sender": senders, "message": texts(), "metadata": json_values()}
    check(api, "rest-webhook", "POST", "/webhooks/rest/webhook", data.draw, fields)


# -- what the fuzzing found, kept as plain cases -----------------------------------------------


@pytest.mark.parametrize(
    "sender",
    [
        pytest.param("x" * 124, id="customer-id-past-its-column"),
        pytest.param("\ud800", id="lone-surrogate"),
    ],
)
def test_rest_senders_the_store_cannot_hold_are_422(api: Api, sender: str) -> None:
    before = stored(api.bot)
    body = json.dumps({"sender": sender, "message": QUESTION}).encode()
    r = api.client.post(
        "/webhooks/rest/webhook", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, (r.status_code, r.text[:300])
    assert "sender" in r.json()["detail"]
    assert stored(api.bot) == before


# 2**31: past PostgreSQL's INTEGER id column (a 500 there until the API bounded it).
@pytest.mark.parametrize("turn_id", [2**31, 2**63, 2**64 + 1])
def test_feedback_on_turn_ids_past_the_id_column_is_422(api: Api, turn_id: int) -> None:
    before = stored(api.bot)
    r = api.client.post("/api/feedback", json={"turn_id": turn_id, "value": 1}, headers=api.mine)
    assert r.status_code == 422, (r.status_code, r.text[:300])
    assert "turn_id" in r.json()["detail"]
    assert stored(api.bot) == before
