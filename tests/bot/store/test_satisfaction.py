"""The satisfaction survey's store, on SQLite and the real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store import SqlConversationStore


def handed_off(store: SqlConversationStore, intent: str, agent: str) -> str:
    """A conversation handed off about `intent` and claimed by `agent`; its id."""
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "help", intent=intent)
    handoff = store.open_handoff(conv.id, "customer_request", intent=intent)
    assert handoff.id is not None and store.claim_handoff(handoff.id, agent)
    return conv.id


def test_an_answer_is_kept_and_a_second_replaces_the_first(store: SqlConversationStore) -> None:
    cid = handed_off(store, "card_arrival", "ann")
    store.record_satisfaction(cid, 2, "slow")
    first = store.satisfaction(cid)
    assert first is not None
    assert (first.score, first.comment, first.agent_id, first.intent) == (
        2,
        "slow",
        "ann",  # the agent who claimed the handoff, when none is named
        "card_arrival",
    )
    store.record_satisfaction(cid, 5, agent_id="bob")
    second = store.satisfaction(cid)
    assert second is not None
    assert (second.score, second.comment, second.agent_id) == (5, None, "bob")
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from satisfaction")).scalar_one() == 1


@pytest.mark.parametrize("score", [0, 6, -1, 3.5, True, "5"])
def test_a_score_outside_one_to_five_is_refused(store: SqlConversationStore, score: object) -> None:
    conv, _ = store.create_conversation()
    with pytest.raises(ValueError, match="from 1 to 5"):
        store.record_satisfaction(conv.id, score)  # type: ignore[arg-type]
    assert store.satisfaction(conv.id) is None


def test_an_answer_for_no_conversation_is_refused(store: SqlConversationStore) -> None:
    with pytest.raises(StoreError, match="no conversation"):
        store.record_satisfaction("nope", 3)


def test_csat_by_intent_and_by_agent(store: SqlConversationStore) -> None:
    for intent, agent, score in [
        ("card_arrival", "ann", 5),
        ("card_arrival", "ann", 4),
        ("card_arrival", "bob", 1),
        ("exchange_rate", "bob", 3),
    ]:
        store.record_satisfaction(handed_off(store, intent, agent), score)
    bot_only, _ = store.create_conversation()
    store.record_satisfaction(bot_only.id, 5)

    by_intent = store.csat_by_intent()
    assert by_intent["card_arrival"] == {
        "answers": 3,
        "satisfied": 2,
        "csat": pytest.approx(0.6667),
        "mean_score": pytest.approx(3.33),
    }
    assert by_intent["exchange_rate"]["csat"] == 0.0
    assert by_intent["(unknown)"]["answers"] == 1
    by_agent = store.csat_by_agent()
    assert {name: row["answers"] for name, row in by_agent.items()} == {
        "ann": 2,
        "bob": 2,
        "(bot only)": 1,
    }
    assert by_agent["ann"]["csat"] == 1.0 and by_agent["bob"]["mean_score"] == 2.0
    assert store.csat_by_agent(days=0) == {}


def test_erasing_a_conversation_erases_its_answer(store: SqlConversationStore) -> None:
    gone = handed_off(store, "card_arrival", "ann")
    kept = handed_off(store, "card_arrival", "ann")
    store.record_satisfaction(gone, 1, "the comment of the erased customer")
    store.record_satisfaction(kept, 5)
    counts = store.erase_conversations([gone])
    assert counts["satisfaction"] == 1 and counts["conversations"] == 1
    assert store.satisfaction(gone) is None
    assert store.satisfaction(kept) is not None
    with store.engine.connect() as conn:
        comments = conn.execute(text("select comment from satisfaction")).scalars().all()
    assert comments == [None]
