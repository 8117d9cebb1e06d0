"""The store's contract, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest
from sqlalchemy import text

from deskbot.bot.core.errors import StoreError
from deskbot.bot.core.types import Reply
from deskbot.bot.store import SqlConversationStore, TurnKind, create_store_engine, migrate
from deskbot.bot.store.store import hash_token


def run_together(target: Callable[..., None], calls: list[tuple[Any, ...]]) -> None:
    """Run `target(*args)` for each of `calls` in its own thread; wait for all."""
    threads = [threading.Thread(target=target, args=args) for args in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def status_of(store: SqlConversationStore, conversation_id: str) -> str:
    conv = store.get_conversation(conversation_id)
    assert conv is not None
    return conv.status


def test_session_token_finds_the_conversation_and_is_stored_hashed(
    store: SqlConversationStore,
) -> None:
    conv, token = store.create_conversation(customer_id="c-1")
    found = store.conversation_by_token(token)
    assert found is not None and found.id == conv.id
    assert store.conversation_by_token(token + "x") is None
    assert conv.token_hash == hash_token(token) != token
    with store.engine.connect() as conn:
        stored = conn.execute(text("select token_hash from conversations")).scalars().all()
    assert token not in stored


def test_turns_keep_order_and_metadata(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "my card hasn't arrived")
    store.append_turn(
        conv.id,
        "bot",
        "Cards arrive in 3-5 days.",
        intent="card_arrival",
        confidence=0.93,
        kind="faq",
        passages=[{"id": "card-arrival", "score": 0.8}],
        model_versions={"intents": "v1"},
        latency_ms={"total": 12.5},
    )
    turns = store.history(conv.id)
    assert [(t.seq, t.role) for t in turns] == [(1, "user"), (2, "bot")]
    bot = turns[1]
    assert bot.intent == "card_arrival" and bot.confidence == pytest.approx(0.93)
    assert bot.passages == [{"id": "card-arrival", "score": 0.8}]
    assert bot.model_versions == {"intents": "v1"} and bot.latency_ms == {"total": 12.5}
    assert bot.created_at.tzinfo is not None
    assert [t.seq for t in store.history(conv.id, limit=1)] == [2]


def test_concurrent_writers_never_lose_or_duplicate_a_turn(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                store.append_turn(conv.id, "user", f"w{n}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_together(write, [(n,) for n in range(4)])
    assert not errors
    turns = store.history(conv.id)
    assert sorted(t.seq for t in turns) == list(range(1, 41))
    assert len({t.text for t in turns}) == 40


def test_a_turn_for_an_unknown_conversation_is_refused(store: SqlConversationStore) -> None:
    with pytest.raises(StoreError, match="no conversation"):
        store.append_turn("nope", "user", "hi")


def test_exactly_one_of_many_agents_claims_a_handoff(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    handoff = store.open_handoff(conv.id, "customer_request", intent="card_arrival")
    assert (
        store.open_handoff(conv.id, "again").id == handoff.id
    )  # one open handoff per conversation
    assert handoff.id is not None and status_of(store, conv.id) == "handoff"
    hid = handoff.id
    barrier = threading.Barrier(6)
    wins: list[str] = []

    def claim(agent: str) -> None:
        barrier.wait()
        if store.claim_handoff(hid, agent):
            wins.append(agent)

    run_together(claim, [(f"agent{i}",) for i in range(6)])
    assert len(wins) == 1
    assert [h.claimed_by for h in store.handoff_queue(statuses=("claimed",))] == wins
    store.resolve_handoff(hid)
    assert status_of(store, conv.id) == "open"
    assert store.handoff_queue() == []


def test_labels_and_feedback_are_kept(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    turn = store.append_turn(conv.id, "bot", "answer", intent="exchange_rate")
    assert turn.id is not None
    store.set_feedback(turn.id, -1)
    store.add_label(
        turn.id, "ann", intent="card_arrival", answer_wrong=True, correct_answer="Try X"
    )
    stored = store.get_turn(turn.id)
    assert stored is not None and stored.feedback == -1
    [label] = store.labels()
    assert (label.intent, label.answer_wrong, label.correct_answer) == (
        "card_arrival",
        True,
        "Try X",
    )
    with pytest.raises(ValueError):
        store.set_feedback(turn.id, 5)


def test_sqlite_writers_in_one_process_take_turns_instead_of_meeting_the_lock(
    tmp_path: Path,
) -> None:
    """With no busy timeout at all, SQLite refuses a second writer ("database is
    locked"): the store's own writers queue for each other instead, so none is refused
    (and none sleeps in SQLite's busy handler, which is what slowed turns under load)."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'busy.db'}", busy_timeout_s=0)
    migrate(engine)
    store = SqlConversationStore(engine)
    convs = [store.create_conversation()[0].id for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        barrier.wait()
        try:
            for i in range(15):
                conv = convs[(n + i) % len(convs)]
                user = store.append_turn(conv, "user", f"w{n}-{i}")
                store.record_bot_turn(
                    conv,
                    f"reply {n}-{i}",
                    user_turn_id=user.id,
                    user_values={"intent": "card_arrival"},
                    state={"n": n, "i": i},
                    kind="faq",
                )
        except BaseException as exc:
            errors.append(exc)

    run_together(write, [(n,) for n in range(8)])
    engine.dispose()
    assert not errors, errors[:1]
    assert store.count_turns(role="user") == store.count_turns(role="bot") == 8 * 15
    for conv in convs:
        seqs = [t.seq for t in store.history(conv)]
        assert seqs == list(range(1, len(seqs) + 1))


def test_a_bot_turn_is_stored_with_the_kinds_a_reply_has() -> None:
    assert get_args(TurnKind) == get_args(get_type_hints(Reply)["kind"])
