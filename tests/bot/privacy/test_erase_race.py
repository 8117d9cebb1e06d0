"""An erasure racing a turn being stored, on PostgreSQL: the real `append_turn` is held
open just after its INSERT (its transaction holds the conversation's row lock) when the
erasure starts, and the test lets it commit only once PostgreSQL shows the erasure
waiting on that lock."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import text as sql

from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate


def wait_for_a_lock_wait(engine: Any, timeout: float = 60.0) -> None:
    """Until a session of this database waits on a lock (the erasure, blocked)."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            ).scalar()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the erasure never waited for the turn's transaction")


@pytest.mark.postgres
def test_an_erasure_waits_for_a_turn_being_stored_and_deletes_it_too(postgres_url: str) -> None:
    engine = create_store_engine(postgres_url)
    migrate(engine)
    store = SqlConversationStore(engine)
    conv, _ = store.create_conversation(customer_id="c1")
    store.append_turn(conv.id, "user", "first message")

    locked, release = threading.Event(), threading.Event()
    writer_name = "storing-a-turn"

    @event.listens_for(engine, "after_cursor_execute")
    def hold_after_insert(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        inserting = statement.lstrip().upper().startswith("INSERT INTO TURNS")
        if inserting and threading.current_thread().name == writer_name:
            locked.set()
            # Held until the erasure is seen waiting (an upper bound: on 2 busy cores the
            # erasure once took over 10 s to reach the lock, and the turn committed first).
            release.wait(90)

    writer = threading.Thread(
        target=store.append_turn, args=(conv.id, "user", "second message"), name=writer_name
    )
    writer.start()
    assert locked.wait(30)
    result: dict[str, object] = {}

    def erase() -> None:
        try:
            result["counts"] = store.erase_conversations([conv.id], kind="forget")
        except Exception as exc:  # reported below
            result["error"] = exc

    eraser = threading.Thread(target=erase)
    eraser.start()
    wait_for_a_lock_wait(engine)
    release.set()
    writer.join(30)
    eraser.join(30)
    event.remove(engine, "after_cursor_execute", hold_after_insert)
    assert "error" not in result, result.get("error")
    counts = result["counts"]
    assert isinstance(counts, dict)
    assert counts["conversations"] == 1 and counts["turns"] == 2  # the late turn went too
    with engine.connect() as conn:
        assert (
            conn.execute(
                sql("SELECT count(*) FROM turns WHERE conversation_id = :c"), {"c": conv.id}
            ).scalar()
            == 0
        )
    engine.dispose()
