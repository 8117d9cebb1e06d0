"""Internal notes: what agents write on a conversation for each other.

Notes live in their own table (`conversation_notes`), never among the turns: nothing
that shows or exports turns (the widget, `GET /api/history`, the customer's transcript,
the nightly job's training data) can reach them. They are erased with the conversation
(`deskbot.bot.store.erasure`).
"""

from __future__ import annotations

import logging

from sqlmodel import col, select

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import Conversation, ConversationNote

logger = logging.getLogger(__name__)

__all__ = ["MAX_NOTE_CHARS", "NoteRepository"]

MAX_NOTE_CHARS = 2_000


class NoteRepository(SqlRepository):
    """Agents' internal notes on conversations."""

    def add_note(self, conversation_id: str, agent: str, text: str) -> ConversationNote:
        """Store `agent`'s note on the conversation; open consoles redraw.

        Raises:
            StoreError: an empty or too long note, or no such conversation.
        """
        text = text.strip()
        if not text or len(text) > MAX_NOTE_CHARS:
            raise StoreError(f"a note is 1 to {MAX_NOTE_CHARS} characters")
        note = ConversationNote(conversation_id=conversation_id, agent=agent, text=text)
        with self._write_session() as s:
            if s.get(Conversation, conversation_id) is None:
                raise StoreError(f"no conversation {conversation_id}; it may have been erased")
            s.add(note)
            self.changes.wrote(s)  # other agents' consoles show it
            s.commit()
        self.changes.committed()
        logger.info("note %s added to conversation %s by %s", note.id, conversation_id, agent)
        return note

    def notes(self, conversation_id: str) -> list[ConversationNote]:
        """The conversation's notes, oldest first."""
        return self._all(
            select(ConversationNote)
            .where(ConversationNote.conversation_id == conversation_id)
            .order_by(col(ConversationNote.id))
        )
