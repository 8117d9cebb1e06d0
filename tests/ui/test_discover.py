"""The Discover tab in Chromium (#20 item 3): from a candidate intent to approved training
examples that `deskbot train intents` reads with the project's intents file."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from deskbot.bot.store.audit import DISCOVERY_APPROVED, DISCOVERY_EDITED
from deskbot.training.data.datasets import load_project_intents
from tests.ui.conftest import LiveApp
from tests.ui.test_browser import log_in

pytestmark = pytest.mark.browser

CANDIDATES = {
    "source": "sqlite:///var/deskbot.db",
    "messages": 6,
    "k": 2,
    "outliers": [],
    "candidates": [
        {
            "name": "card_arrive",
            "size": 4,
            "cohesion": 0.71,
            "keywords": ["card", "arrive"],
            "representatives": ["my card has not arrived"],
            "member_ids": ["conv-a", "conv-b", "conv-c", "conv-d"],
            "member_texts": [
                "my card has not arrived",
                "when will my card come",
                "still waiting for my new card",
                "what is the weather like tomorrow",
            ],
        },
        {
            "name": "rate_exchange",
            "size": 2,
            "cohesion": 0.66,
            "keywords": ["rate"],
            "representatives": ["which exchange rate do you use"],
            "member_ids": ["conv-e", "conv-f"],
            "member_texts": ["which exchange rate do you use", "is the currency rate fair"],
        },
    ],
}


def test_an_agent_cleans_names_and_approves_a_candidate(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    cfg = live_app.bot.config
    cfg.intents.discovery_dir.mkdir(parents=True, exist_ok=True)
    (cfg.intents.discovery_dir / "candidates.json").write_text(json.dumps(CANDIDATES))
    page = log_in(new_page, live_app.url)
    page.get_by_role("tab", name="Discover").click()
    page.get_by_text("2 candidates").wait_for()
    table = page.locator("#discover-table")
    assert table.get_by_text("card_arrive").count() and table.get_by_text("rate_exchange").count()

    # the weather is no card question: tick it and take it out
    page.locator("#discover-members").get_by_label("what is the weather like tomorrow").check()
    page.get_by_role("button", name="Remove ticked").click()
    page.get_by_text("Removed 1 member").wait_for()

    # name it after an intent the live model knows, and approve
    name = page.locator("#discover-name input")
    name.fill("card_arrival")
    name.press("Enter")
    page.get_by_role("button", name="Approve").first.click()
    page.get_by_text("Approved as card_arrival: 3 training examples").wait_for()

    data = load_project_intents(None, cfg.intents.discovered_data)
    assert sorted(data.texts) == [
        "my card has not arrived",
        "still waiting for my new card",
        "when will my card come",
    ]
    assert set(data.labels) == {"card_arrival"}
    assert "source,ref" in cfg.intents.discovered_data.read_text().splitlines()[0]
    actions = [e.action for e in live_app.bot.store.audit_events(actor="alice")]
    assert DISCOVERY_EDITED in actions and DISCOVERY_APPROVED in actions
    # what is left to review: the other candidate
    page.locator("#discover-table").get_by_text("rate_exchange").filter(
        visible=True
    ).first.wait_for()
    assert page.locator("#discover-table").get_by_text("card_arrive", exact=True).count() == 0
