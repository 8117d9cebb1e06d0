"""What the dialogue tests share: the real bot (fine-tuned model, FAQ index, SQLite, the
rasa-sdk action server on loopback), one per test module. `test_side_effects.py` replaces
it with a bot on the test bank's action server that asks before side effects."""

from __future__ import annotations

import pytest

from deskbot.bot.server.container import Bot


@pytest.fixture(scope="module")
def bot(module_bot: Bot) -> Bot:
    """The shared test project's warmed-up bot, one per test module."""
    return module_bot
