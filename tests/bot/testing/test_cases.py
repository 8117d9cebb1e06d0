"""Reading conversation test files: the Rasa-like shape, and FILE:LINE for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskbot.bot.testing.cases import CaseFileError, Fixture, load_cases

GOOD = """\
fixtures:
  - known_order:
      - order_number: NW123456
test_cases:
  - test_case: an FAQ, then a follow-up
    steps:
      - user: what exchange rates do you use?
      - bot: {intent: exchange_rate, kind: faq, faq: exchange-rate}
      - user: and at the weekend?
      - bot:
          intent: [exchange_rate, exchange_charge]
          text_contains: [weekend, markup]
          buttons: []
          handoff: false
  - test_case: the order, known already
    fixtures: [known_order]
    steps:
      - user: my card hasn't arrived
      - bot: {slots: {order_number: NW123456, email: null}}
      - feedback: down
      - agent: hand_back
  - test_case: a customer the site named
    fixtures: {customer_id: c-42, slots: {amount: 25}}
    steps:
      - user: hi
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cases.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_reads_into_cases_with_their_steps_and_fixtures(tmp_path: Path) -> None:
    first, second, third = load_cases(write(tmp_path, GOOD))
    assert (first.name, first.line, len(first.steps)) == ("an FAQ, then a follow-up", 5, 4)
    check = first.steps[3].bot
    assert check is not None and check.intent == ("exchange_rate", "exchange_charge")
    assert check.text_contains == ("weekend", "markup") and check.buttons == ()
    assert check.handoff is False and check.kind is None
    assert first.steps[1].bot is not None and first.steps[1].bot.faq == "exchange-rate"
    assert second.fixture == Fixture(slots={"order_number": "NW123456"})
    assert second.steps[1].bot is not None
    assert dict(second.steps[1].bot.slots) == {"order_number": "NW123456", "email": None}
    assert (second.steps[2].feedback, second.steps[3].agent) == (-1, "hand_back")
    assert third.fixture == Fixture(slots={"amount": "25"}, customer_id="c-42")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("cases: []\n", ":1: expected a mapping with 'test_cases:'"),
        ("test_cases:\n  - test_case: a\n    steps: []\n", ":3: 'steps' must be a non-empty list"),
        (
            "test_cases:\n  - test_case: a\n    steps:\n      - user: hi\n      - bot: {intnt: x}\n",
            ":5: unknown check(s) ['intnt']",
        ),
        (
            "test_cases:\n  - test_case: a\n    steps:\n      - user: hi\n      - bot: {kind: faqs}\n",
            ":5: kind is one of faq, generated",
        ),
        (
            "test_cases:\n  - test_case: a\n    steps:\n      - user: hi\n      - say: hi\n",
            ":5: a step is one of user:, bot:, feedback:, agent:",
        ),
        (
            "test_cases:\n  - test_case: a\n    fixtures: [nope]\n    steps:\n      - user: hi\n",
            ":3: no fixture named 'nope' (none are defined)",
        ),
        (
            "test_cases:\n  - test_case: a\n    steps:\n      - user: hi\n"
            "  - test_case: a\n    steps:\n      - user: hi\n",
            ":5: test case 'a' is already named at line 2",
        ),
        (
            "test_cases:\n  - test_case: a\n    steps:\n      - bot: {kind: faq}\n",
            ":2: a test case needs at least one 'user' step",
        ),
        ("test_cases: [\n", ": not valid YAML"),
    ],
)
def test_a_mistake_names_the_file_and_line(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CaseFileError) as err:
        load_cases(path)
    assert str(err.value).startswith(f"{path}{where}"), str(err.value)
