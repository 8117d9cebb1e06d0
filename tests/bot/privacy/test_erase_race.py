"""An erasure racing a turn being stored, on PostgreSQL: the turn's transaction holds the
conversation's row lock (as `append_turn` does) when the erasure starts."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text as sql

from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate


@pytest.mark.postgres
def test_an_erasure_waits_for_a_turn_being_stored_and_deletes_it_too(postgres_url: str) -> None:
    engine = create_store_engine(postgres_url)
    migrate(engine)
    store = SqlConversationStore(engine)
    conv, _ = store.create_conversation(customer_id="c1")
    store.append_turn(conv.id, "user", "first message")

    locked, release = threading.Event(), threading.Event()

    def storing_a_turn() -> None:
        # what append_turn does, held open in the middle
        with engine.begin() as conn:
            conn.execute(
                sql("SELECT id FROM conversations WHERE id = :c FOR UPDATE"), {"c": conv.id}
            )
            conn.execute(
                sql(
                    "INSERT INTO turns (conversation_id, seq, role, text, created_at, passages,"
                    " model_versions, latency_ms) VALUES (:c, 2, 'user', 'second message',"
                    " now(), '[]', '{}', '{}')"
                ),
                {"c": conv.id},
            )
            locked.set()
            release.wait(10)

    writer = threading.Thread(target=storing_a_turn)
    writer.start()
    assert locked.wait(10)
    result: dict[str, object] = {}

    def erase() -> None:
        try:
            result["counts"] = store.erase_conversations([conv.id], kind="forget")
        except Exception as exc:  # reported below
            result["error"] = exc

    eraser = threading.Thread(target=erase)
    eraser.start()
    time.sleep(0.5)  # the erasure is now waiting for the turn's transaction
    release.set()
    writer.join(10)
    eraser.join(30)
    assert "error" not in result, result.get("error")
    counts = result["counts"]
    assert isinstance(counts, dict)
    assert counts["conversations"] == 1 and counts["turns"] == 2  # the late turn went too
    with engine.connect() as conn:
        assert conn.execute(sql("SELECT count(*) FROM turns")).scalar() == 0
    engine.dispose()
