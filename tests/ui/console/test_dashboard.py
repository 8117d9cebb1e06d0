"""The dashboard's customer satisfaction tables, from the real store's CSAT queries."""

from __future__ import annotations

from deskbot.bot.store import SqlConversationStore
from deskbot.ui.console.dashboard import csat_markdown


def test_csat_is_shown_by_intent_and_by_agent(store: SqlConversationStore) -> None:
    assert "no survey answers" in csat_markdown({}, {}, 14)
    for intent, agent, score in [("card_arrival", "ann", 5), ("card_arrival", "b|ob", 2)]:
        conv, _ = store.create_conversation()
        handoff = store.open_handoff(conv.id, "customer_request", intent=intent)
        store.claim_handoff(int(handoff.id or 0), agent)
        store.record_satisfaction(conv.id, score)
    shown = csat_markdown(store.csat_by_intent(), store.csat_by_agent(), 14)
    assert "**50%** (2 answers)" in shown
    assert "| card_arrival | 2 | 50% | 3.5 |" in shown
    assert "| ann | 1 | 100% | 5.0 |" in shown and "| b\\|ob | 1 | 0% | 2.0 |" in shown
