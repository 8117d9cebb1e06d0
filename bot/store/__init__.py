"""The conversation store: SQLModel tables on SQLite or PostgreSQL, schema by Alembic."""

from __future__ import annotations

from deskbot.bot.store.models import (
    Agent,
    AgentLabel,
    Conversation,
    ErasureRecord,
    Handoff,
    ModelVersionRecord,
    TurnRecord,
)
from deskbot.bot.store.store import SqlConversationStore, create_store_engine, migrate

__all__ = [
    "Agent",
    "AgentLabel",
    "Conversation",
    "ErasureRecord",
    "Handoff",
    "ModelVersionRecord",
    "SqlConversationStore",
    "TurnRecord",
    "create_store_engine",
    "migrate",
]
