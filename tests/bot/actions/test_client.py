"""The rasa-sdk webhook client against a real action server on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deskbot.bot.actions.client import (
    ActionNotFound,
    ActionRejected,
    RasaActionClient,
    domain_for,
    tracker_for,
)
from deskbot.bot.core.errors import ComponentUnavailable
from deskbot.bot.core.types import IntentPrediction, Turn
from tests.bot.actions.action_server import free_port

SLOTS = ["amount", "email", "order_number"]


def _call(url: str, action: str, **kw: object) -> object:
    client = RasaActionClient(url, **kw)  # type: ignore[arg-type]
    try:
        tracker = tracker_for(
            "conv-1",
            slots={"order_number": "NW123456"},
            text="where is my card NW123456",
            prediction=IntentPrediction("card_arrival", 0.9, (("card_arrival", 0.9),)),
            history=[Turn("user", "hi"), Turn("bot", "Hello!")],
            slot_names=SLOTS,
        )
        return client.run(action, tracker, domain_for(["card_arrival"], [action], SLOTS))
    finally:
        client.close()


def test_demo_action_runs_and_returns_events_and_responses(action_server: str) -> None:
    result = _call(action_server, "action_card_order_status")
    assert result.texts == [  # type: ignore[attr-defined]
        "Card order NW123456 is dispatched on 18 November by Royal Mail, tracking RM482913GB."
    ]
    result = _call(action_server, "action_report_compromised_card")
    assert result.followups() == ["action_handoff"]  # type: ignore[attr-defined]
    assert {"event": "slot", "name": "card_frozen", "value": True}.items() <= result.events[
        0
    ].items()  # type: ignore[attr-defined]


def test_the_server_sees_the_tracker_and_domain_deskbot_sends(action_server: str) -> None:
    result = _call(action_server, "action_echo_tracker", token="s3cret")
    text = result.texts[0]  # type: ignore[attr-defined]
    assert "sender=conv-1" in text and "intent=card_arrival" in text
    assert "order=NW123456" in text and "text=where is my card NW123456" in text
    assert "events=2" in text and "domain_actions=1" in text
    assert result.buttons == [{"title": "Yes", "payload": "/affirm"}]  # type: ignore[attr-defined]


def test_rejection_is_400_and_unknown_action_is_404(action_server: str) -> None:
    with pytest.raises(ActionRejected, match="not today"):
        _call(action_server, "action_rejects")
    with pytest.raises(ActionNotFound, match="action_nope"):
        _call(action_server, "action_nope")


def test_crash_timeout_and_refused_connection_are_unavailable(action_server: str) -> None:
    with pytest.raises(ComponentUnavailable, match="HTTP 500"):
        _call(action_server, "action_crashes")
    started = time.perf_counter()
    with pytest.raises(ComponentUnavailable, match="within 0.5s"):
        _call(action_server, "action_stalls", timeout_s=0.5)
    assert time.perf_counter() - started < 2.5
    with pytest.raises(ComponentUnavailable, match="unreachable"):
        _call(f"http://127.0.0.1:{free_port()}/webhook", "action_freeze_card")


def test_deskbot_actions_serve_runs_the_projects_actions(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from deskbot.bot.cli import app

    project = tmp_path / "bot"
    assert CliRunner().invoke(app, ["init", str(project)]).exit_code == 0
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "deskbot"), "actions", "serve", "-c", str(project),
         "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                result = _call(f"http://127.0.0.1:{port}/webhook", "action_freeze_card")
                break
            except ComponentUnavailable:
                time.sleep(0.3)
        else:
            pytest.fail("deskbot actions serve did not start")
        assert result.texts[0].startswith("I've frozen your card")  # type: ignore[attr-defined]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
