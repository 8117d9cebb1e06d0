"""Conversation tests as a team writes them: YAML in the shape Rasa users know.

```yaml
fixtures:                          # optional, named, as Rasa's e2e tests name them
  - known_customer:
      - order_number: NW123456     # slot values the conversation starts with
test_cases:
  - test_case: the card, then how long it takes
    fixtures: [known_customer]     # or a mapping: {slots: {...}, customer_id: c-42}
    steps:
      - user: my card hasn't arrived
      - bot: {intent: card_arrival, kind: faq, faq: card-arrival}
      - user: how long does it usually take?
      - bot:
          intent: [card_delivery_estimate, card_arrival]   # any of these
          text_contains: days
      - feedback: down             # the customer's thumbs-down on the last reply
      - agent: hand_back           # an agent gives the chat back (or: agent: "text")
```

A `bot` step checks the reply to the `user` step before it, on any of: `intent` (one
or a list of accepted), `kind`, `faq` (a cited FAQ id), `action`, `text_contains` (one
or a list, case-insensitive), `slots` (name: value, or null for "not set"), `buttons`
(titles that must be offered; `[]`: none), `handoff` (true/false). A mistake in a file
is a `CaseFileError` naming FILE:LINE and what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.core.types import ReplyKind
from deskbot.knowledge.files.safe_yaml import YamlError, load_yaml_with_node

__all__ = [
    "AGENT_ACTIONS",
    "BOT_KEYS",
    "BotCheck",
    "CaseFileError",
    "ConversationCase",
    "Fixture",
    "Step",
    "load_cases",
]

BOT_KEYS = ("intent", "kind", "faq", "action", "text_contains", "slots", "buttons", "handoff")
STEP_KEYS = ("user", "bot", "feedback", "agent")
AGENT_ACTIONS = ("hand_back", "resolve")
KINDS: tuple[str, ...] = get_args(ReplyKind)


class CaseFileError(DeskbotError):
    """A conversation test file that cannot be run: `FILE:LINE: what to fix`."""


@dataclass(frozen=True)
class BotCheck:
    """What the bot's reply must show; None (or empty) checks nothing."""

    intent: tuple[str, ...] = ()
    kind: str | None = None
    faq: str | None = None
    action: str | None = None
    text_contains: tuple[str, ...] = ()
    slots: Mapping[str, str | None] = field(default_factory=dict)
    buttons: tuple[str, ...] | None = None
    handoff: bool | None = None


@dataclass(frozen=True)
class Step:
    """One step: exactly one of `user`, `bot`, `feedback` (+1/-1) or `agent` is set."""

    line: int
    user: str | None = None
    bot: BotCheck | None = None
    feedback: int | None = None
    agent: str | None = None  # "hand_back", "resolve", or text an agent sends


@dataclass(frozen=True)
class Fixture:
    """What a conversation starts with."""

    slots: Mapping[str, str] = field(default_factory=dict)
    customer_id: str | None = None


@dataclass(frozen=True)
class ConversationCase:
    name: str
    file: str
    line: int
    steps: tuple[Step, ...]
    fixture: Fixture = Fixture()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def load_cases(path: Path) -> list[ConversationCase]:
    """The test cases of one YAML file (`CaseFileError` on any mistake)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(f"{name}: cannot be read ({exc})") from None
    try:
        raw, node = load_yaml_with_node(text)
    except (YamlError, yaml.YAMLError) as exc:
        raise CaseFileError(f"{name}: not valid YAML: {exc}") from None
    return _Reader(name).file(raw, node)


class _Reader:
    """Reads one file's values with their YAML nodes, for the line of each mistake."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, node: yaml.Node | None, message: str) -> CaseFileError:
        line = node.start_mark.line + 1 if node is not None else 1
        return CaseFileError(f"{self.name}:{line}: {message}")

    def file(self, raw: Any, node: yaml.Node | None) -> list[ConversationCase]:
        if not isinstance(raw, dict) or "test_cases" not in raw:
            raise self.fail(node, "expected a mapping with 'test_cases:' (a list of test cases)")
        unknown = set(raw) - {"test_cases", "fixtures"}
        if unknown:
            raise self.fail(node, f"unknown top-level key(s) {sorted(map(str, unknown))}")
        fixtures = self.named_fixtures(raw.get("fixtures") or [], _child(node, "fixtures"))
        cases_node = _child(node, "test_cases")
        items = raw["test_cases"]
        if not isinstance(items, list) or not items:
            raise self.fail(cases_node, "'test_cases' must be a non-empty list")
        cases = [self.case(item, _item(cases_node, i), fixtures) for i, item in enumerate(items)]
        seen: dict[str, int] = {}
        for case in cases:
            if case.name in seen:
                raise CaseFileError(
                    f"{self.name}:{case.line}: test case {case.name!r} is already named at "
                    f"line {seen[case.name]}; give each a name of its own"
                )
            seen[case.name] = case.line
        return cases

    def named_fixtures(self, raw: Any, node: yaml.Node | None) -> dict[str, Fixture]:
        if not isinstance(raw, list):
            raise self.fail(node, "'fixtures' must be a list of '- name: [slot: value, ...]'")
        named: dict[str, Fixture] = {}
        for i, item in enumerate(raw):
            at = _item(node, i)
            if not isinstance(item, dict) or len(item) != 1:
                raise self.fail(at, "a fixture is one name with its slot values under it")
            ((fname, body),) = item.items()
            named[str(fname)] = self.fixture(body, _child(at, fname))
        return named

    def fixture(self, body: Any, node: yaml.Node | None) -> Fixture:
        if isinstance(body, list):  # Rasa's shape: a list of one-key mappings
            slots: dict[str, Any] = {}
            for j, pair in enumerate(body):
                if not isinstance(pair, dict):
                    raise self.fail(_item(node, j), "expected 'slot_name: value'")
                slots.update(pair)
            return Fixture(slots=self.slot_values(slots, node, allow_none=False))
        if isinstance(body, dict):
            unknown = set(body) - {"slots", "customer_id"}
            if unknown:
                raise self.fail(node, f"unknown fixture key(s) {sorted(map(str, unknown))}")
            customer = body.get("customer_id")
            if customer is not None and not isinstance(customer, str | int):
                raise self.fail(_child(node, "customer_id"), "customer_id must be a string")
            return Fixture(
                slots=self.slot_values(body.get("slots") or {}, node, allow_none=False),
                customer_id=None if customer is None else str(customer),
            )
        raise self.fail(node, "a fixture is a list of 'slot: value' or {slots:, customer_id:}")

    def slot_values(self, raw: Any, node: yaml.Node | None, *, allow_none: bool) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(node, "slots must be a mapping of slot name to value")
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if value is None and allow_none:
                out[str(key)] = None
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                out[str(key)] = str(value)
            else:
                raise self.fail(_child(node, key), f"slot {key!r} needs a text value")
        return out

    def case(
        self, raw: Any, node: yaml.Node | None, fixtures: dict[str, Fixture]
    ) -> ConversationCase:
        if not isinstance(raw, dict) or not isinstance(raw.get("test_case"), str | int):
            raise self.fail(node, "each test case needs 'test_case: NAME' and 'steps:'")
        unknown = set(raw) - {"test_case", "steps", "fixtures"}
        if unknown:
            raise self.fail(node, f"unknown test case key(s) {sorted(map(str, unknown))}")
        steps_node = _child(node, "steps")
        raw_steps = raw.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise self.fail(steps_node or node, "'steps' must be a non-empty list")
        steps = [self.step(s, _item(steps_node, i)) for i, s in enumerate(raw_steps)]
        if not any(s.user is not None for s in steps):
            raise self.fail(node, "a test case needs at least one 'user' step")
        return ConversationCase(
            name=str(raw["test_case"]),
            file=self.name,
            line=_line(node),
            steps=tuple(steps),
            fixture=self.case_fixture(raw.get("fixtures"), _child(node, "fixtures"), fixtures),
        )

    def case_fixture(self, raw: Any, node: yaml.Node | None, named: dict[str, Fixture]) -> Fixture:
        if raw is None:
            return Fixture()
        if isinstance(raw, dict):
            return self.fixture(raw, node)
        if not isinstance(raw, list):
            raise self.fail(node, "'fixtures' is a list of fixture names or a mapping")
        slots: dict[str, str] = {}
        customer: str | None = None
        for i, ref in enumerate(raw):
            if str(ref) not in named:
                known = ", ".join(sorted(named)) or "none are defined"
                raise self.fail(_item(node, i), f"no fixture named {ref!r} ({known})")
            fixture = named[str(ref)]
            slots.update(fixture.slots)
            customer = fixture.customer_id or customer
        return Fixture(slots=slots, customer_id=customer)

    def step(self, raw: Any, node: yaml.Node | None) -> Step:
        if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in STEP_KEYS:
            raise self.fail(node, f"a step is one of {', '.join(k + ':' for k in STEP_KEYS)}")
        ((key, value),) = raw.items()
        line, at = _line(node), _child(node, key)
        if key == "user":
            if not isinstance(value, str | int | float) or not str(value).strip():
                raise self.fail(at, "'user' needs the customer's message as text")
            return Step(line, user=str(value))
        if key == "feedback":
            votes = {"down": -1, "up": 1, -1: -1, 1: 1}
            if value not in votes:
                raise self.fail(at, "'feedback' is 'up' or 'down'")
            return Step(line, feedback=votes[value])
        if key == "agent":
            if not isinstance(value, str) or not value.strip():
                raise self.fail(at, f"'agent' is {' or '.join(AGENT_ACTIONS)}, or a message")
            return Step(line, agent=value)
        return Step(line, bot=self.bot_check(value, at))

    def bot_check(self, raw: Any, node: yaml.Node | None) -> BotCheck:
        if not isinstance(raw, dict) or not raw:
            raise self.fail(node, f"'bot' needs a mapping of checks: {', '.join(BOT_KEYS)}")
        unknown = set(raw) - set(BOT_KEYS)
        if unknown:
            raise self.fail(
                node, f"unknown check(s) {sorted(map(str, unknown))}; use {', '.join(BOT_KEYS)}"
            )
        kind = raw.get("kind")
        if kind is not None and kind not in KINDS:
            raise self.fail(_child(node, "kind"), f"kind is one of {', '.join(KINDS)}")
        handoff = raw.get("handoff")
        if handoff is not None and not isinstance(handoff, bool):
            raise self.fail(_child(node, "handoff"), "handoff is true or false")
        buttons = raw.get("buttons")
        return BotCheck(
            intent=self.texts(raw.get("intent"), _child(node, "intent"), "intent"),
            kind=kind,
            faq=self.text(raw.get("faq"), _child(node, "faq"), "faq"),
            action=self.text(raw.get("action"), _child(node, "action"), "action"),
            text_contains=self.texts(
                raw.get("text_contains"), _child(node, "text_contains"), "text_contains"
            ),
            slots=self.slot_values(raw.get("slots") or {}, _child(node, "slots"), allow_none=True),
            buttons=None
            if buttons is None
            else self.texts(buttons, _child(node, "buttons"), "buttons"),
            handoff=handoff,
        )

    def text(self, raw: Any, node: yaml.Node | None, key: str) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw).strip():
            raise self.fail(node, f"{key} needs a text value")
        return str(raw)

    def texts(self, raw: Any, node: yaml.Node | None, key: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        items: Sequence[Any] = raw if isinstance(raw, list) else [raw]
        return tuple(
            self.text(v, _item(node, i) if isinstance(raw, list) else node, key) or ""
            for i, v in enumerate(items)
        )


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _child(node: yaml.Node | None, key: object) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == str(key):
                found: yaml.Node = v
                return found
    return None


def _item(node: yaml.Node | None, index: int) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and index < len(node.value):
        item: yaml.Node = node.value[index]
        return item
    return node
