"""The conversation store: SQLModel tables on SQLite or PostgreSQL, schema by Alembic."""

from __future__ import annotations

from deskbot.bot.store.models import (
    Agent,
    AgentLabel,
    AgentRole,
    AgentSession,
    CannedReply,
    Conversation,
    ConversationNote,
    ConversationStatus,
    ErasureKind,
    ErasureRecord,
    Handoff,
    HandoffStatus,
    SatisfactionAnswer,
    TurnFields,
    TurnKind,
    TurnRecord,
)
from deskbot.bot.store.store import SqlConversationStore, create_store_engine, migrate

__all__ = [
    "Agent",
    "AgentLabel",
    "AgentRole",
    "AgentSession",
    "CannedReply",
    "Conversation",
    "ConversationNote",
    "ConversationStatus",
    "ErasureKind",
    "ErasureRecord",
    "Handoff",
    "HandoffStatus",
    "SatisfactionAnswer",
    "SqlConversationStore",
    "TurnFields",
    "TurnKind",
    "TurnRecord",
    "create_store_engine",
    "migrate",
]
