"""A real rasa-sdk action server on loopback, and the real bot project the bot tests share.

A plugin of tests/conftest.py: its fixtures serve every test (deskbot's modules are imported
where they are used, not when pytest starts).

The server serves `tests/bot/actions/actions_for_tests.py`: the demo bank's actions plus actions
that reject, crash and stall, so that every answer Rasa knows can be provoked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from deskbot.bot.core.config import BotConfig
    from deskbot.bot.server.container import Bot

HERE = Path(__file__).parent

INTENT_ACTIONS = {
    "lost_or_stolen_card": "action_freeze_card",
    "card_arrival": "action_card_order_status",
    "pin_blocked": "action_report_compromised_card",
    "atm_support": "action_crashes",
    "cancel_transfer": "action_rejects",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[bytes], output: Callable[[], str]) -> None:
    """Wait for the action server at `base` to answer `/health`; fail the test where `proc`
    exits first (with the end of its `output()`) or 60 s pass."""
    import httpx

    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the action server exited: {output()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("the action server did not start within 60 s")
        time.sleep(0.2)


def server_env(folder: Path = HERE, **extra: str) -> dict[str, str]:
    """This environment for an action server on loopback that imports its actions from
    `folder`, with `extra` variables."""
    return {
        **os.environ,
        "SANIC_HOST": "127.0.0.1",
        **extra,
        "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop `proc` and everything it started (its process group)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def serving(
    cmd: list[str],
    port: int,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[str]:
    """Run `cmd`, an action server on `port` whose output goes to `log`, until the block
    ends: its base URL once it answers `/health` (the test fails where it does not)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc, lambda: log.read_text(errors="replace"))
        yield base
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The webhook URL of a running `python -m rasa_sdk` (stopped after the session)."""
    port = free_port()
    log = tmp_path_factory.mktemp("actions") / "server.log"
    cmd = [sys.executable, "-m", "rasa_sdk", "--actions", "actions_for_tests", "--port", str(port)]
    with serving(cmd, port, log, server_env(), HERE) as base:
        yield f"{base}/webhook"


def make_project(root: Path, model_dir: Path, index_dir: Path) -> Path:
    """A `deskbot init` project in `root` with `model_dir` live and `index_dir` in place."""
    import shutil

    from typer.testing import CliRunner

    from deskbot.bot.cli import app
    from deskbot.bot.nlu.registry import ModelRegistry

    result = CliRunner().invoke(app, ["init", str(root)])
    assert result.exit_code == 0, result.output
    registry = ModelRegistry(root / "var" / "models" / "intents")
    shutil.copytree(model_dir, registry.versions_dir / "v1")
    registry.set_live("v1")
    shutil.copytree(index_dir, root / "var" / "indexes" / "faq")
    return root


def configure(base: BotConfig, webhook: str, **dialogue: object) -> BotConfig:
    """The test project's config: the actions above on `webhook`, a clarify bar for a model
    trained on a few examples (its confidences are low, ~0.2-0.3, so the bar for
    "confident" is set for it, as an operator would for their model)."""
    from deskbot.bot.core.config import ActionsConfig, DialogueConfig

    return dataclasses.replace(
        base,
        intents=dataclasses.replace(base.intents, clarify_below=0.15),
        actions=ActionsConfig(
            url=webhook,
            timeout_s=2.0,
            intent_actions=INTENT_ACTIONS,
            required_slots={"action_card_order_status": ("order_number",)},
        ),
        dialogue=DialogueConfig(**dialogue),  # type: ignore[arg-type]
        # The REST channel as before issue #22 (test_rest_channel.py tests it closed).
        server=dataclasses.replace(base.server, rest_channel="open"),
    )


@contextlib.contextmanager
def running_bot(
    root: Path,
    model_dir: Path,
    index_dir: Path,
    webhook: str,
    adjust: Callable[[BotConfig], BotConfig] | None = None,
) -> Iterator[Bot]:
    """A warmed-up bot over a new test project in `root` (`adjust` edits its config)."""
    from deskbot.bot.core.config import load_config
    from deskbot.bot.server.container import build_bot

    cfg = configure(load_config(make_project(root, model_dir, index_dir)), webhook)
    built = build_bot(adjust(cfg) if adjust else cfg)
    try:
        built.warm_up()
        yield built
    finally:
        built.close()


@pytest.fixture(scope="module")
def module_bot(
    tmp_path_factory: pytest.TempPathFactory,
    trained_model_dir: Path,
    faq_index_dir: Path,
    action_server: str,
) -> Iterator[Bot]:
    """A warmed-up bot over a new test project, one per test module, its actions on the
    session's action server (import it with `action_server` into the test module)."""
    root = tmp_path_factory.mktemp("p") / "bot"
    with running_bot(root, trained_model_dir, faq_index_dir, action_server) as built:
        yield built
