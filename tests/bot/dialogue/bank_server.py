"""The test bank's action server (`bank_actions.py`) and a bot that asks before its
actions with side effects (`actions.confirm`), over the shared test project.

A plugin of tests/conftest.py: its fixtures serve every test, so deskbot's modules are
imported where they are used (not when pytest starts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.bot.actions.action_server import (
    INTENT_ACTIONS,
    free_port,
    running_bot,
    server_env,
    serving,
)

if TYPE_CHECKING:
    from deskbot.bot.core.config import BotConfig
    from deskbot.bot.dialogue.pipeline import TurnPipeline
    from deskbot.bot.server.container import Bot

HERE = Path(__file__).parent
FREEZE = "action_freeze_card"
REPORT = "action_report_compromised_card"


@dataclass(frozen=True)
class BankServer:
    """The webhook URL, and the file each action with a side effect writes a line to."""

    webhook: str
    log: Path

    def runs(self, conversation_id: str | None = None) -> list[list[str]]:
        """The side effects run so far (action, conversation, card), oldest first."""
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        rows = [line.split(" ")[:3] for line in lines]
        return [r for r in rows if conversation_id is None or r[1] == conversation_id]

    def intents(self, conversation_id: str) -> list[str]:
        """The intent the action server was told, for each side effect run in the conversation."""
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        rows = [line.split(" ") for line in lines]
        return [r[3] for r in rows if r[1] == conversation_id]


@pytest.fixture(scope="session")
def bank_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BankServer]:
    log = tmp_path_factory.mktemp("bank") / "side_effects.log"
    port = free_port()
    env = server_env(HERE, DESKBOT_TEST_SIDE_EFFECTS_LOG=str(log))
    cmd = [sys.executable, "-m", "rasa_sdk", "--actions", "bank_actions", "--port", str(port)]
    with serving(cmd, port, log.with_name("server.log"), env, HERE) as base:
        yield BankServer(f"{base}/webhook", log)


def confirming(config: BotConfig, *, min_confidence: float, cards_from: str) -> BotConfig:
    """The test project's config with the bank's actions asked first."""
    from deskbot.bot.core.config import ActionsConfig, ConfirmConfig

    a = config.actions
    confirm = {
        FREEZE: ConfirmConfig(
            min_confidence=min_confidence,
            prompt="Freeze your card ending {card_last4}?",
            slots_from=cards_from,
        ),
        REPORT: ConfirmConfig(
            min_confidence=min_confidence,
            prompt="Freeze your card ending {card_last4} and call our fraud team?",
            slots_from=cards_from,
        ),
    }
    actions = ActionsConfig(
        url=a.url,
        timeout_s=a.timeout_s,
        intent_actions={**INTENT_ACTIONS, "compromised_card": REPORT},
        required_slots=a.required_slots,
        confirm=confirm,
    )
    return dataclasses.replace(config, actions=actions)


def confirming_pipeline(bot: Bot, config: BotConfig) -> TurnPipeline:
    """A pipeline over `bot`'s store, models and action client with `config`'s rules
    (its `actions.confirm` included, whatever the container passed)."""
    from deskbot.bot.dialogue.pipeline import TurnPipeline
    from deskbot.bot.server.container import dialogue_rules

    rules = dataclasses.replace(dialogue_rules(config), confirm=dict(config.actions.confirm))
    return TurnPipeline(
        bot.store, bot.classifier, bot.retriever, rules, actions=bot.actions, metrics=bot.metrics
    )


@contextlib.contextmanager
def confirming_bot(
    root: Path,
    model_dir: Path,
    index_dir: Path,
    server: BankServer,
    *,
    min_confidence: float,
    cards_from: str = "action_customer_cards",
) -> Iterator[Bot]:
    """A warmed-up bot on the bank's action server that asks before side effects."""

    def adjust(config: BotConfig) -> BotConfig:
        return confirming(config, min_confidence=min_confidence, cards_from=cards_from)

    with running_bot(root, model_dir, index_dir, server.webhook, adjust) as built:
        pipeline = confirming_pipeline(built, built.config)
        try:
            yield dataclasses.replace(built, pipeline=pipeline)
        finally:
            pipeline.close()


def confirming_bot_fixture(min_confidence: float) -> Callable[..., Iterator[Bot]]:
    """A module-scoped `bot` fixture: `confirming_bot` over a new test project on the
    session's `bank_server` (a test module assigns it to `bot` and imports `bank_server`)."""

    @pytest.fixture(scope="module", name="bot")
    def bot(
        tmp_path_factory: pytest.TempPathFactory,
        trained_model_dir: Path,
        faq_index_dir: Path,
        bank_server: BankServer,
    ) -> Iterator[Bot]:
        root = tmp_path_factory.mktemp("confirming") / "bot"
        with confirming_bot(
            root, trained_model_dir, faq_index_dir, bank_server, min_confidence=min_confidence
        ) as built:
            yield built

    return bot
