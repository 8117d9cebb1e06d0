"""Shared parts of the import tests: the fixtures' folder, files written by a test, and
what an import left in the store."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func
from sqlmodel import col, select

from deskbot.bot.store import Conversation, SqlConversationStore, TurnRecord

DATA = Path(__file__).parent / "data"
# Each vendor fixture, built from the vendor's public API documentation, and its format.
FIXTURES = {
    "chatwoot_messages.json": "chatwoot",
    "zendesk_tickets.jsonl": "zendesk",
    "rasa_tracker.json": "rasa",
    "conversations.jsonl": "jsonl",
    "conversations.csv": "csv",
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def counts(store: SqlConversationStore) -> tuple[int, int]:
    """(conversations, turns) in the store."""
    with store.session() as s:
        conversations = s.exec(select(func.count()).select_from(Conversation)).one()
        turns = s.exec(select(func.count()).select_from(TurnRecord)).one()
    return int(conversations), int(turns)


def imported(store: SqlConversationStore, source: str) -> dict[str, list[tuple[str, str]]]:
    """The stored conversations of `source`: external id -> [(role, text)] in order."""
    with store.session() as s:
        convs = s.exec(select(Conversation).where(col(Conversation.source) == source)).all()
    return {str(c.external_id): [(t.role, t.text) for t in store.history(c.id)] for c in convs}
