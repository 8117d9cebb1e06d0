"""Internal notes on the real store: agents' own table, never a turn, erased with the
conversation."""

from __future__ import annotations

import pytest

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.notes import MAX_NOTE_CHARS
from deskbot.training.data.export import export_examples

NOTE = "VIP customer, refund approved by Sam (internal)"


def test_notes_are_kept_per_conversation_in_order(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    other, _ = store.create_conversation()
    seen = store.changes.version
    store.add_note(conv.id, "alice", "  first  ")
    store.add_note(conv.id, "bob", "second")
    store.add_note(other.id, "alice", "elsewhere")
    assert [(n.agent, n.text) for n in store.notes(conv.id)] == [
        ("alice", "first"),
        ("bob", "second"),
    ]
    if not store.changes.across_processes:  # SQLite raises the feed itself
        assert store.changes.version > seen
    for bad in ("", "   ", "x" * (MAX_NOTE_CHARS + 1)):
        with pytest.raises(StoreError, match="a note is"):
            store.add_note(conv.id, "alice", bad)
    with pytest.raises(StoreError, match="no conversation"):
        store.add_note("0" * 32, "alice", "lost")


def test_a_note_is_never_a_turn_nor_training_data(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "where is my card", intent="card_arrival")
    bot = store.append_turn(
        conv.id, "bot", "Cards arrive in 3 days.", intent="card_arrival", confidence=0.95
    )
    store.set_feedback(int(bot.id or 0), 1)
    store.add_note(conv.id, "alice", NOTE)
    assert all(NOTE not in t.text for t in store.history(conv.id))
    texts = [e.text for e in export_examples(store).examples]
    assert texts == ["where is my card"]


def test_notes_are_erased_with_their_conversation(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    store.add_note(conv.id, "alice", NOTE)
    counts = store.erase_conversations([conv.id])
    assert counts["conversation_notes"] == 1
    assert store.notes(conv.id) == []
