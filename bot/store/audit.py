"""The audit log (#22): who did what with customers' data or the bot, from where, when.

One row of `audit_events` per action, never the text of a message: the actor (an
agent's username; `os:NAME` for the command line, NAME the operating-system user;
`system:nightly` for the retraining job; `customer:self` for a customer's own erasure), one
of `ACTIONS`, the object acted on, the conversation, the client's address and the time.
Rows are only ever added, except by `prune_audit` (the retention period,
`privacy.audit_retention_days`) and by a customer's erasure, which keeps each row but
blanks the conversation and the object that name them (`scrub_conversations`).

**When the row cannot be written, the action is not done.** A help desk's security
review expects no unrecorded access to customers' data, so:

- actions that are a store write (claim, reply, hand back, resolve, label, erasure)
  take an `AuditEntry` and insert its row in the same transaction (`write_audit`): both
  are committed or neither;
- a read (opening a transcript, an export) records its row first and shows or writes
  nothing if that fails;
- a login is recorded before its cookie is sent; a logout, a failed login and the
  command line's changes (agents' accounts, a model promotion, an FAQ decision) are
  recorded right after the change, and a failure to record is an error the person sees
  (HTTP 500, a command's exit status 2), not only a line in a log. Those share no
  transaction with the row: the registry's pointer and the FAQ review are files, and
  the accounts' commands reuse the store's own writes.

The log is not tamper-evident: whoever can write the database can change it (see
SECURITY.md).

Example:
    >>> store.record_audit(AuditEntry("alice", TRANSCRIPT_OPENED, "handoff", "3", conv_id))
    ... # doctest: +SKIP
    >>> [e.action for e in store.audit_events(actor="alice")]            # doctest: +SKIP
    ['transcript_opened']
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Insert, delete, insert, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import AuditEvent, utcnow

logger = logging.getLogger(__name__)

__all__ = [
    "ACTIONS",
    "CUSTOMER",
    "NIGHTLY",
    "AuditEntry",
    "AuditError",
    "AuditRepository",
    "audit_csv",
    "audit_insert",
    "audit_jsonl",
    "os_actor",
    "write_audit",
]

LOGIN: Final = "login"
LOGIN_FAILED: Final = "login_failed"
LOGOUT: Final = "logout"
TRANSCRIPT_OPENED: Final = "transcript_opened"
HANDOFF_CLAIMED: Final = "handoff_claimed"
AGENT_REPLIED: Final = "agent_replied"
HANDED_BACK: Final = "handed_back"
RESOLVED: Final = "resolved"
TURN_LABELLED: Final = "turn_labelled"
FAQ_PROPOSAL_DECIDED: Final = "faq_proposal_decided"
FAQ_PROPOSAL_EDITED: Final = "faq_proposal_edited"
DISCOVERY_EDITED: Final = "discovery_edited"
DISCOVERY_APPROVED: Final = "discovery_approved"
EXPORT: Final = "export"
ERASURE: Final = "erasure"
MODEL_PROMOTED: Final = "model_promoted"
MODEL_ROLLED_BACK: Final = "model_rolled_back"
AGENT_ADDED: Final = "agent_added"
SESSIONS_REVOKED: Final = "sessions_revoked"
AGENT_DISABLED: Final = "agent_disabled"
AGENT_ENABLED: Final = "agent_enabled"
PASSWORD_CHANGED: Final = "password_changed"
AGENT_UNLOCKED: Final = "agent_unlocked"
AUDIT_PRUNED: Final = "audit_pruned"

# The closed set: a row with any other action is refused (a typo would hide it from
# every filter).
ACTIONS: Final = (
    LOGIN,
    LOGIN_FAILED,
    LOGOUT,
    TRANSCRIPT_OPENED,
    HANDOFF_CLAIMED,
    AGENT_REPLIED,
    HANDED_BACK,
    RESOLVED,
    TURN_LABELLED,
    FAQ_PROPOSAL_DECIDED,
    FAQ_PROPOSAL_EDITED,
    DISCOVERY_EDITED,
    DISCOVERY_APPROVED,
    EXPORT,
    ERASURE,
    MODEL_PROMOTED,
    MODEL_ROLLED_BACK,
    AGENT_ADDED,
    SESSIONS_REVOKED,
    AGENT_DISABLED,
    AGENT_ENABLED,
    PASSWORD_CHANGED,
    AGENT_UNLOCKED,
    AUDIT_PRUNED,
)
# Actors that are no agent. Only `deskbot agents add`, at a shell, names agents, and
# agents are not meant to be named with a ':' like these.
NIGHTLY: Final = "system:nightly"
CUSTOMER: Final = "customer:self"
# The columns of an export, in order.
FIELDS: Final = (
    "id",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "conversation_id",
    "address",
    "detail",
)


class AuditError(StoreError):
    """The audit row could not be written, so the action was not done (or is reported
    as not recorded)."""


def os_actor(user: str) -> str:
    """The actor of a command-line action: `os:` and the operating-system user."""
    return f"os:{user}"


@dataclass(frozen=True)
class AuditEntry:
    """One row to write: who (`actor`, None for an unknown account), `action` (one of
    `ACTIONS`), on what, in which conversation, from which address, and a short
    machine-written `detail` (an intent, a version, a count: never customer text)."""

    actor: str | None
    action: str
    object_type: str | None = None
    object_id: str | None = None
    conversation_id: str | None = None
    address: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}; one of {ACTIONS}")

    def values(self, at: datetime | None = None) -> dict[str, Any]:
        """The row's columns, each cut to its column's width."""

        def cut(value: str | None, n: int) -> str | None:
            return value[:n] if value else None

        return {
            "at": at or utcnow(),
            "actor": cut(self.actor, 160),
            "action": self.action,
            "object_type": cut(self.object_type, 32),
            "object_id": cut(self.object_id, 128),
            "conversation_id": cut(self.conversation_id, 32),
            "address": cut(self.address, 64),
            "detail": cut(self.detail, 256),
        }


def audit_insert(entry: AuditEntry) -> Insert:
    """The INSERT of `entry`'s row."""
    return insert(AuditEvent).values(**entry.values())


def write_audit(conn: Connection | Session, entry: AuditEntry) -> None:
    """Insert `entry`'s row in the transaction of the write it records.

    Raises:
        AuditError: the row was refused; the caller's transaction rolls back with it.
    """
    try:
        conn.execute(audit_insert(entry))
    except SQLAlchemyError as exc:
        logger.error("audit row %s by %s not written: %s", entry.action, entry.actor, exc)
        raise AuditError(
            f"the audit log cannot be written ({type(exc).__name__}: see the server log)"
        ) from exc


class AuditRepository(SqlRepository):
    """The audit log: record, read with filters, prune; erasure scrubs it (see module)."""

    def record_audit(self, entry: AuditEntry) -> None:
        """Write `entry`'s row now, in its own transaction.

        Raises:
            AuditError: the row was not written (the caller must not go on as if it were).
        """
        try:
            with self._write_transaction() as conn:
                write_audit(conn, entry)
        except SQLAlchemyError as exc:  # the commit, or no connection at all
            logger.error("audit row %s by %s not written: %s", entry.action, entry.actor, exc)
            raise AuditError(
                f"the audit log cannot be written ({type(exc).__name__}: see the server log)"
            ) from exc

    def audit_events(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 1000,
        newest_first: bool = True,
    ) -> list[AuditEvent]:
        """The rows that match every filter given (`since` inclusive, `until` exclusive)."""
        query = select(AuditEvent)
        if actor is not None:
            query = query.where(AuditEvent.actor == actor)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        if since is not None:
            query = query.where(col(AuditEvent.at) >= since)
        if until is not None:
            query = query.where(col(AuditEvent.at) < until)
        order = col(AuditEvent.id).desc() if newest_first else col(AuditEvent.id)
        query = query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        return self._all(query)

    def audit_actors(self) -> list[str]:
        """Every actor the log names, sorted (the console's agent filter)."""
        with self.session() as s:
            rows = s.exec(select(AuditEvent.actor).distinct()).all()
        return sorted(a for a in rows if a)

    def prune_audit(
        self, retention_days: float, *, actor: str | None, now: datetime | None = None
    ) -> int:
        """Delete the rows older than `retention_days`; the prune itself is recorded
        (`audit_pruned`, by `actor`) in the same transaction. Returns the rows deleted."""
        if retention_days <= 0:
            raise ValueError("the audit retention period must be positive")
        cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
        with self._write_transaction() as conn:
            n = int(conn.execute(delete(AuditEvent).where(col(AuditEvent.at) < cutoff)).rowcount)
            if n:
                detail = f"{n} rows before {cutoff.isoformat(timespec='seconds')}"
                write_audit(conn, AuditEntry(actor, AUDIT_PRUNED, detail=detail))
        return n


def scrub_conversations(conversation_ids: Sequence[str]) -> list[Any]:
    """The UPDATEs that keep the rows about the conversations but blank what names them:
    the conversation, and the object (a handoff, a turn, a proposal of theirs, or the
    conversation itself). Run in the erasure's transaction."""
    ids = list(conversation_ids)
    return [
        update(AuditEvent)
        .where(col(AuditEvent.conversation_id).in_(ids))
        .values(conversation_id=None, object_id=None),
        update(AuditEvent)
        .where(col(AuditEvent.object_type) == "conversation", col(AuditEvent.object_id).in_(ids))
        .values(object_id=None),
    ]


def _row(event: AuditEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in FIELDS}
    at = event.at if event.at.tzinfo is not None else event.at.replace(tzinfo=UTC)
    row["at"] = at.isoformat(timespec="seconds")
    return row


def _cell(value: Any) -> Any:
    # A spreadsheet runs a cell that starts with one of these as a formula; an agent
    # chooses their own username.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def audit_csv(events: Iterable[AuditEvent]) -> str:
    """The rows as CSV, with a header line (cells that a spreadsheet would run as a
    formula start with `'`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for event in events:
        row = _row(event)
        writer.writerow([_cell(row[name]) for name in FIELDS])
    return out.getvalue()


def audit_jsonl(events: Iterable[AuditEvent]) -> str:
    """The rows as JSON Lines, one object a row."""
    return "".join(json.dumps(_row(event), ensure_ascii=False) + "\n" for event in events)
