"""The help desk's tools on the real store (SQLite and PostgreSQL): canned replies filled
for the agent, notes the customer never sees, release and transfer as the customer's
widget then tells it, and typing both ways."""

from __future__ import annotations

import pytest

from deskbot.bot.store import Agent, CannedReply, SqlConversationStore
from deskbot.ui.accounts.auth import create_agent
from deskbot.ui.console.actions import ConsoleError, ConsoleService
from deskbot.ui.console.tools import DeskTools
from deskbot.ui.render import customer_view
from deskbot.ui.widget.service import ChatService
from deskbot.ui.widget.typing import TypingEvents

NOTE = "Card was stolen in Lisbon; do not reissue to the old address"


@pytest.fixture
def desk(store: SqlConversationStore) -> tuple[DeskTools, Agent, Agent, Agent]:
    alice = create_agent(store, "alice", "password-1", display_name="Alice Martin")
    bob = create_agent(store, "bob", "password-2", display_name="Bob Stone")
    root = create_agent(store, "root", "password-3", display_name="Rita", role="admin")
    return DeskTools(store), alice, bob, root


def _claimed(store: SqlConversationStore, agent: str, name: str | None = None) -> tuple[int, str]:
    """A handoff that `agent` claimed: its id and its conversation's."""
    conv, _ = store.create_conversation()
    if name is not None:
        from sqlalchemy import update
        from sqlmodel import col

        from deskbot.bot.store import Conversation

        with store.engine.begin() as conn:
            conn.execute(
                update(Conversation)
                .where(col(Conversation.id) == conv.id)
                .values(customer_name=name)
            )
    store.append_turn(conv.id, "user", "I want a person")
    h = store.open_handoff(conv.id, "customer_request")
    assert store.claim_handoff(int(h.id or 0), agent)
    return int(h.id or 0), conv.id


def _canned(store: SqlConversationStore, root: Agent, text: str) -> CannedReply:
    return store.save_canned_reply(root, "Greeting", text)


def test_inserting_fills_the_placeholders_into_the_reply_box(
    store: SqlConversationStore, desk: tuple[DeskTools, Agent, Agent, Agent]
) -> None:
    tools, alice, _, root = desk
    hid, conv_id = _claimed(store, "alice", name="Ann Lee")
    reply = _canned(store, root, "Hi {customer_name}, I'm {agent_name} (ref {conversation_id}).")
    box, notice = tools.insert_canned(alice, hid, int(reply.id or 0), "")
    assert box == f"Hi Ann Lee, I'm Alice Martin (ref {conv_id})."
    assert notice == 'Inserted "Greeting": edit it, then send.'
    # After what the agent had written; nothing is sent.
    box, _ = tools.insert_canned(alice, hid, int(reply.id or 0), "Sorry for the wait.")
    assert box.startswith("Sorry for the wait.\nHi Ann Lee,")
    assert [t.role for t in store.history(conv_id)] == ["user"]
    with pytest.raises(ConsoleError, match="Pick a canned reply"):
        tools.insert_canned(alice, hid, None, "")


def test_an_unknown_name_or_a_hand_written_placeholder_never_crashes(
    store: SqlConversationStore, desk: tuple[DeskTools, Agent, Agent, Agent]
) -> None:
    tools, alice, _, root = desk
    hid, _ = _claimed(store, "alice")  # an anonymous customer
    reply = _canned(store, root, "Hi {customer_name}, how can I help?")
    box, notice = tools.insert_canned(alice, hid, int(reply.id or 0), "")
    assert box == "Hi, how can I help?" and "name is not known" in notice
    # Written to the table by hand, past the check: inserted as far as it fills.
    with store.session() as s:
        s.add(CannedReply(title="Old", text="Order {order_id} for {agent_name", updated_by="x"))
        s.commit()
    old = next(r for r in store.canned_replies() if r.title == "Old")
    box, notice = tools.insert_canned(alice, hid, int(old.id or 0), "")
    assert box == "Order {order_id} for {agent_name" and "check them" in notice


def test_only_admins_edit_canned_replies_through_the_console(
    store: SqlConversationStore, desk: tuple[DeskTools, Agent, Agent, Agent]
) -> None:
    tools, alice, _, root = desk
    with pytest.raises(ConsoleError, match="Only an admin may change canned replies"):
        tools.save_canned(alice, None, "Mine", "text")
    with pytest.raises(ConsoleError, match=r"Unknown placeholder \{name\}"):
        tools.save_canned(root, None, "Hi", "Hi {name}")
    assert (
        tools.save_canned(root, None, "Hi", "Hi {customer_name}") == 'Saved the canned reply "Hi".'
    )
    rid = tools.canned_choices()[0][1]
    with pytest.raises(ConsoleError, match="Only an admin"):
        tools.delete_canned(alice, rid)
    assert tools.delete_canned(root, rid) == 'Deleted the canned reply "Hi".'


def test_notes_are_shown_to_agents_and_never_to_the_customer(
    store: SqlConversationStore, desk: tuple[DeskTools, Agent, Agent, Agent]
) -> None:
    tools, alice, bob, _ = desk
    hid, conv_id = _claimed(store, "alice")
    ConsoleService(store, lambda: ()).send(alice, hid, "Checking your card now.")
    assert "only agents see it" in tools.add_note(bob, hid, NOTE)  # any agent may note
    assert [(n.author, n.text) for n in tools.notes(alice, hid)] == [("Bob Stone", NOTE)]
    chat = ChatService(store, pipeline=None)
    shown = chat.view(conv_id).messages
    assert [m["content"] for m in shown][-1].endswith("Checking your card now.")
    assert all("Lisbon" not in str(m) for m in shown)
    assert "Lisbon" not in chat.status(conv_id).text
    assert all("Lisbon" not in str(m) for m in customer_view(store.history(conv_id), str).messages)
    with pytest.raises(ConsoleError, match="Write the note"):
        tools.add_note(alice, hid, "  ")


def test_release_puts_the_customer_back_in_the_queue_with_their_place(
    store: SqlConversationStore, desk: tuple[DeskTools, Agent, Agent, Agent]
) -> None:
    tools, alice, bob, _ = desk
    hid, conv_id = _claimed(store, "alice")
    chat = ChatService(store, pipeline=None)
    assert "Alice Martin" in chat.status(conv_id).text
    with pytest.raises(ConsoleError, match="claimed by alice; only they or an admin"):
        tools.release(bob, hid)
    assert "back in the queue" in tools.release(alice, hid)
    status = chat.status(conv_id)
    assert status.poll and "Waiting for a person" in status.text
    assert "You're number 1 in the queue" in status.text and "Alice" not in status.text
    assert [n.text for n in tools.notes(alice, hid)] == [
        f"Released conversation #{hid} to the queue."
    ]
    assert ConsoleService(store, lambda: ()).claim(bob, hid).startswith("You claimed")


def test_transfer_gives_the_conversation_to_the_chosen_agent_only(
    store: SqlConversationStore, desk: tuple[DeskTools, Agent, Agent, Agent]
) -> None:
    tools, alice, bob, root = desk
    hid, conv_id = _claimed(store, "alice")
    assert [u for _, u in tools.transfer_choices(alice, hid)] == ["bob", "root"]
    with pytest.raises(ConsoleError, match="Pick the agent"):
        tools.transfer(alice, hid, None)
    with pytest.raises(ConsoleError, match="only they or an admin"):
        tools.transfer(bob, hid, "bob")
    assert "now with Bob Stone" in tools.transfer(alice, hid, "bob")
    assert "Bob Stone" in ChatService(store, pipeline=None).status(conv_id).text
    console = ConsoleService(store, lambda: ())
    with pytest.raises(ConsoleError, match="Claim conversation"):
        console.send(alice, hid, "still me")
    assert console.send(bob, hid, "Bob here") == "Sent."
    assert "now with Alice Martin" in tools.transfer(root, hid, "alice")  # an admin may


def test_typing_is_told_both_ways_while_a_person_has_the_conversation(
    store: SqlConversationStore, desk: tuple[DeskTools, Agent, Agent, Agent]
) -> None:
    tools, alice, bob, _ = desk
    chat = ChatService(store, pipeline=None)
    conv, token = store.create_conversation()
    widget = TypingEvents(chat)
    widget.customer(typing=True)(token)  # talking to the bot: nobody is told
    assert store.typing.typing(conv.id, "customer") is None
    h = store.open_handoff(conv.id, "customer_request")
    hid = int(h.id or 0)
    widget.customer(typing=True)(token)
    assert tools.customer_typing(hid)
    tools.agent_typing(alice, hid, typing=True)  # not hers (yet): the customer sees nothing
    assert widget.line(token) == ""
    store.claim_handoff(hid, "alice")
    tools.agent_typing(bob, hid, typing=True)
    assert widget.line(token) == ""
    tools.agent_typing(alice, hid, typing=True)
    assert widget.line(token) == "*Alice Martin is typing…*"
    tools.agent_typing(alice, hid, typing=False)
    widget.customer(typing=False)(token)
    assert widget.line(token) == "" and not tools.customer_typing(hid)
    store.typing.close()
