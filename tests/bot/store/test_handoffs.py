"""The queue's read of customers' messages (SQLite and PostgreSQL): every open
handoff's last customer turns in one query."""

from __future__ import annotations

from sqlalchemy import event

from deskbot.bot.store import SqlConversationStore


def test_the_last_customer_turns_of_many_conversations_in_one_query(
    store: SqlConversationStore,
) -> None:
    chatty, _ = store.create_conversation()
    for i in range(6):
        store.append_turn(chatty.id, "user", f"message {i}", intent="card" if i < 4 else None)
        store.append_turn(chatty.id, "bot", f"reply {i}")
    quiet, _ = store.create_conversation()
    silent, _ = store.create_conversation()
    store.append_turn(quiet.id, "user", "hello")
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    turns = store.queue_customer_turns([chatty.id, quiet.id, silent.id], last=4)
    assert len([s for s in statements if "turns" in s]) == 1
    assert [t.text for t in turns[chatty.id]] == [f"message {i}" for i in range(2, 6)]
    assert [t.intent for t in turns[chatty.id]] == ["card", "card", None, None]
    assert [t.text for t in turns[quiet.id]] == ["hello"]
    assert silent.id not in turns
    ids = [t.id for t in turns[chatty.id]]
    assert ids == sorted(ids)
    assert store.queue_customer_turns([]) == {}
