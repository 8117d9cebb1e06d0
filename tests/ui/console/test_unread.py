"""What is new for an agent (`Unread`), on the real store's queue."""

from __future__ import annotations

from deskbot.bot.store import Agent, SqlConversationStore
from deskbot.ui.console.actions import ConsoleService, QueueEntry
from deskbot.ui.console.unread import MARKER, Unread

ADMIN = Agent(username="root", display_name="Root", password_hash="x", role="admin")


def entries(svc: ConsoleService) -> list[QueueEntry]:
    return svc.queue_entries(svc.open_handoffs(ADMIN))


def handed_off(store: SqlConversationStore, text: str) -> tuple[str, int]:
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", text)
    return conv.id, int(store.open_handoff(conv.id, "customer_request").id or 0)


def test_new_handoffs_and_customer_messages_in_my_conversations_are_new(
    store: SqlConversationStore,
) -> None:
    svc = ConsoleService(store, lambda: ())
    mine_conv, mine = handed_off(store, "card lost")
    theirs_conv, theirs = handed_off(store, "pin blocked")
    unread = Unread.load(entries(svc))
    assert unread.total == 0  # what was open when the page loaded is not news
    assert store.claim_handoff(mine, "alice") and store.claim_handoff(theirs, "bob")
    unread = unread.update(entries(svc), agent="alice", reading=None)
    assert unread.total == 0

    _, fresh = handed_off(store, "charged twice")
    store.append_turn(mine_conv, "user", "hello?")
    store.append_turn(mine_conv, "user", "anyone?")
    store.append_turn(theirs_conv, "user", "still blocked")  # bob's, not news to alice
    unread = unread.update(entries(svc), agent="alice", reading=None)
    assert unread.new == {fresh: 1, mine: 2} and unread.total == 3
    assert unread.marker(fresh) == MARKER and unread.marker(theirs) == ""

    unread = unread.read(fresh)
    assert unread.new == {mine: 2}
    store.append_turn(mine_conv, "user", "ah, there you are")
    # The conversation the agent is reading has nothing new.
    unread = unread.update(entries(svc), agent="alice", reading=mine)
    assert unread.total == 0
    # A handoff that is no longer open leaves nothing behind.
    _, gone = handed_off(store, "close me")
    unread = unread.update(entries(svc), agent="alice", reading=None)
    assert unread.new == {gone: 1}
    store.resolve_handoff(gone)
    assert unread.update(entries(svc), agent="alice", reading=None).total == 0
