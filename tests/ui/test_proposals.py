"""The FAQ proposals tab in Chromium (#20 item 4): an agent edits and approves a mined
answer, and the nightly job's FAQ loop indexes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deskbot.bot.store.audit import FAQ_PROPOSAL_DECIDED, FAQ_PROPOSAL_EDITED
from deskbot.knowledge.indexing.index import load_version
from deskbot.knowledge.sources.proposals import PENDING, PROPOSALS_FILE, ProposalsFile
from deskbot.training.data.faq_proposals import FaqLoop
from tests.ui.conftest import LiveApp
from tests.ui.test_browser import log_in

pytestmark = pytest.mark.browser

EDITED = "Cards arrive within 3 working days; track yours under Cards in the app."


def test_an_agent_edits_and_approves_a_proposal_which_the_nightly_job_indexes(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    cfg = live_app.bot.config
    proposals = ProposalsFile(cfg.knowledge.index_dir.parent / PROPOSALS_FILE)
    proposals.write(
        [
            {
                "id": "mined-card_arrival",
                "status": PENDING,
                "source": "mined",
                "question": "my card has not arrived",
                "answer": "Cards arrive within 3 working days.",
                "intent": "card_arrival",
                "support": 3,
                "variants": [{"text": "We can send a new card by express post.", "replies": 1}],
            },
            {"id": "proposed-x", "status": PENDING, "question": "q?", "answer": "a."},
        ]
    )
    page = log_in(new_page, live_app.url)
    page.get_by_role("tab", name="FAQ proposals").click()
    page.get_by_text("2 proposals").wait_for()
    page.get_by_text("We can send a new card by express post.").wait_for()  # a variant
    page.fill("#proposal-answer textarea", EDITED)
    page.locator("#proposal-approve").click()
    page.get_by_text("mined-card_arrival approved").wait_for()

    entry = proposals.get("mined-card_arrival")
    assert entry is not None
    assert (entry["status"], entry["answer"], entry["decided_by"]) == ("approved", EDITED, "alice")
    assert proposals.get("proposed-x")["status"] == PENDING  # type: ignore[index]
    actions = [e.action for e in live_app.bot.store.audit_events(actor="alice")]
    assert FAQ_PROPOSAL_EDITED in actions and FAQ_PROPOSAL_DECIDED in actions

    # the nightly job: the decision is recorded once (by the console), the answer indexed
    loop = FaqLoop.from_config(cfg)
    assert loop.record_decisions(live_app.bot.store, "system:nightly") == 0
    assert loop.ingest_approved() == 1
    assert "mined-card_arrival" in {p.id for p in load_version(cfg.knowledge.index_dir).passages}
