"""The side-effect conversation suite (tests/conversations/side_effects.yml) through the
whole turn: the real fine-tuned model, the FAQ index and the test bank's action server,
which writes down every side effect it performs.

Hard rules, each a failure: no action with a side effect ran except right after the
customer said yes to its confirmation; no how-to question about an action was acted on
or offered; and every one the classifier understood (in scope) was answered from the
FAQ. Every expectation of the file is counted and printed (`pytest -s`): the small test
model (8 intents, 12 examples each) calls some messages out of scope, which the FAQ
then cannot answer closely enough, and that is not the policy's failure.

    pytest -q -s tests/test_conversations_side_effects.py
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from deskbot.bot.core.types import Reply
from deskbot.bot.dialogue.confirming import (
    BUTTON_NO,
    BUTTON_YES,
    CANCELLED_TEXT,
    asks_how_to,
    is_yes,
)
from deskbot.bot.dialogue.pipeline import TurnPipeline
from deskbot.bot.server.container import Bot
from tests.bot.dialogue.bank_server import (
    BankServer,
    confirming,
    confirming_bot_fixture,
    confirming_pipeline,
)

SUITE = Path(__file__).parent / "conversations" / "side_effects.yml"
# The test model's confidences for clear requests are 0.999+, for a one-word guess
# ("card") 0.96: the bar for acting sits between them, as an operator would set it.
MIN_CONFIDENCE = 0.99


bot = confirming_bot_fixture(min_confidence=MIN_CONFIDENCE)


def met(expect: str, reply: Reply, ran: int) -> bool:
    """Whether one reply is what the suite expects of it (`ran`: side effects it caused)."""
    asks_yes = reply.buttons == (BUTTON_YES, BUTTON_NO)
    checks = {
        "answer": reply.kind in ("faq", "generated") and not ran,
        "no_action": reply.action is None and not ran,
        "confirm": asks_yes and "card ending" in reply.text and not ran,
        "choose": len(reply.buttons) >= 2 and not asks_yes and not ran,
        "run": ran == 1,
        "cancelled": reply.text == CANCELLED_TEXT and not ran,
    }
    return checks[expect]


def run_conversation(
    bot: Bot, pipeline: TurnPipeline, server: BankServer, turns: list[dict[str, str]]
) -> list[dict[str, Any]]:
    conv, _token = bot.store.create_conversation(channel="suite")
    rows: list[dict[str, Any]] = []
    before: Reply | None = None
    for turn in turns:
        done = len(server.runs(conv.id))
        reply = pipeline.handle(conv.id, turn["say"])
        ran = len(server.runs(conv.id)) - done
        confirmed = (
            before is not None and before.buttons == (BUTTON_YES, BUTTON_NO) and is_yes(turn["say"])
        )
        rows.append(
            {
                **turn,
                "kind": reply.kind,
                "ran": ran,
                "unconfirmed": ran if not confirmed else max(0, ran - 1),
                "met": met(turn["expect"], reply, ran),
                "offered": bool(reply.buttons) and "card" in reply.text.lower(),
                "in_scope": reply.intent is not None and reply.intent.in_scope,
                "reply": reply.text[:60],
            }
        )
        before = reply
    return rows


def test_no_side_effect_without_a_yes_and_how_to_questions_answered(
    bot: Bot, bank_server: BankServer
) -> None:
    conversations = yaml.safe_load(SUITE.read_text(encoding="utf-8"))
    assert len(conversations) >= 15
    two_cards = confirming(
        bot.config, min_confidence=MIN_CONFIDENCE, cards_from="action_customer_two_cards"
    )
    pipelines = {1: bot.pipeline, 2: confirming_pipeline(bot, two_cards)}
    counts: Counter[str] = Counter()
    for conversation in conversations:
        pipeline = pipelines[conversation.get("cards", 1)]
        for row in run_conversation(bot, pipeline, bank_server, conversation["turns"]):
            counts["turns"] += 1
            counts["expectations met"] += row["met"]
            counts["side effects run"] += row["ran"]
            counts["side effects without a yes"] += row["unconfirmed"]
            if row["expect"] == "answer" and asks_how_to(row["say"]):
                counts["how-to questions"] += 1
                counts["how-to acted on or offered"] += row["ran"] + row["offered"]
                counts["how-to answered from the FAQ"] += row["met"]
                counts["how-to in scope"] += row["in_scope"]
                counts["how-to in scope answered from the FAQ"] += row["met"] and row["in_scope"]
            if not row["met"]:
                print(f"MISSED {conversation['name']!r}: {row}")
    pipelines[2].close()
    print(f"{len(conversations)} conversations: {dict(counts)}")
    assert counts["side effects without a yes"] == 0
    assert counts["how-to acted on or offered"] == 0
    in_scope = counts["how-to in scope"]
    assert counts["how-to in scope answered from the FAQ"] == in_scope > 0
    assert counts["side effects run"] > 0  # the suite does confirm some
