"""The widget's typing indicator on the real store (SQLite and PostgreSQL): the customer's
typing marked only while a person is asked or there, the agent's shown only while they
have the conversation, and the agent's name shown as text."""

from __future__ import annotations

from deskbot.bot.store import SqlConversationStore
from deskbot.ui.widget.service import ChatService
from deskbot.ui.widget.typing import TypingEvents, agent_typing


def test_the_customer_is_marked_only_while_waiting_for_or_with_a_person(
    store: SqlConversationStore,
) -> None:
    events = TypingEvents(ChatService(store, pipeline=None))
    conv, token = store.create_conversation()
    events.customer(typing=True)(token)
    events.customer(typing=True)(None)  # no conversation yet: nothing to mark
    events.customer(typing=True)("not-a-token")
    assert store.typing.typing(conv.id, "customer") is None
    h = store.open_handoff(conv.id, "customer_request")
    events.customer(typing=True)(token)
    assert store.typing.typing(conv.id, "customer") == ""
    events.customer(typing=False)(token)
    assert store.typing.typing(conv.id, "customer") is None
    store.resolve_handoff(int(h.id or 0))
    events.customer(typing=True)(token)  # back with the bot
    assert store.typing.typing(conv.id, "customer") is None
    store.typing.close()


def test_the_customer_sees_the_agent_typing_only_while_the_agent_has_them(
    store: SqlConversationStore,
) -> None:
    events = TypingEvents(ChatService(store, pipeline=None))
    conv, token = store.create_conversation()
    h = store.open_handoff(conv.id, "customer_request")
    store.typing.start(conv.id, "agent", "Alice")
    assert events.line(token) == ""  # queued: nobody has it
    store.claim_handoff(int(h.id or 0), "alice")
    assert events.line(token) == "*Alice is typing…*"
    store.resolve_handoff(int(h.id or 0))
    assert events.line(token) == ""
    assert events.line(None) == ""
    store.typing.close()


def test_the_agent_name_is_shown_as_text() -> None:
    assert agent_typing("*Bob* <b>") == "*\\*Bob\\* \\<b> is typing…*"
