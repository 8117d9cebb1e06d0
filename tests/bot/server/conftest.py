"""What the server's tests share: a real bot (fine-tuned model, FAQ index, SQLite, a
rasa-sdk action server on loopback) per test module, its API client, sessions, and a
count of the stored rows (a refused request must store nothing)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text as sql

from deskbot.bot.core.config import BotConfig
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import Bot
from tests.bot.actions.action_server import running_bot

QUESTION = "What exchange rates do you use?"


@pytest.fixture(scope="module")
def bot_config() -> Callable[[BotConfig], BotConfig] | None:
    """A change to the test project's config (a module overrides it to need one)."""
    return None


@pytest.fixture(scope="module")
def bot(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    trained_model_dir: Path,
    faq_index_dir: Path,
    action_server: str,
    bot_config: Callable[[BotConfig], BotConfig] | None,
) -> Iterator[Bot]:
    """The real bot, one per test module."""
    root = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "bot"
    with running_bot(root, trained_model_dir, faq_index_dir, action_server, bot_config) as built:
        yield built


@pytest.fixture(scope="module")
def client(bot: Bot) -> TestClient:
    """The API of `bot`; a server error is a 500 response, not an exception."""
    return TestClient(create_api(bot), raise_server_exceptions=False)


def session(client: TestClient, body: object = None) -> tuple[str, dict[str, str]]:
    """A new session: its conversation id and the `Authorization` header of its token."""
    r = client.post("/api/sessions", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    return created["conversation_id"], {"Authorization": f"Bearer {created['session_token']}"}


def counts(bot: Bot) -> tuple[int, int, int]:
    """Rows stored: turns, handoffs, conversations."""
    with bot.store.engine.connect() as c:
        return (
            c.execute(sql("select count(*) from turns")).scalar_one(),
            c.execute(sql("select count(*) from handoffs")).scalar_one(),
            c.execute(sql("select count(*) from conversations")).scalar_one(),
        )


def expire(bot: Bot, conversation_id: str) -> None:
    """Make a conversation idle since 2000 (its session has expired)."""
    with bot.store.engine.begin() as c:
        changed = c.execute(
            sql("update conversations set updated_at = '2000-01-01 00:00:00' where id = :id"),
            {"id": conversation_id},
        )
        assert changed.rowcount == 1, conversation_id
