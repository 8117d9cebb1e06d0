"""The demo bank's conversation suite, run as a new user runs it (issue #19 item 4).

`deskbot init` writes the suite into the demo project (tests/conversations.yaml, from
bot/demo/conversations.yaml); the cases the bot does not pass yet wait in the package
(bot/demo/conversations_pending.yaml), parsed and checked here, run by
`benchmarks/performance/demo_suite.py`. The slow test makes that project for real: `deskbot
train intents --promote` with the demo's own training config (BANKING77's 10,003
examples, 2 epochs: a few minutes on 2 cores, once per session), `deskbot ingest`, the
project's rasa-sdk action server (`deskbot actions serve`), then `deskbot test
conversations` in this process. Every case of the suite must pass.

The quick tests check the files themselves against the demo's intents and FAQ and
against what the issue asks the suite to cover.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.testing.cases import ConversationCase, load_cases
from tests.bot.actions.action_server import free_port, serving

DEMO = Path(str(resources.files("deskbot.bot.demo")))
SUITE = DEMO / "conversations.yaml"
PENDING = DEMO / "conversations_pending.yaml"
# Where `deskbot init` writes it in a project.
PROJECT_SUITE = Path("tests") / "conversations.yaml"


def _intents() -> set[str]:
    return set(json.loads((DEMO / "data" / "banking77" / "categories.json").read_text()))


def _faq_ids() -> set[str]:
    entries = yaml.safe_load((DEMO / "faq.yaml").read_text(encoding="utf-8"))["entries"]
    return {str(e["id"]) for e in entries}


def _category(case: ConversationCase) -> str:
    return case.name.split(":", 1)[0]


def _all_cases() -> list[ConversationCase]:
    return load_cases(SUITE) + load_cases(PENDING)


# -- the files ----------------------------------------------------------------------------


def test_every_intent_and_faq_id_the_suite_expects_exists() -> None:
    intents, faq_ids = _intents(), _faq_ids()
    unknown = []
    for case in _all_cases():
        for step in case.steps:
            if step.bot is None:
                continue
            unknown += [f"{case.where} intent {i}" for i in step.bot.intent if i not in intents]
            if step.bot.faq is not None and step.bot.faq not in faq_ids:
                unknown.append(f"{case.where} faq {step.bot.faq}")
    assert unknown == []


def test_the_pending_cases_parse_and_are_named_apart_from_the_suite() -> None:
    suite, pending = load_cases(SUITE), load_cases(PENDING)
    assert suite and pending
    assert {c.name for c in suite}.isdisjoint(c.name for c in pending)
    # Each pending case says what the bot does instead (a comment right above it).
    lines = PENDING.read_text(encoding="utf-8").splitlines()
    silent = [c.where for c in pending if not lines[c.line - 2].strip().startswith("#")]
    assert silent == []


def test_the_suite_covers_what_the_issue_lists() -> None:
    cases = _all_cases()
    assert len(cases) >= 150
    by_category: dict[str, list[ConversationCase]] = {}
    for case in cases:
        by_category.setdefault(_category(case), []).append(case)
    assert set(by_category) == {
        "follow-up",
        "switch",
        "correction",
        "form",
        "action",
        "handoff",
        "out of scope",
        "small talk",
        "not helpful",
    }
    followed = {
        intent
        for case in by_category["follow-up"]
        for intent in next(s.bot for s in reversed(case.steps) if s.bot is not None).intent
    }
    assert len(followed) >= 40
    # The order-status form: a wrong order number, then a right one.
    wrong_then_right = [
        case
        for case in by_category["form"]
        if [s.bot.action for s in case.steps if s.bot and s.bot.kind in ("form", "action")][-1:]
        == ["action_card_order_status"]
        and any(s.bot and s.bot.slots.get("order_number", "") is None for s in case.steps)
    ]
    assert wrong_then_right
    # A handoff handed back, and a thumbs-down given twice in one conversation.
    assert any(any(s.agent == "hand_back" for s in c.steps) for c in by_category["handoff"])
    assert any(sum(s.feedback == -1 for s in c.steps) >= 2 for c in by_category["not helpful"])
    oos_twice = [
        c
        for c in by_category["out of scope"]
        if [s.bot.kind for s in c.steps if s.bot][:2] == ["fallback", "handoff"]
    ]
    assert oos_twice


def test_init_writes_the_suite_into_the_demo_project(tmp_path: Path) -> None:
    project = tmp_path / "bank"
    result = CliRunner().invoke(load_plugins(), ["init", str(project)])
    assert result.exit_code == 0, result.output
    assert (project / PROJECT_SUITE).read_bytes() == SUITE.read_bytes()
    # Only cases that pass: `deskbot test conversations tests/` on a new project is green.
    assert not list(project.rglob("*pending*"))


# -- the suite on the trained demo bot ----------------------------------------------------


def _deskbot(*args: str) -> None:
    exe = Path(sys.executable).parent / "deskbot"
    done = subprocess.run(
        [str(exe), *args], capture_output=True, text=True, check=False, env=dict(os.environ)
    )
    assert done.returncode == 0, (
        f"deskbot {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`deskbot init`, `train intents --promote` (the demo's own config), `ingest`; or,
    with DESKBOT_TEST_DEMO_PROJECT naming a trained and indexed demo project (e.g.
    var/demo after `make demo`), a copy of it with this suite written in."""
    project = tmp_path_factory.mktemp("demo") / "bank"
    trained = os.environ.get("DESKBOT_TEST_DEMO_PROJECT")
    if trained:
        shutil.copytree(trained, project, ignore=shutil.ignore_patterns("*.db", "*.db-*"))
        (project / PROJECT_SUITE).parent.mkdir(exist_ok=True)
        shutil.copyfile(SUITE, project / PROJECT_SUITE)
        return project
    _deskbot("init", str(project))
    _deskbot("train", "intents", "-c", str(project), "--promote")
    _deskbot("ingest", "-c", str(project))
    return project


@pytest.fixture(scope="session")
def demo_actions(demo_project: Path) -> Iterator[Path]:
    """The project's action server (`deskbot actions serve`) on a free port, named in
    its deskbot.yaml as `actions.url`."""
    port = free_port()
    config = demo_project / "deskbot.yaml"
    text = config.read_text(encoding="utf-8")
    url = re.search(r"^  url: (http://127\.0\.0\.1:\d+/webhook)$", text, re.MULTILINE)
    assert url is not None, "the demo config names its action server as actions.url"
    config.write_text(
        text.replace(url.group(1), f"http://127.0.0.1:{port}/webhook"), encoding="utf-8"
    )
    cmd = [str(Path(sys.executable).parent / "deskbot"), "actions", "serve", "-c", str(config)]
    with serving(cmd, port, demo_project / "actions.log"):
        yield demo_project


@pytest.mark.slow
def test_the_demo_suite_passes_on_the_demo_bot(demo_actions: Path, tmp_path: Path) -> None:
    project = demo_actions
    junit = tmp_path / "conversations.xml"
    result = CliRunner().invoke(
        load_plugins(),
        [
            "test",
            "conversations",
            str(project / PROJECT_SUITE),
            "-c",
            str(project),
            "--json",
            "--junit",
            str(junit),
        ],
    )
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["cases"] == len(load_cases(SUITE))
    assert report["failed"] == 0, json.dumps(report["failures"], indent=1)
    assert result.exit_code == 0
    assert junit.exists()
