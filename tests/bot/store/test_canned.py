"""Canned replies on the real store: admins edit, agents read, placeholders are checked."""

from __future__ import annotations

import pytest

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store import Agent, SqlConversationStore
from deskbot.bot.store.canned import (
    NotAllowed,
    PlaceholderError,
    check_placeholders,
    fill,
)

ADMIN = Agent(username="root", display_name="Rita Admin", password_hash="x", role="admin")
AGENT = Agent(username="alice", display_name="Alice Martin", password_hash="x", role="agent")


def test_admins_add_change_and_delete_canned_replies_that_every_agent_reads(
    store: SqlConversationStore,
) -> None:
    hello = store.save_canned_reply(ADMIN, "Greeting", "Hi {customer_name}, I'm {agent_name}.")
    store.save_canned_reply(ADMIN, "  Card   delivery ", "Cards take 3 to 5 working days.")
    assert [r.title for r in store.canned_replies()] == ["Card delivery", "Greeting"]
    assert hello.updated_by == "root"

    changed = store.save_canned_reply(
        ADMIN, "Greeting", "Hello {customer_name}!", reply_id=int(hello.id or 0)
    )
    assert changed.id == hello.id
    assert store.get_canned_reply(int(hello.id or 0)).text == "Hello {customer_name}!"  # type: ignore[union-attr]

    store.delete_canned_reply(ADMIN, int(hello.id or 0))
    assert [r.title for r in store.canned_replies()] == ["Card delivery"]
    with pytest.raises(StoreError, match="no canned reply"):
        store.delete_canned_reply(ADMIN, int(hello.id or 0))


def test_an_agent_may_not_edit_canned_replies(store: SqlConversationStore) -> None:
    reply = store.save_canned_reply(ADMIN, "Greeting", "Hi!")
    with pytest.raises(NotAllowed, match="only an admin"):
        store.save_canned_reply(AGENT, "Mine", "text")
    with pytest.raises(NotAllowed):
        store.save_canned_reply(AGENT, "Greeting", "changed", reply_id=int(reply.id or 0))
    with pytest.raises(NotAllowed):
        store.delete_canned_reply(AGENT, int(reply.id or 0))
    assert [(r.title, r.text) for r in store.canned_replies()] == [("Greeting", "Hi!")]


def test_saving_refuses_unknown_placeholders_and_duplicate_titles(
    store: SqlConversationStore,
) -> None:
    with pytest.raises(
        PlaceholderError,
        match=r"unknown placeholder \{customer_email\}.*"
        r"\{customer_name\}, \{agent_name\}, \{conversation_id\}",
    ):
        store.save_canned_reply(ADMIN, "Email", "We wrote to {customer_email}.")
    for bad in (
        "Hi {customer_name",
        "Hi }",
        "{agent_name.__class__}",
        "{agent_name!r}",
        "{agent_name:>30}",
        "{0}",
        "{}",
    ):
        with pytest.raises(PlaceholderError):
            store.save_canned_reply(ADMIN, "Bad", bad)
    assert store.canned_replies() == []
    store.save_canned_reply(ADMIN, "Braces", "Type {{code}} as shown.")
    with pytest.raises(StoreError, match="exists already"):
        store.save_canned_reply(ADMIN, "Braces", "another text")
    with pytest.raises(StoreError, match="title"):
        store.save_canned_reply(ADMIN, "   ", "text")
    with pytest.raises(StoreError, match="text"):
        store.save_canned_reply(ADMIN, "Empty", "  ")


def test_filling_puts_values_in_and_never_raises() -> None:
    text = "Hi {customer_name}, I'm {agent_name} ({conversation_id}). Type {{code}}."
    assert check_placeholders(text) == ("customer_name", "agent_name", "conversation_id")
    values = {"customer_name": "Ann", "agent_name": "Alice", "conversation_id": "c1"}
    assert fill(text, values) == "Hi Ann, I'm Alice (c1). Type {code}."
    assert fill("Hi {customer_name}!", {}) == "Hi !"
    # Saved before a placeholder was withdrawn, or written by hand: kept as typed.
    assert fill("Your {order_id} and {agent_name}", values) == "Your {order_id} and Alice"
    assert fill("{agent_name.__class__} {agent_name!r}", values) == (
        "{agent_name.__class__} {agent_name!r}"
    )
    assert fill("Hi {customer_name", values) == "Hi {customer_name"
