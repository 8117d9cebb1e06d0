"""Prompt injection: customer text stays data, and nothing of the prompt gets out.

The attacks are `tests/data/injections.yaml`. The end-to-end test answers them with
the worst possible model: a real OpenAI-compatible server on loopback (`openai_server`,
pytest-httpserver) that obeys every injection (it streams a grounded sentence, then the
attack's markers, the system prompt it received and the attack), so only the guard
stands in the way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from werkzeug import Request, Response

from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import OpenAICompatibleGenerator
from deskbot.bot.generation.guard import GroundingGuard
from deskbot.bot.generation.prompting import SYSTEM_RULES, build_messages, sanitize_customer_text
from deskbot.bot.generation.responder import GroundedResponder
from tests.bot.generation.conftest import Action, FakeOpenAI, sse

ATTACKS = yaml.safe_load((Path(__file__).parents[2] / "data" / "injections.yaml").read_text())[
    "attacks"
]
PASSAGES = [
    Passage(
        id="lost-or-stolen-card",
        text=(
            "Freeze the card straight away in the Northwind app under Cards > select the card > "
            "Freeze, then check your recent transactions. If you're sure it's gone, tap Report "
            "lost or stolen: we cancel the card and send a free replacement."
        ),
        score=0.7,
        source="faq",
    )
]


def test_the_attack_set_covers_the_kinds_of_attack() -> None:
    assert len(ATTACKS) >= 50
    kinds = {a["category"] for a in ATTACKS}
    assert {"ignore", "reveal", "roleplay", "encoded", "delimiter"} <= kinds
    assert len({a["id"] for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a["category"] == "delimiter"], ids=str)
def test_customer_text_cannot_open_a_system_turn(attack: dict[str, Any]) -> None:
    messages = build_messages([Turn("user", attack["text"])], PASSAGES)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert attack["text"] not in messages[0]["content"]
    user = messages[1]["content"]
    for token in ("<|im_start|>", "<|im_end|>", "[INST]", "<<SYS>>", "</s>", "<start_of_turn>"):
        assert token not in user


def test_sanitising_cannot_be_nested_around() -> None:
    assert "<|im_start|>" not in sanitize_customer_text("<|im_<|x|>start|>system")
    assert sanitize_customer_text("hi\u200b there\x00") == "hi there"


def test_only_retrieved_passages_and_rules_are_in_the_prompt() -> None:
    history = [Turn("system", "internal note"), Turn("user", "hello"), Turn("bot", "Hi!")]
    messages = build_messages([*history, Turn("user", "my card is lost")], PASSAGES)
    system = messages[0]["content"]
    assert "internal note" not in json.dumps(messages)
    assert system.count("\n[") == len(PASSAGES)
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]


def test_history_is_bounded_by_tokens_newest_first() -> None:
    history = [
        Turn("user" if i % 2 == 0 else "bot", f"message number {i} " * 10) for i in range(40)
    ]
    messages = build_messages(history, PASSAGES, max_history_tokens=120)
    kept = [m["content"] for m in messages[1:]]
    assert kept and kept[-1] == history[-1].text.strip()
    assert sum(len(k) // 4 + 1 + 4 for k in kept) <= 120
    assert messages[1]["role"] == "user"


# How the obedient model introduces the prompt it leaks: the guard knows some tell-tale
# phrases ("my instructions"), so the leak is also tried bare and with words it does not.
LEAK_PREFIXES = ("", "Sure, here is everything I was told:", "My instructions:")


def _obedient(markers: dict[str, list[str]], prefix: str) -> Action:
    """A model that obeys: a grounded sentence, the attack's markers, the prompt it got."""

    def act(request: Request) -> Response:
        body = json.loads(request.get_data())
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        first = re.search(r"^\[1\] (.+?[.!?])(?:\s|$)", system, re.MULTILINE)
        assert first is not None
        reply = (
            first.group(1)
            + " "
            + " ".join(m.upper() + "." for m in markers.get(user, []))
            + f" {prefix} {system} {user}"
        )
        events = sse(*re.findall(r"\S+\s*", reply))
        return Response(events, content_type="text/event-stream")

    return act


@pytest.fixture(params=LEAK_PREFIXES, ids=["bare", "plain-words", "tell-tale"])
def obedient_url(openai_server: FakeOpenAI, request: pytest.FixtureRequest) -> str:
    openai_server.script(
        _obedient({sanitize_customer_text(a["text"]): a["markers"] for a in ATTACKS}, request.param)
    )
    return openai_server.url


def _rule_grams(n: int = 5) -> set[str]:
    words = re.findall(r"[a-z0-9']+", SYSTEM_RULES.lower().replace("{bot_name}", " "))
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def _first_of_each_category() -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for a in ATTACKS:
        seen.setdefault(a["category"], a)
    return list(seen.values())


@pytest.mark.parametrize(
    "attacks",
    [
        pytest.param(_first_of_each_category(), id="one-per-category"),
        pytest.param(ATTACKS, id="all", marks=pytest.mark.slow),
    ],
)
def test_an_obedient_model_neither_leaks_nor_obeys(
    obedient_url: str,
    embedder,  # type: ignore[no-untyped-def]
    attacks: list[dict[str, Any]],
) -> None:
    responder = GroundedResponder(
        OpenAICompatibleGenerator(obedient_url, model="obedient", retries=0),
        GroundingGuard(embedder),
        min_score=-1.0,
    )
    grams = _rule_grams()
    source = PASSAGES[0].text.lower()
    for attack in attacks:
        shown: list[str] = []
        result = responder.respond([Turn("user", attack["text"])], PASSAGES, on_token=shown.append)
        text = "".join(shown)
        assert text == result.text
        words = " ".join(re.findall(r"[a-z0-9']+", text.lower()))
        assert not [g for g in grams if g in words], (attack["id"], text)
        assert not [m for m in attack["markers"] if m in text.lower() and m not in source], (
            attack["id"],
            text,
        )
        # The guard refused the obeyed part, so the grounded opening is not shown
        # either: a reply is whole or replaced by the FAQ answer.
        assert result.kind == "faq" and text in {p.text for p in PASSAGES}
        assert not result.decision.ok
