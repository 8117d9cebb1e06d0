"""From an FAQ file alone to a served answer (no intents, no training), and from there to
the first intent model, picked up without a restart."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.config import load_config
from deskbot.bot.nlu.registry import ModelRegistry
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import Bot, build_bot

SHOE_FAQ = """\
entries:
  - id: shoe-sizes
    question: What sizes do your shoes come in?
    alternatives: ["Do you have size 47?", "Which sizes do you stock?"]
    answer: Our shoes come in EU sizes 35 to 48, including half sizes from 38 to 45.
    url: https://shoes.example/help/sizes
  - id: returns
    question: How do I return a pair of shoes?
    alternatives: ["Can I send shoes back?"]
    answer: You can return unworn shoes within 30 days with the free label from your order page.
  - id: delivery-time
    question: How long does delivery take?
    answer: Orders arrive within 2 to 4 working days.
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """`deskbot init --from-faq` then `deskbot ingest`: the two commands of a first bot."""
    faq = tmp_path / "shoes.yaml"
    faq.write_text(SHOE_FAQ, encoding="utf-8")
    project = tmp_path / "shop"
    runner = CliRunner()
    out = runner.invoke(load_plugins(), ["init", str(project), "--from-faq", str(faq)])
    assert out.exit_code == 0, out.output
    assert f"deskbot ingest -c {project}" in out.output
    out = runner.invoke(load_plugins(), ["ingest", "-c", str(project)])
    assert out.exit_code == 0, out.output
    return project


@pytest.fixture
def served(shop: Path) -> Iterator[tuple[Bot, TestClient]]:
    bot = build_bot(load_config(shop / "deskbot.yaml"))  # as `deskbot serve` does
    bot.warm_up()
    try:
        yield bot, TestClient(create_api(bot), raise_server_exceptions=False)
    finally:
        bot.close()


def _ask(client: TestClient, auth: dict[str, str], text: str) -> dict[str, object]:
    r = client.post("/api/messages", json={"text": text}, headers=auth)
    assert r.status_code == 200, r.text
    reply: dict[str, object] = r.json()
    return reply


def _session(client: TestClient) -> dict[str, str]:
    r = client.post("/api/sessions")
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['session_token']}"}


def test_the_project_names_only_the_faq(shop: Path) -> None:
    config = load_config(shop / "deskbot.yaml")
    assert config.intents.train_data is None and not config.knowledge.examples
    assert [p.name for p in config.knowledge.sources] == ["faq.yaml"]
    assert not config.actions.url and not config.actions.intent_actions
    assert sorted(p.name for p in shop.iterdir()) == ["data", "deskbot.yaml", "var"]


def test_a_bad_faq_file_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries:\n  - id: x\n    question: hi\n", encoding="utf-8")
    for faq in (bad, tmp_path / "missing.yaml"):
        out = CliRunner().invoke(
            load_plugins(), ["init", str(tmp_path / "p"), "--from-faq", str(faq)]
        )
        assert out.exit_code == 2
        assert len(out.output.strip().splitlines()) == 1 and "error: --from-faq:" in out.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_an_faq_alone_serves_answers_and_refuses_what_it_does_not_know(
    served: tuple[Bot, TestClient],
) -> None:
    bot, client = served
    assert bot.faq_only and bot.ready
    auth = _session(client)
    reply = _ask(client, auth, "do you have size 47?")
    assert reply["kind"] == "faq" and reply["citations"] == ["shoe-sizes"]
    assert str(reply["text"]).startswith("Our shoes come in EU sizes 35 to 48")
    assert reply["intent"] == "shoe-sizes"

    off = _ask(client, _session(client), "what is the capital of Peru?")
    assert off["intent"] == "out_of_scope" and off["kind"] == "fallback"
    assert off["citations"] == []

    # Two entries nearly tied, neither a close match: which one? (One click answers.)
    auth = _session(client)
    unsure = _ask(client, auth, "exchange shoes for another size")
    assert unsure["kind"] == "clarify", unsure
    assert {"Returns", "Shoe sizes"} <= set(unsure["buttons"])  # type: ignore[arg-type]
    clicked = _ask(client, auth, "Shoe sizes")
    assert clicked["kind"] == "faq" and clicked["citations"] == ["shoe-sizes"]

    ops = client.get("/readyz")
    assert ops.status_code == 200, ops.text
    # The console labels with the FAQ's entries until a model is trained.
    assert bot.classifier.labels == ("shoe-sizes", "returns", "delivery-time")


def test_the_first_promoted_model_serves_without_a_restart(
    served: tuple[Bot, TestClient], shop: Path, trained_model_dir: Path
) -> None:
    bot, client = served
    auth = _session(client)
    assert _ask(client, auth, "how long does delivery take")["citations"] == ["delivery-time"]

    registry = ModelRegistry(shop / "var" / "models" / "intents")
    shutil.copytree(trained_model_dir, registry.versions_dir / "v1")
    registry.set_live("v1")
    assert bot.live_model is not None
    deadline = time.monotonic() + 60
    while bot.classifier.version != "v1":  # what the server's watcher does each second
        assert time.monotonic() < deadline, "the promoted model was not loaded"
        bot.live_model.maybe_reload()
        bot.live_model.wait_for_reload(30)
        time.sleep(0.05)
    assert not bot.faq_only

    reply = _ask(client, auth, "my card hasn't arrived yet")
    assert reply["intent"] in bot.classifier.labels  # the model's intents, not the FAQ's
    with sqlite3.connect(shop / "var" / "deskbot.db") as db:
        versions = [
            json.loads(v)["intents"]
            for (v,) in db.execute(
                "select model_versions from turns where role = 'bot' order by id"
            )
        ]
    assert versions[0].startswith("faq:") and versions[-1] == "v1"


def test_the_widget_and_the_console_work_with_the_faqs_entries_as_intents(
    served: tuple[Bot, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from deskbot.ui.accounts.auth import create_agent
    from deskbot.ui.console.actions import ConsoleService
    from deskbot.ui.server import mount_ui
    from deskbot.ui.widget.service import ChatService

    bot, _client = served
    monkeypatch.setenv("DESKBOT_SECRET_KEY", "test-secret-" + "x" * 32)
    page = TestClient(mount_ui(create_api(bot), bot)).get("/")
    assert page.status_code == 200

    widget = ChatService(bot.store, bot.pipeline)
    conv_id, _token = widget.start()
    reply = list(widget.reply(conv_id, "can I send shoes back?"))[-1]
    assert not isinstance(reply, str) and reply.citations == ("returns",)

    console = ConsoleService(bot.store, lambda: bot.classifier.labels, bot.pipeline)
    assert console.intents() == ["delivery-time", "returns", "shoe-sizes"]
    agent = create_agent(bot.store, "alice", "correct-horse-battery")
    console.label(  # an agent's label names an entry (the first model's training data)
        agent,
        reply.turn_id,
        intent="returns",
        new_intent=None,
        answer_wrong=False,
        correct_answer=None,
    )
