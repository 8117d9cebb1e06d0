"""The API's size and rate limits also guard the pages mounted on it: the console's login
form and the widget's Gradio events get a JSON 413 for a big body and a 429 with
Retry-After once an address sends too much (password guessing included)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deskbot.bot.core.config import load_config
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import Bot, build_bot
from deskbot.ui.accounts.auth import create_agent
from deskbot.ui.server import mount_ui


@pytest.fixture
def make_client(
    bot_project: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., TestClient]]:
    """The whole web app (API, widget, console) of the test project with these limits."""
    monkeypatch.setenv("DESKBOT_SECRET_KEY", "test-secret-" + "x" * 32)
    bots: list[Bot] = []

    def make(**limits: Any) -> TestClient:
        config = load_config(bot_project)
        config = dataclasses.replace(config, limits=dataclasses.replace(config.limits, **limits))
        bot = build_bot(config)
        bots.append(bot)
        create_agent(bot.store, "alice", "correct-horse-battery")
        app = mount_ui(create_api(bot), bot)
        return TestClient(app, raise_server_exceptions=False, follow_redirects=False)

    yield make
    for bot in bots:
        bot.close()


def test_big_bodies_to_the_pages_get_a_json_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    big = "username=alice&password=" + "x" * 20_000

    def chunked() -> Iterator[bytes]:  # no Content-Length
        yield b"username=alice&password="
        for _ in range(3):
            yield b"x" * 8_000

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # (The console's own events answer 401 before anything else when not logged in.)
    for path in ("/agent/login", "/gradio_api/queue/join", "/gradio_api/upload"):
        for content in (big.encode(), chunked()):
            r = client.post(path, content=content, headers=form)
            assert r.status_code == 413, (path, r.status_code, r.text[:200])
            assert "larger than" in r.json()["detail"]


def test_password_guessing_from_one_address_gets_429(
    make_client: Callable[..., TestClient],
) -> None:
    # One token a minute: five password checks (argon2) on a slow machine may take over a
    # second, and at 60 a minute a refilled token let the sixth attempt through.
    # A guess at each of five names: the login throttle's back-off per account
    # (tests/ui/accounts/test_throttle.py) stays out of it; the address's bucket decides.
    client = make_client(ip_requests_per_minute=1, ip_burst=5)
    codes = [
        client.post("/agent/login", data={"username": f"user{i}", "password": "guess"}).status_code
        for i in range(5)
    ]
    assert codes == [303] * 5  # wrong password: back to the form
    r = client.post("/agent/login", data={"username": "alice", "password": "correct-horse-battery"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "from your address" in r.json()["detail"]
    assert "set-cookie" not in r.headers
    # The pages themselves (GET) still load.
    assert client.get("/agent/login").status_code == 200
