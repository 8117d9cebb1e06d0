"""A customer message with the client's id is stored once, however often it is sent
(on SQLite and the real PostgreSQL server), and a reply knows which message it answers."""

from __future__ import annotations

import threading

from deskbot.bot.store import SqlConversationStore


def test_a_retried_message_id_returns_the_stored_turn_and_writes_nothing(
    store: SqlConversationStore,
) -> None:
    conv, _ = store.create_conversation()
    first, new = store.append_message(conv.id, "where is my card?", "m-1")
    again, new_again = store.append_message(conv.id, "where is my card?", "m-1")
    assert new and not new_again
    assert (again.id, again.seq, again.text, again.message_id) == (first.id, 1, first.text, "m-1")
    assert [t.text for t in store.history(conv.id)] == ["where is my card?"]
    assert store.message_turn(conv.id, "m-1") is not None
    assert store.message_turn(conv.id, "m-2") is None


def test_ids_are_per_conversation(store: SqlConversationStore) -> None:
    a, _ = store.create_conversation()
    b, _ = store.create_conversation()
    assert store.append_message(a.id, "hi", "same")[1]
    assert store.append_message(b.id, "hi", "same")[1]
    assert len(store.history(a.id)) == len(store.history(b.id)) == 1


def test_a_reply_is_found_from_the_message_it_answers(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    user, _ = store.append_message(conv.id, "fees?", "m-1")
    assert store.reply_to(conv.id, int(user.id or 0)) is None
    bot = store.record_bot_turn(
        conv.id, "No fees.", user_turn_id=user.id, kind="faq", reply={"citations": ["fees"]}
    )
    found = store.reply_to(conv.id, int(user.id or 0))
    assert found is not None and (found.id, found.reply) == (bot.id, {"citations": ["fees"]})


def test_copies_sent_at_once_store_one_turn(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    results: list[bool] = []
    start = threading.Barrier(8)

    def send() -> None:
        start.wait()
        results.append(store.append_message(conv.id, "hello?", "burst")[1])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert [t.text for t in store.history(conv.id)] == ["hello?"]
