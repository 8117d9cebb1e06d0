"""Teams on the real store (SQLite and PostgreSQL): members, queues per team, and what
cannot be deleted."""

from __future__ import annotations

import pytest

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store import Agent, SqlConversationStore


def _agent(store: SqlConversationStore, username: str, *teams: str) -> None:
    store.add_agent(Agent(username=username, display_name=username, password_hash="x"), teams=teams)


def _handoff(store: SqlConversationStore, team: str | None = None) -> int:
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "help")
    return int(store.open_handoff(conv.id, "customer_request", team=team).id or 0)


def test_teams_have_members_and_an_agent_knows_theirs(store: SqlConversationStore) -> None:
    assert [t.name for t in store.teams()] == ["general"]  # the migration's default team
    store.create_team("billing")
    _agent(store, "alice", "general")
    _agent(store, "bob")
    assert store.join_team("alice", "billing") and not store.join_team("alice", "billing")
    assert store.join_team("bob", "billing")
    assert store.agent_teams("alice") == ["billing", "general"]
    assert store.team_members() == {"billing": ["alice", "bob"], "general": ["alice"]}
    assert store.leave_team("bob", "billing") and not store.leave_team("bob", "billing")
    assert store.agent_teams("bob") == []
    with pytest.raises(StoreError, match="no team 'sales'"):
        store.join_team("alice", "sales")
    with pytest.raises(StoreError, match="no agent 'carol'"):
        store.join_team("carol", "billing")
    with pytest.raises(StoreError, match="no team 'sales'"):
        _agent(store, "carol", "sales")
    assert store.get_agent("carol") is None  # not added without its team


def test_names_are_checked_and_unique(store: SqlConversationStore) -> None:
    for bad in ("", "Billing", "two words", "x" * 65, "-lead"):
        with pytest.raises(StoreError, match="cannot name a team"):
            store.create_team(bad)
    store.create_team("tier-2")
    with pytest.raises(StoreError, match="already exists"):
        store.create_team("tier-2")
    store.ensure_teams(["general", "tier-2", "billing"])
    assert [t.name for t in store.teams()] == ["billing", "general", "tier-2"]


def test_each_team_has_its_own_queue(store: SqlConversationStore) -> None:
    store.create_team("billing")
    general, billing = _handoff(store), _handoff(store, "billing")
    assert store.get_handoff(general).team == "general"  # type: ignore[union-attr]
    assert [h.id for h in store.handoff_queue(teams=["billing"])] == [billing]
    assert [h.id for h in store.handoff_queue(teams=["general"])] == [general]
    assert [h.id for h in store.handoff_queue(teams=[])] == []
    assert [h.id for h in store.handoff_queue()] == [general, billing]  # admins: all


def test_a_team_with_open_handoffs_or_the_default_team_is_not_deleted(
    store: SqlConversationStore,
) -> None:
    store.create_team("billing")
    _agent(store, "alice", "billing")
    hid = _handoff(store, "billing")
    with pytest.raises(StoreError, match="1 open handoff"):
        store.delete_team("billing")
    with pytest.raises(StoreError, match="default team"):
        store.delete_team("general")
    with pytest.raises(StoreError, match="no team 'sales'"):
        store.delete_team("sales")
    store.claim_handoff(hid, "alice")
    moved = store.move_handoff_to_team(hid, "general")
    # Back in the queue, unclaimed: alice is no member of the team it moved to.
    assert (moved.team, moved.status, moved.claimed_by) == ("general", "queued", None)
    store.delete_team("billing")
    assert store.agent_teams("alice") == []
    assert [t.name for t in store.teams()] == ["general"]


def test_a_claim_checked_against_one_team_fails_once_the_handoff_moved(
    store: SqlConversationStore,
) -> None:
    store.create_team("billing")
    hid = _handoff(store)
    store.move_handoff_to_team(hid, "billing")  # after the agent's team was checked
    assert not store.claim_handoff(hid, "alice", team="general")
    assert store.get_handoff(hid).status == "queued"  # type: ignore[union-attr]
    assert store.claim_handoff(hid, "bea", team="billing")


def test_only_an_open_handoff_moves_and_only_to_a_team(store: SqlConversationStore) -> None:
    hid = _handoff(store)
    with pytest.raises(StoreError, match="no team 'sales'"):
        store.move_handoff_to_team(hid, "sales")
    store.resolve_handoff(hid)
    store.create_team("sales")
    with pytest.raises(StoreError, match="is resolved"):
        store.move_handoff_to_team(hid, "sales")
    with pytest.raises(StoreError, match="no handoff 999"):
        store.move_handoff_to_team(999, "sales")


def test_a_conversation_belongs_to_the_team_of_its_latest_handoff(
    store: SqlConversationStore,
) -> None:
    conv, _ = store.create_conversation()
    assert store.conversation_team(conv.id) is None
    store.create_team("billing")
    first = store.open_handoff(conv.id, "customer_request")
    store.resolve_handoff(int(first.id or 0))
    store.open_handoff(conv.id, "form_failed", team="billing")
    assert store.conversation_team(conv.id) == "billing"


def test_the_configured_default_team_takes_unrouted_handoffs(database_url: str) -> None:
    from deskbot.bot.store import create_store_engine, migrate

    engine = create_store_engine(database_url)
    migrate(engine)
    store = SqlConversationStore(engine, default_team="support")
    store.ensure_teams(["support"])
    _agent(store, "alice", store.default_team)
    assert store.get_handoff(_handoff(store)).team == "support"  # type: ignore[union-attr]
    with pytest.raises(StoreError, match="default team"):
        store.delete_team("support")
    engine.dispose()
