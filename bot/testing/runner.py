"""Run conversation test cases: in this process through the bot's own pipeline (the code
path of the server's routes), or against a running server over its HTTP API.

Each case gets a new conversation. A `user` step sends the message; the `bot` step after
it compares the reply with what it expects, field by field (`StepResult.diff`). Custom
actions run wherever the bot's config sends them (`actions.url`: the real action server).
Over HTTP a case can check what the API returns: slot checks, slot fixtures and `agent`
steps need the in-process run, and a file that has them is refused before anything runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from deskbot.bot.core.types import Reply
from deskbot.bot.server.container import Bot
from deskbot.bot.testing.cases import BotCheck, ConversationCase, Step

__all__ = [
    "CaseResult",
    "HttpDriver",
    "InProcessDriver",
    "Observed",
    "StepResult",
    "check",
    "http_problems",
    "run_cases",
]

TEST_CHANNEL = "test"
TEST_AGENT = "conversation-test"


@dataclass(frozen=True)
class Observed:
    """What the bot did in reply to one message, as a test sees it."""

    text: str
    kind: str
    intent: str | None = None
    confidence: float | None = None
    citations: tuple[str, ...] = ()
    action: str | None = None
    buttons: tuple[str, ...] = ()
    handoff: bool = False
    turn_id: int | None = None
    slots: dict[str, str] | None = None  # None: not visible to this driver

    @classmethod
    def of(cls, reply: Reply, slots: dict[str, str] | None) -> Observed:
        return cls(
            text=reply.text,
            kind=reply.kind,
            intent=reply.intent.intent if reply.intent else None,
            confidence=reply.intent.confidence if reply.intent else None,
            citations=tuple(reply.citations),
            action=reply.action,
            buttons=tuple(reply.buttons),
            handoff=reply.kind == "handoff",
            turn_id=reply.turn_id,
            slots=slots,
        )


@dataclass(frozen=True)
class StepResult:
    step: Step
    observed: Observed | None = None
    # (what, expected, actual) for each check that failed; an error says why none ran.
    diff: tuple[tuple[str, str, str], ...] = ()
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.diff and self.error is None


@dataclass
class CaseResult:
    case: ConversationCase
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.steps)

    @property
    def failure(self) -> StepResult | None:
        return next((s for s in self.steps if not s.passed), None)


class Driver(Protocol):
    """One conversation at a time, whichever way it reaches the bot."""

    def start(self, case: ConversationCase) -> None: ...

    def say(self, text: str) -> Observed: ...

    def feedback(self, turn_id: int, value: int) -> Observed | None: ...

    def agent(self, what: str) -> None: ...


class InProcessDriver:
    """The bot's pipeline in this process, on its own store."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.conversation_id = ""

    def start(self, case: ConversationCase) -> None:
        conv, _token = self.bot.store.create_conversation(
            customer_id=case.fixture.customer_id, channel=TEST_CHANNEL
        )
        self.conversation_id = conv.id
        if case.fixture.slots:
            self.bot.store.save_dialogue_state(conv.id, {"slots": dict(case.fixture.slots)})

    def say(self, text: str) -> Observed:
        reply = self.bot.pipeline.handle(self.conversation_id, text)
        return Observed.of(reply, self._slots())

    def feedback(self, turn_id: int, value: int) -> Observed | None:
        reply = self.bot.pipeline.feedback(self.conversation_id, turn_id, value)
        return Observed.of(reply, self._slots()) if reply is not None else None

    def agent(self, what: str) -> None:
        handoff = self.bot.store.active_handoff(self.conversation_id)
        if what in ("hand_back", "resolve"):
            if handoff is None:
                raise StepError(f"agent {what}: no person has this conversation")
            if what == "hand_back":
                self.bot.pipeline.hand_back(int(handoff.id or 0))
            else:
                self.bot.store.resolve_handoff(int(handoff.id or 0), back_to_bot=False)
            return
        self.bot.store.append_turn(self.conversation_id, "agent", what, author=TEST_AGENT)

    def _slots(self) -> dict[str, str]:
        state = self.bot.store.dialogue_state(self.conversation_id) or {}
        return dict(state.get("slots") or {})


class HttpDriver:
    """A running deskbot server, through `POST /api/sessions`, `/api/messages` and
    `/api/feedback`, as a customer's client calls them."""

    def __init__(self, url: str, *, client: Any = None, timeout_s: float = 30.0) -> None:
        """`client`: an `httpx.Client` to send through (e.g. a test's ASGI client);
        by default one on `url`."""
        import httpx

        self.client = client or httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)
        self.token = ""

    def start(self, case: ConversationCase) -> None:
        body = {"customer_id": case.fixture.customer_id} if case.fixture.customer_id else None
        response = self.client.post("/api/sessions", json=body)
        self._ok(response)
        self.token = response.json()["session_token"]

    def say(self, text: str) -> Observed:
        response = self.client.post("/api/messages", json={"text": text}, headers=self._auth())
        self._ok(response)
        return self._observed(response.json())

    def feedback(self, turn_id: int, value: int) -> Observed | None:
        response = self.client.post(
            "/api/feedback", json={"turn_id": turn_id, "value": value}, headers=self._auth()
        )
        self._ok(response)
        reply = response.json().get("reply")
        return self._observed(reply) if reply else None

    def agent(self, what: str) -> None:
        raise StepError("agent steps need the in-process run (no --url)")

    def close(self) -> None:
        self.client.close()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @staticmethod
    def _ok(response: Any) -> None:
        if response.status_code >= 400:
            raise StepError(f"HTTP {response.status_code}: {response.text[:200]}")

    @staticmethod
    def _observed(out: dict[str, Any]) -> Observed:
        return Observed(
            text=out.get("text") or "",
            kind=out.get("kind") or "",
            intent=out.get("intent"),
            confidence=out.get("confidence"),
            citations=tuple(out.get("citations") or ()),
            action=out.get("action"),
            buttons=tuple(out.get("buttons") or ()),
            handoff=bool(out.get("handoff")) or out.get("kind") == "handoff",
            turn_id=out.get("turn_id"),
        )


class StepError(Exception):
    """A step that could not be carried out (not a failed check)."""


def check(expect: BotCheck, seen: Observed) -> tuple[tuple[str, str, str], ...]:
    """The checks of `expect` that `seen` fails: (what, expected, actual)."""
    found = [
        _check_intent(expect, seen),
        _differs("kind", expect.kind, seen.kind),
        None
        if expect.faq is None or expect.faq in seen.citations
        else ("faq", expect.faq, ", ".join(seen.citations) or "(no citation)"),
        _differs("action", expect.action, seen.action),
        *(
            ("text_contains", repr(part), repr(_short(seen.text)))
            for part in expect.text_contains
            if part.casefold() not in seen.text.casefold()
        ),
        _check_buttons(expect, seen),
        _differs("handoff", expect.handoff, seen.handoff),
        *_check_slots(expect, seen),
    ]
    return tuple(f for f in found if f is not None)


def _differs(what: str, expected: object, actual: object) -> tuple[str, str, str] | None:
    """A failed check when `expected` is given and `actual` is something else."""
    if expected is None or expected == actual:
        return None
    return (what, str(expected), str(actual))


def _check_intent(expect: BotCheck, seen: Observed) -> tuple[str, str, str] | None:
    if not expect.intent or seen.intent in expect.intent:
        return None
    return ("intent", " or ".join(expect.intent), f"{seen.intent} ({_conf(seen)})")


def _check_buttons(expect: BotCheck, seen: Observed) -> tuple[str, str, str] | None:
    if expect.buttons is None:
        return None
    missing = [b for b in expect.buttons if b not in seen.buttons]
    if not missing and (expect.buttons or not seen.buttons):
        return None
    return ("buttons", str(list(expect.buttons) or "none"), str(list(seen.buttons) or "none"))


def _check_slots(expect: BotCheck, seen: Observed) -> list[tuple[str, str, str]]:
    if not expect.slots:
        return []
    if seen.slots is None:
        return [("slots", str(dict(expect.slots)), "(not visible over HTTP)")]
    return [
        (f"slot {name}", str(value), str(seen.slots.get(name)))
        for name, value in expect.slots.items()
        if seen.slots.get(name) != value
    ]


def run_cases(
    cases: Iterable[ConversationCase],
    driver: Driver,
    *,
    on_case: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Run every case (a failed step ends its case); `on_case` sees each result."""
    results = []
    for case in cases:
        result = run_case(case, driver)
        results.append(result)
        if on_case is not None:
            on_case(result)
    return results


def run_case(case: ConversationCase, driver: Driver) -> CaseResult:
    result = CaseResult(case)
    started = time.perf_counter()
    last: Observed | None = None
    try:
        driver.start(case)
    except Exception as exc:  # the case cannot start: report it, run the others
        result.steps.append(StepResult(case.steps[0], error=f"could not start: {exc}"))
        return result
    for step in case.steps:
        try:
            outcome, last = _step(step, driver, last)
        except Exception as exc:  # a crash in the bot is a failure of this case, not of the run
            outcome = StepResult(step, error=f"{type(exc).__name__}: {exc}")
        result.steps.append(outcome)
        if not outcome.passed:
            break
    result.seconds = time.perf_counter() - started
    return result


def _step(step: Step, driver: Driver, last: Observed | None) -> tuple[StepResult, Observed | None]:
    if step.user is not None:
        seen = driver.say(step.user)
        return StepResult(step, observed=seen), seen
    if step.bot is not None:
        if last is None:
            return StepResult(step, error="no reply to check: put a 'user' step before"), last
        return StepResult(step, observed=last, diff=check(step.bot, last)), last
    if step.feedback is not None:
        if last is None or last.turn_id is None:
            return StepResult(step, error="no bot reply to rate before this step"), last
        rated = driver.feedback(last.turn_id, step.feedback)
        return StepResult(step, observed=rated), rated or last
    driver.agent(step.agent or "")
    return StepResult(step), last


def _conf(seen: Observed) -> str:
    return f"{seen.confidence:.2f}" if seen.confidence is not None else "-"


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def http_problems(cases: Iterable[ConversationCase]) -> list[str]:
    """What in `cases` a run over HTTP cannot do (FILE:LINE: why), before it starts."""
    problems = []
    for case in cases:
        if case.fixture.slots:
            problems.append(f"{case.where}: slot fixtures need the in-process run (no --url)")
        for step in case.steps:
            where = f"{case.file}:{step.line}"
            if step.agent is not None:
                problems.append(f"{where}: agent steps need the in-process run (no --url)")
            if step.bot is not None and step.bot.slots:
                problems.append(f"{where}: slot checks need the in-process run (no --url)")
    return problems
