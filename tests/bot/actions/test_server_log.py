"""The action server's log on start: no error for the endpoints file nobody asked for
(issue #24), and still the error when the file given with --endpoints is missing."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.bot.actions.action_server import free_port, server_env, serving

MISSING = "Failed to read endpoint configuration"


def started_log(cwd: Path, *args: str) -> str:
    """Start `python -m deskbot.bot.actions.server` in `cwd`, wait until it serves (its
    start-up hooks, which read the endpoints file, have run), stop it: its log."""
    port = free_port()
    log = cwd / "server.log"
    env = server_env()
    env.pop("DESKBOT_ACTIONS_TOKEN", None)
    cmd = [sys.executable, "-m", "deskbot.bot.actions.server", "--actions", "actions_for_tests"]
    with serving([*cmd, "--port", str(port), *args], port, log, env, cwd):
        pass
    return log.read_text()


def test_a_start_without_an_endpoints_file_logs_no_error(tmp_path: Path) -> None:
    log = started_log(tmp_path)
    assert "DESKBOT_ACTIONS_TOKEN is not set" in log  # the log is the server's
    assert MISSING not in log
    assert "ERROR" not in log, log


def test_a_missing_endpoints_file_that_was_asked_for_is_still_an_error(tmp_path: Path) -> None:
    log = started_log(tmp_path, "--endpoints", "tracing.yml")
    assert f"{MISSING} from {tmp_path / 'tracing.yml'}" in log


def test_an_endpoints_file_in_the_working_folder_is_still_read(tmp_path: Path) -> None:
    (tmp_path / "endpoints.yml").write_text("tracing:\n  type: carrier-pigeon\n")
    log = started_log(tmp_path)
    assert "Unknown tracing type carrier-pigeon read from endpoints.yml" in log
    assert MISSING not in log
