"""The action server's token, against a real rasa-sdk server on loopback: deskbot sends
it as Rasa does (`?token=`), `deskbot.bot.actions.server` refuses calls without it, and
the token appears in no log line of either side."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from deskbot.bot.core.errors import ComponentUnavailable
from tests.bot.actions.action_server import HERE, free_port, server_env, serving
from tests.bot.actions.test_client import _call

# URL-special characters on purpose: the token must survive encoding and be hidden in it.
TOKEN = "act+" + secrets.token_urlsafe(24) + "/="


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`python -m deskbot.bot.actions.server` with DESKBOT_ACTIONS_TOKEN; its URL and log
    (`action_record_run` writes its runs to `runs.txt` beside the log)."""
    port = free_port()
    log = tmp_path_factory.mktemp("actions") / "server.log"
    env = server_env(
        DESKBOT_TEST_ACTION_LOG=str(log.with_name("runs.txt")), DESKBOT_ACTIONS_TOKEN=TOKEN
    )
    cmd = [sys.executable, "-m", "deskbot.bot.actions.server", "--actions", "actions_for_tests"]
    with serving([*cmd, "--port", str(port), "-vv"], port, log, env, HERE) as base:
        yield f"{base}/webhook", log


def test_calls_without_the_right_token_are_refused_before_any_action_runs(
    guarded: tuple[str, Path],
) -> None:
    url, log = guarded
    runs = log.with_name("runs.txt")
    result = _call(url, "action_echo_tracker", token=TOKEN)
    assert "sender=conv-1" in result.texts[0]  # type: ignore[attr-defined]
    _call(url, "action_record_run", token=TOKEN)
    assert runs.read_text().splitlines() == ["conv-1"]
    for wrong in (None, "wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        with pytest.raises(ComponentUnavailable, match="refused deskbot's token"):
            _call(url, "action_echo_tracker", token=wrong)
        with pytest.raises(ComponentUnavailable, match="refused deskbot's token"):
            _call(url, "action_record_run", token=wrong)
    assert runs.read_text().splitlines() == ["conv-1"]  # none of them ran
    base = url.removesuffix("/webhook")
    with httpx.Client(base_url=base, trust_env=False) as http:
        assert http.get("/health").status_code == 200  # probes need no token
        assert http.get("/actions").status_code == 401  # nor does it list its actions
        assert http.get("/actions", params={"token": TOKEN}).status_code == 200
        refused = http.post("/webhook", params={"token": "x"}, json={"next_action": "x"})
        assert refused.status_code == 401 and "token" in refused.json()["error"]
    assert log.read_text().count("request without the right token refused") >= 11


def test_the_token_is_in_no_log_line(
    guarded: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    url, log = guarded
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the CLI quiets it; here it must speak
    caplog.set_level(logging.DEBUG, logger="httpcore")
    _call(url, "action_card_order_status", token=TOKEN)
    with pytest.raises(ComponentUnavailable):
        _call(url, "action_card_order_status", token="wrong-token")
    assert "HTTP Request: POST" in caplog.text  # httpx logged the URL it called ...
    assert "token=***" in caplog.text  # ... with the token taken out
    logged = caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)
    for form in (TOKEN, quote(TOKEN, safe=""), quote_plus(TOKEN)):
        assert form not in logged
        assert form not in log.read_text()  # nor in the server's own (debug) log


def test_deskbot_actions_serve_checks_the_configured_token(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from deskbot.bot.cli import app

    project = tmp_path / "bot"
    assert CliRunner().invoke(app, ["init", str(project)]).exit_code == 0
    port = free_port()
    env = {**os.environ, "DESKBOT_ACTIONS_TOKEN": TOKEN}
    deskbot = str(Path(sys.executable).parent / "deskbot")
    cmd = [deskbot, "actions", "serve", "-c", str(project), "--port", str(port)]
    with serving(cmd, port, tmp_path / "serve.log", env, tmp_path) as base:
        url = f"{base}/webhook"
        with pytest.raises(ComponentUnavailable, match="refused deskbot's token"):
            _call(url, "action_freeze_card")
        result = _call(url, "action_freeze_card", token=TOKEN)
        assert result.texts[0].startswith("I've frozen your card")  # type: ignore[attr-defined]
