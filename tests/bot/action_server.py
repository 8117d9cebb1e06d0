"""A real rasa-sdk action server on loopback, for the tests that call custom actions.

It serves `tests/bot/actions_for_tests.py`: the demo bank's actions plus actions that
reject, crash and stall, so that every answer Rasa knows can be provoked.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def action_server() -> Iterator[str]:
    """The webhook URL of a running `python -m rasa_sdk` (stopped after the session)."""
    port = free_port()
    env = {
        **os.environ,
        "SANIC_HOST": "127.0.0.1",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rasa_sdk", "--actions", "actions_for_tests", "--port", str(port)],
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"the action server exited: {err[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the action server did not start within 60 s")
        time.sleep(0.2)
    yield f"{base}/webhook"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def make_project(root: Path, model_dir: Path, index_dir: Path) -> Path:
    """A `deskbot init` project in `root` with `model_dir` live and `index_dir` in place."""
    import shutil

    from typer.testing import CliRunner

    from deskbot.bot.artifacts import ModelRegistry
    from deskbot.bot.cli import app

    result = CliRunner().invoke(app, ["init", str(root)])
    assert result.exit_code == 0, result.output
    registry = ModelRegistry(root / "var" / "models" / "intents")
    shutil.copytree(model_dir, registry.versions_dir / "v1")
    registry.set_live("v1")
    shutil.copytree(index_dir, root / "var" / "indexes" / "faq")
    return root
