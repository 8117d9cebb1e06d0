"""The store's side of erasure and retention: finding a customer's or idle conversations
and deleting them with everything stored about them (see `deskbot.bot.privacy.erasure`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import Delete, delete, insert
from sqlmodel import col, select

from deskbot.bot.store.audit import AuditEntry, scrub_conversations, write_audit
from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import (
    AgentLabel,
    Conversation,
    ConversationNote,
    DialogueStateRecord,
    ErasureKind,
    ErasureRecord,
    Handoff,
    SatisfactionAnswer,
    TurnRecord,
    utcnow,
)

__all__ = ["ErasureRepository"]

# The tables an erasure deletes from, in the order it does (children first).
ERASED_TABLES = (
    "agent_labels",
    "conversation_notes",
    "turns",
    "handoffs",
    "dialogue_states",
    "satisfaction",
    "conversations",
)


def _chunks(ids: Sequence[str], size: int = 500) -> Iterator[list[str]]:
    """`ids` in slices small enough for any database's limit on bound parameters."""
    items = list(ids)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _deletes(conversation_ids: list[str]) -> dict[str, Delete]:
    """The DELETEs of everything stored about the conversations, by table, in order."""
    turns = select(TurnRecord.id).where(col(TurnRecord.conversation_id).in_(conversation_ids))
    state_of = col(DialogueStateRecord.conversation_id)
    return {
        "agent_labels": delete(AgentLabel).where(col(AgentLabel.turn_id).in_(turns)),
        "conversation_notes": delete(ConversationNote).where(
            col(ConversationNote.conversation_id).in_(conversation_ids)
        ),
        "turns": delete(TurnRecord).where(col(TurnRecord.conversation_id).in_(conversation_ids)),
        "handoffs": delete(Handoff).where(col(Handoff.conversation_id).in_(conversation_ids)),
        "dialogue_states": delete(DialogueStateRecord).where(state_of.in_(conversation_ids)),
        "satisfaction": delete(SatisfactionAnswer).where(
            col(SatisfactionAnswer.conversation_id).in_(conversation_ids)
        ),
        "conversations": delete(Conversation).where(col(Conversation.id).in_(conversation_ids)),
    }


class ErasureRepository(SqlRepository):
    """Finds conversations to erase or prune, deletes them, and keeps the record of it."""

    def customer_conversation_ids(self, customer_id: str) -> list[str]:
        """Ids of every conversation of `customer_id`, on every channel."""
        return self._all(
            select(Conversation.id)
            .where(Conversation.customer_id == customer_id)
            .order_by(col(Conversation.created_at))
        )

    def conversation_ids_idle_since(self, before: datetime, *, limit: int = 500) -> list[str]:
        """Ids of conversations whose last activity is older than `before` (oldest first)."""
        return self._all(
            select(Conversation.id)
            .where(col(Conversation.updated_at) < before)
            .order_by(col(Conversation.updated_at))
            .limit(limit)
        )

    def customer_turns(self, conversation_ids: Sequence[str]) -> list[TurnRecord]:
        """Every turn of the conversations, in order (what an erasure must find copies of)."""
        return [
            turn
            for chunk in _chunks(conversation_ids)
            for turn in self._all(
                select(TurnRecord)
                .where(col(TurnRecord.conversation_id).in_(chunk))
                .order_by(col(TurnRecord.conversation_id), col(TurnRecord.seq))
            )
        ]

    def erase_conversations(
        self,
        conversation_ids: Sequence[str],
        *,
        kind: ErasureKind = "forget",
        requested_by: str = "cli",
        audit: AuditEntry | None = None,
    ) -> dict[str, int]:
        """Delete the conversations and everything stored about them, in one transaction:
        agents' labels of their turns, the turns (feedback included), handoffs, dialogue
        state, satisfaction survey answers, the conversations. Returns the rows deleted per table.

        The same transaction adds an `ErasureRecord` (`kind`, `requested_by`, the counts)
        when anything was deleted. An erasure ("forget", not a prune) also keeps the audit
        log's rows about the conversations but blanks what names them, and writes `audit`.
        """
        counts = dict.fromkeys(ERASED_TABLES, 0)
        if not conversation_ids:
            return counts
        with self._changing_transaction() as conn:
            for chunk in _chunks(conversation_ids):
                if self.locks_rows:
                    # Lock the conversations first, as a turn being stored does: a turn
                    # written meanwhile is then either waited for and deleted, or refused
                    # ("no conversation"), never left behind its deleted conversation.
                    conn.execute(
                        select(col(Conversation.id))
                        .where(col(Conversation.id).in_(chunk))
                        .order_by(col(Conversation.id))
                        .with_for_update()
                    ).all()
                for name, stmt in _deletes(chunk).items():
                    counts[name] += int(conn.execute(stmt).rowcount)
                if kind == "forget":
                    for scrub in scrub_conversations(chunk):
                        conn.execute(scrub)
            if any(counts.values()):
                conn.execute(
                    insert(ErasureRecord).values(
                        kind=kind,
                        requested_by=requested_by[:160],
                        counts=counts,
                        created_at=utcnow(),
                    )
                )
                if audit is not None:
                    write_audit(conn, audit)
        return counts

    def erasures(self) -> list[ErasureRecord]:
        """The record of erasures and prunes, oldest first."""
        return self._all(select(ErasureRecord).order_by(col(ErasureRecord.id)))
