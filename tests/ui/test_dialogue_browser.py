"""Actions with a side effect in the customer widget (Debian's Chromium), against the
real app: the test project (fine-tuned model, FAQ index, SQLite) with the test bank's
rasa-sdk action server, which writes down every side effect it performs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deskbot.bot.dialogue.confirming import CANCELLED_TEXT
from tests.bot.dialogue.bank_server import FREEZE, BankServer, confirming_bot
from tests.ui.conftest import LiveApp, serving
from tests.ui.test_browser import ask, open_widget, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def confirming_app(
    tmp_path: Path,
    trained_model_dir: Path,
    faq_index_dir: Path,
    bank_server: BankServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LiveApp]:
    """`deskbot serve` of a bot that asks before freezing a card, on a free port."""
    monkeypatch.setenv("DESKBOT_SECRET_KEY", "test-secret-" + "x" * 32)
    with (
        confirming_bot(
            tmp_path / "bot", trained_model_dir, faq_index_dir, bank_server, min_confidence=0.9
        ) as bot,
        serving(bot) as live,
    ):
        yield live


def test_the_widget_answers_how_to_and_asks_before_freezing_a_card(
    confirming_app: LiveApp, bank_server: BankServer, new_page: Callable[..., Any]
) -> None:
    earlier = len(bank_server.runs())  # the server is shared by the test session

    def runs() -> list[tuple[str, str]]:
        return [(action, card) for action, _conv, card in bank_server.runs()[earlier:]]

    page = open_widget(new_page, confirming_app.url)
    chat = page.locator("#deskbot-chat")
    ask(page, "how do I freeze my card?")
    chat.get_by_text("Cards > select the card > Freeze").first.wait_for()
    assert runs() == [] and chat.get_by_text("Freeze your card ending").count() == 0

    ask(page, "I lost my card")
    chat.get_by_text("Freeze your card ending 1234?").wait_for()
    chat.get_by_role("button", name="Yes", exact=True).wait_for()
    chat.get_by_role("button", name="No", exact=True).click()
    chat.get_by_text(CANCELLED_TEXT).wait_for()
    assert runs() == []

    ask(page, "I lost my card")
    wait_until(lambda: chat.get_by_text("Freeze your card ending 1234?").count() == 2)
    chat.get_by_role("button", name="Yes", exact=True).click()
    chat.get_by_text("I've frozen your card ending 1234.").wait_for()
    assert runs() == [(FREEZE, "1234")]
