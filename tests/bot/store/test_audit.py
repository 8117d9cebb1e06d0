"""The audit log on the real store (SQLite and PostgreSQL): rows, filters, exports,
prune, the erasure that keeps rows but not the customer, and a row that cannot be
written failing its action."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from deskbot.bot.core.config import BotConfig
from deskbot.bot.privacy.erasure import Eraser
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.audit import (
    AUDIT_PRUNED,
    ERASURE,
    FIELDS,
    HANDOFF_CLAIMED,
    LOGIN,
    TRANSCRIPT_OPENED,
    TURN_LABELLED,
    AuditEntry,
    AuditError,
    audit_csv,
    audit_jsonl,
)
from deskbot.bot.store.models import AuditEvent

CUSTOMER_ID = "cust-4711"
SECRET = "my card 4111 1111 1111 1111 never arrived"


def _rows(store: SqlConversationStore) -> list[AuditEvent]:
    return store.audit_events(limit=None, newest_first=False)


def test_rows_are_filtered_by_actor_action_and_time(store: SqlConversationStore) -> None:
    store.record_audit(AuditEntry("alice", LOGIN, "agent", "alice", address="10.0.0.1"))
    store.record_audit(AuditEntry("bob", LOGIN, "agent", "bob"))
    store.record_audit(AuditEntry("alice", TRANSCRIPT_OPENED, "handoff", "3", "c" * 32))
    assert [e.action for e in store.audit_events(actor="alice")] == [TRANSCRIPT_OPENED, LOGIN]
    assert [e.actor for e in store.audit_events(action=LOGIN, newest_first=False)] == [
        "alice",
        "bob",
    ]
    now = datetime.now(UTC)
    assert len(store.audit_events(since=now - timedelta(minutes=1))) == 3
    assert store.audit_events(until=now - timedelta(minutes=1)) == []
    assert len(store.audit_events(limit=2)) == 2
    assert store.audit_actors() == ["alice", "bob"]
    with pytest.raises(ValueError, match="unknown audit action"):
        AuditEntry("alice", "logged_in")


def test_exports_hold_every_field_and_defuse_spreadsheet_formulas(
    store: SqlConversationStore,
) -> None:
    store.record_audit(AuditEntry("=HYPERLINK(1)", LOGIN, "agent", "x", address="::1"))
    store.record_audit(AuditEntry(None, "login_failed", address="10.0.0.2", detail="unknown"))
    events = _rows(store)
    rows = list(csv.DictReader(io.StringIO(audit_csv(events))))
    assert [r["action"] for r in rows] == ["login", "login_failed"]
    assert rows[0]["actor"] == "'=HYPERLINK(1)" and rows[0]["address"] == "::1"
    assert rows[1]["actor"] == "" and rows[1]["detail"] == "unknown"
    assert datetime.fromisoformat(rows[0]["at"]).tzinfo is not None
    lines = [json.loads(line) for line in audit_jsonl(events).splitlines()]
    assert lines[0]["actor"] == "=HYPERLINK(1)" and lines[1]["actor"] is None
    assert tuple(lines[0]) == FIELDS  # every column, in order


def test_prune_deletes_old_rows_and_records_itself(store: SqlConversationStore) -> None:
    store.record_audit(AuditEntry("alice", LOGIN))
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET at = :at"), {"at": datetime(2020, 1, 1)})
    store.record_audit(AuditEntry("bob", LOGIN))
    assert store.prune_audit(365, actor="os:root") == 1
    assert [(e.actor, e.action) for e in _rows(store)] == [
        ("bob", LOGIN),
        ("os:root", AUDIT_PRUNED),
    ]
    assert store.prune_audit(365, actor="os:root") == 0  # nothing to prune: no row
    assert len(_rows(store)) == 2


def _customer_activity(store: SqlConversationStore) -> tuple[str, int, int]:
    """A signed-in customer's conversation, claimed, opened and labelled by alice."""
    conv, _ = store.create_conversation(customer_id=CUSTOMER_ID, channel="api")
    store.append_turn(conv.id, "user", SECRET)
    bot = store.append_turn(conv.id, "bot", "Cards arrive in 3 days.", intent="card_arrival")
    h = store.open_handoff(conv.id, "customer_request")
    hid = int(h.id or 0)
    claim = AuditEntry("alice", HANDOFF_CLAIMED, "handoff", str(hid), conv.id, "10.0.0.1")
    assert store.claim_handoff(hid, "alice", audit=claim)
    store.record_audit(AuditEntry("alice", TRANSCRIPT_OPENED, "conversation", conv.id, conv.id))
    label = AuditEntry("alice", TURN_LABELLED, "turn", str(bot.id), conv.id, "10.0.0.1")
    store.add_label(int(bot.id or 0), "alice", intent="card_arrival", audit=label)
    return conv.id, hid, int(bot.id or 0)


def test_an_erasure_keeps_the_rows_but_no_identifier_of_the_customer(
    store: SqlConversationStore,
) -> None:
    conv_id, hid, turn_id = _customer_activity(store)
    other, _ = store.create_conversation()
    store.record_audit(AuditEntry("bob", TRANSCRIPT_OPENED, "conversation", other.id, other.id))
    before = len(_rows(store))

    Eraser(store, BotConfig(), hooks=[]).forget(
        customer_id=CUSTOMER_ID, actor="root", address="10.0.0.9"
    )

    rows = _rows(store)
    assert len(rows) == before + 1  # kept, and one more: the erasure
    dump = audit_jsonl(rows) + audit_csv(rows)
    for identifier in (CUSTOMER_ID, conv_id, SECRET, f'"{hid}"', f'"{turn_id}"'):
        assert identifier not in dump, identifier
    alice = [e for e in rows if e.actor == "alice"]
    assert [(e.action, e.object_type, e.object_id, e.conversation_id) for e in alice] == [
        (HANDOFF_CLAIMED, "handoff", None, None),
        (TRANSCRIPT_OPENED, "conversation", None, None),
        (TURN_LABELLED, "turn", None, None),
    ]
    assert alice[0].address == "10.0.0.1"  # the agent's address is no customer's
    erasure = rows[-1]
    assert (erasure.actor, erasure.action, erasure.object_type, erasure.object_id) == (
        "root",
        ERASURE,
        "customer",
        None,
    )
    assert erasure.address == "10.0.0.9" and erasure.detail == "1 conversations"
    # Another customer's rows keep their names.
    assert rows[-2].conversation_id == other.id and rows[-2].object_id == other.id


def test_a_prune_of_old_conversations_keeps_their_audit_rows(
    store: SqlConversationStore,
) -> None:
    conv_id, _, _ = _customer_activity(store)
    Eraser(store, BotConfig(), hooks=[]).prune(
        older_than=timedelta(days=1), now=datetime.now(UTC) + timedelta(days=2)
    )
    assert store.get_conversation(conv_id) is None
    assert {e.conversation_id for e in _rows(store)} == {conv_id}


def test_an_action_whose_row_cannot_be_written_is_not_done(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "a person please")
    hid = int(store.open_handoff(conv.id, "customer_request").id or 0)
    # A row the database refuses: no action (NOT NULL), past AuditEntry's own check.
    broken = AuditEntry("alice", HANDOFF_CLAIMED, "handoff", str(hid), conv.id)
    object.__setattr__(broken, "action", None)
    with pytest.raises(AuditError, match="audit log cannot be written"):
        store.claim_handoff(hid, "alice", audit=broken)
    assert store.get_handoff(hid).status == "queued"  # type: ignore[union-attr]
    with pytest.raises(AuditError, match="audit log cannot be written"):
        store.append_turn(conv.id, "agent", "hello", author="alice", audit=broken)
    assert [t.role for t in store.history(conv.id)] == ["user"]
    with pytest.raises(AuditError):
        store.add_label(int(store.history(conv.id)[0].id or 0), "alice", audit=broken)
    assert store.labels() == []
    with pytest.raises(AuditError):
        store.erase_conversations([conv.id], audit=broken)
    assert store.get_conversation(conv.id) is not None and store.erasures() == []
    with pytest.raises(AuditError, match="audit log cannot be written"):
        store.record_audit(broken)
    assert _rows(store) == []
