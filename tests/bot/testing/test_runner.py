"""Conversation tests run on the real bot (model, index, store, rasa-sdk action server):
in process, over the HTTP API, and from the command line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import Bot
from deskbot.bot.testing.cases import load_cases
from deskbot.bot.testing.report import failure_text, junit_xml, summary
from deskbot.bot.testing.runner import HttpDriver, InProcessDriver, http_problems, run_cases

PASSING = """\
fixtures:
  - known_order:
      - order_number: NW123456
test_cases:
  - test_case: an FAQ question
    steps:
      - user: What exchange rates do you use?
      - bot: {intent: exchange_rate, kind: faq, faq: exchange-rate, text_contains: interbank}
  - test_case: the order-status form, a wrong number then a right one
    steps:
      - user: my card hasn't arrived yet
      - bot: {kind: form, intent: card_arrival, text_contains: order number}
      - user: NW12345678
      - bot: {kind: form, text_contains: "doesn't look like", slots: {order_number: null}}
      - user: NW123456
      - bot: {kind: action, action: action_card_order_status, slots: {order_number: NW123456}}
  - test_case: the order number known from the start
    fixtures: [known_order]
    steps:
      - user: my card hasn't arrived yet
      - bot: {kind: action, action: action_card_order_status}
  - test_case: out of scope twice, a person, and back to the bot
    steps:
      - user: what's the weather on mars
      - bot: {kind: fallback, handoff: false}
      - user: tell me a poem about goats
      - bot: {kind: handoff, handoff: true}
      - agent: Hello, I'm Ann from the card team.
      - agent: hand_back
      - user: What exchange rates do you use?
      - bot: {kind: faq, faq: exchange-rate}
"""

FAILING = """\
test_cases:
  - test_case: right
    steps:
      - user: What exchange rates do you use?
      - bot: {kind: faq}
  - test_case: wrong intent and text
    steps:
      - user: What exchange rates do you use?
      - bot: {intent: card_arrival, text_contains: parcel}
      - user: never sent
"""


def cases(tmp_path: Path, text: str, name: str = "cases.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_conversations_pass_through_forms_actions_fixtures_and_a_hand_back(
    module_bot: Bot, tmp_path: Path
) -> None:
    results = run_cases(load_cases(cases(tmp_path, PASSING)), InProcessDriver(module_bot))
    assert [r.passed for r in results] == [True] * 4, [failure_text(r) for r in results]
    # Every step ran, on conversations of the test channel, agent turns included.
    assert [len(r.steps) for r in results] == [2, 6, 2, 8]
    handoff = results[3].steps[3].observed
    assert handoff is not None and handoff.handoff


def test_a_failure_shows_the_conversation_and_each_difference(
    module_bot: Bot, tmp_path: Path
) -> None:
    path = cases(tmp_path, FAILING)
    results = run_cases(load_cases(path), InProcessDriver(module_bot))
    assert [r.passed for r in results] == [True, False]
    failed = results[1]
    assert len(failed.steps) == 2  # the case stops at its first failed step
    assert failed.failure is not None
    assert [(what, expected) for what, expected, _ in failed.failure.diff] == [
        ("intent", "card_arrival"),
        ("text_contains", "'parcel'"),
    ]
    assert failed.failure.diff[0][2].startswith("exchange_rate (")  # with its confidence
    text = failure_text(failed)
    assert f"FAILED wrong intent and text ({path}:6)" in text
    assert "customer: What exchange rates do you use?" in text
    assert "[faq; exchange_rate" in text and f"at {path}:9:" in text
    report = summary(results, 1.5)
    assert {k: report[k] for k in ("cases", "passed", "failed", "steps")} == {
        "cases": 2,
        "passed": 1,
        "failed": 1,
        "steps": 4,
    }
    assert report["failures"][0]["where"] == f"{path}:9"
    junit = tmp_path / "out" / "junit.xml"
    junit_xml(results, junit, 1.5)
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failures = suite.findall("testcase/failure")
    assert len(failures) == 1 and "intent: expected card_arrival" in failures[0].get("message", "")


def test_over_http_the_api_gives_the_same_replies(module_bot: Bot, tmp_path: Path) -> None:
    loaded = load_cases(cases(tmp_path, PASSING))
    # Slot checks, slot fixtures and agent steps need the in-process run: refused first.
    problems = http_problems(loaded)
    assert len(problems) == 5 and all("need the in-process run" in p for p in problems)
    http = HttpDriver("http://test", client=TestClient(create_api(module_bot)))
    results = run_cases([loaded[0]], http)
    assert results[0].passed, failure_text(results[0])
    failing = run_cases(load_cases(cases(tmp_path, FAILING, "f.yml")), http)
    assert [r.passed for r in failing] == [True, False]


def test_the_command_exits_1_on_a_failure_and_2_on_a_bad_file(
    bot_project: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    folder = tmp_path / "conversations"  # beside the project, whose YAML is no test file
    (folder / "more").mkdir(parents=True)
    cases(folder, FAILING)
    cases(folder / "more", FAILING.split("  - test_case: wrong")[0], "one.yaml")
    junit = tmp_path / "j.xml"
    args = ["test", "conversations", str(folder), "-c", str(bot_project)]
    result = runner.invoke(load_plugins(), [*args, "--json", "--junit", str(junit)])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert {k: report[k] for k in ("cases", "passed", "failed")} == {
        "cases": 3,
        "passed": 2,
        "failed": 1,
    }
    assert report["failures"][0]["test_case"] == "wrong intent and text"
    assert ET.parse(junit).getroot().get("failures") == "1"
    bad = cases(folder, "test_cases:\n  - test_case: a\n    steps:\n      - usr: hi\n", "bad.yml")
    result = runner.invoke(load_plugins(), ["test", "conversations", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:4: a step is one of" in result.output
