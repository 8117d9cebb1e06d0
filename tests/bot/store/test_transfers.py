"""Release and transfer of claimed handoffs on the real store: who may, and what the
queue and the customer's place become."""

from __future__ import annotations

import pytest

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store import Agent, Handoff, SqlConversationStore
from deskbot.bot.store.canned import NotAllowed


def _agent(store: SqlConversationStore, username: str, role: str = "agent") -> Agent:
    agent = Agent(
        username=username,
        display_name=username.title(),
        password_hash="x",
        role=role,  # type: ignore[arg-type]
    )
    store.add_agent(agent)
    return agent


def _claimed(store: SqlConversationStore, agent: str) -> Handoff:
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "I need a person")
    h = store.open_handoff(conv.id, "customer_request")
    assert store.claim_handoff(int(h.id or 0), agent)
    return h


def test_the_claiming_agent_releases_a_handoff_to_the_queue(store: SqlConversationStore) -> None:
    alice, bob = _agent(store, "alice"), _agent(store, "bob")
    h = _claimed(store, "alice")
    hid = int(h.id or 0)
    with pytest.raises(NotAllowed, match="claimed by alice; only they or an admin"):
        store.release_handoff(hid, bob)
    released = store.release_handoff(hid, alice)
    assert (released.status, released.claimed_by, released.claimed_at) == ("queued", None, None)
    assert [q.id for q in store.handoff_queue()] == [hid]
    assert store.get_conversation(h.conversation_id).status == "handoff"  # type: ignore[union-attr]
    with pytest.raises(StoreError, match="is queued, not claimed"):
        store.release_handoff(hid, alice)
    # Anyone may claim it again, bob first.
    assert store.claim_handoff(hid, "bob")


def test_a_transfer_moves_the_handoff_to_the_chosen_agent(store: SqlConversationStore) -> None:
    alice, bob = _agent(store, "alice"), _agent(store, "bob")
    carol = _agent(store, "carol")
    h = _claimed(store, "alice")
    hid = int(h.id or 0)
    claimed_at = store.get_handoff(hid).claimed_at  # type: ignore[union-attr]
    with pytest.raises(NotAllowed):
        store.transfer_handoff(hid, bob, "bob")  # bob cannot take it himself
    with pytest.raises(StoreError, match="no agent 'dave'"):
        store.transfer_handoff(hid, alice, "dave")
    with pytest.raises(StoreError, match="already with alice"):
        store.transfer_handoff(hid, alice, "alice")
    moved = store.transfer_handoff(hid, alice, "bob")
    assert (moved.status, moved.claimed_by, moved.claimed_at) == ("claimed", "bob", claimed_at)
    # Alice has it no more: neither release nor transfer is hers to do now.
    with pytest.raises(NotAllowed, match="claimed by bob"):
        store.release_handoff(hid, alice)
    with pytest.raises(NotAllowed):
        store.transfer_handoff(hid, alice, "carol")
    assert store.transfer_handoff(hid, bob, "carol").claimed_by == "carol"
    assert carol.username == "carol"


def test_an_admin_may_release_or_transfer_any_claimed_handoff(
    store: SqlConversationStore,
) -> None:
    _agent(store, "alice")
    _agent(store, "bob")
    admin = _agent(store, "root", role="admin")
    h = _claimed(store, "alice")
    hid = int(h.id or 0)
    assert store.transfer_handoff(hid, admin, "bob").claimed_by == "bob"
    assert store.release_handoff(hid, admin).status == "queued"
    with pytest.raises(StoreError, match="not claimed"):
        store.transfer_handoff(hid, admin, "alice")
    store.resolve_handoff(hid)
    with pytest.raises(StoreError, match="resolved, not claimed"):
        store.release_handoff(hid, admin)
    with pytest.raises(StoreError, match="no handoff"):
        store.release_handoff(hid + 100, admin)


def test_moves_wake_the_consoles_and_list_the_agents(store: SqlConversationStore) -> None:
    alice = _agent(store, "alice")
    _agent(store, "bob")
    h = _claimed(store, "alice")
    seen = store.changes.version
    store.release_handoff(int(h.id or 0), alice)
    if not store.changes.across_processes:
        assert store.changes.version > seen
    assert [a.username for a in store.agents()] == ["alice", "bob"]
    assert store.claim_handoff(int(h.id or 0), "alice")
    assert store.update_agent("bob", disabled=True)
    assert [a.username for a in store.agents()] == ["alice"]
    with pytest.raises(StoreError, match="'bob' is disabled"):
        store.transfer_handoff(int(h.id or 0), alice, "bob")
