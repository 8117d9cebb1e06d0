"""The help desk's tools, free of Gradio: canned replies, internal notes, release to the
queue, transfer to another agent, and who is typing.

Every method takes the acting agent (from the session cookie, never from the browser);
the store checks the role again (`NotAllowed`), so a page that shows a button it should
not cannot do more than the agent may.

Example:
    >>> tools = DeskTools(store)                                   # doctest: +SKIP
    >>> tools.insert_canned(alice, handoff_id, reply_id, box="")   # doctest: +SKIP
    ('Hi Ann, I am Alice Martin.', 'Inserted "Greeting": edit it, then send.')
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.canned import PLACEHOLDERS, check_placeholders, fill
from deskbot.bot.store.models import Agent, ConversationNote, Handoff
from deskbot.ui.console.actions import MAX_REPLY_CHARS, ConsoleError
from deskbot.ui.console.teams import refusal

logger = logging.getLogger(__name__)

__all__ = ["DeskTools", "placeholder_help"]

T = TypeVar("T")
# "Hi , I'm" when a value is empty: the space before the punctuation goes too.
_SPACE_BEFORE_MARK = re.compile(r"[ \t]+([,.;:!?])")
_MAX_REMEMBERED = 10_000


def placeholder_help() -> str:
    """What an admin may write in a canned reply, in one line."""
    return "Placeholders: " + ", ".join("{" + name + "}" for name in PLACEHOLDERS) + "."


def _said(exc: StoreError) -> ConsoleError:
    """A store's refusal as the agent reads it (a sentence, capitalised)."""
    text = str(exc)
    return ConsoleError(text[:1].upper() + text[1:] + ("" if text.endswith(".") else "."))


def _store(call: Callable[[], T]) -> T:
    try:
        return call()
    except StoreError as exc:
        raise _said(exc) from None


@dataclass(frozen=True)
class NoteView:
    """A note as the console lists it."""

    author: str
    when: str
    text: str


class DeskTools:
    """What an agent does with the help desk's tools (each method takes the agent).

    Args:
        store: the conversation store (its canned replies, notes, handoffs, typing board).
    """

    def __init__(self, store: SqlConversationStore) -> None:
        self.store = store
        # handoff id -> its conversation's id, which never changes: the typing line asks
        # every second and needs no query for it.
        self._conversation_of: dict[int, str] = {}

    def conversation_of(self, handoff_id: int | None) -> str | None:
        """The id of the handoff's conversation (None for no such handoff)."""
        if not handoff_id:
            return None
        found = self._conversation_of.get(int(handoff_id))
        if found is None:
            h = self.store.get_handoff(int(handoff_id))
            if h is None:
                return None
            if len(self._conversation_of) > _MAX_REMEMBERED:
                self._conversation_of.clear()
            found = self._conversation_of[int(handoff_id)] = h.conversation_id
        return found

    def _name(self, username: str) -> str:
        agent = self.store.get_agent(username)
        return agent.display_name if agent is not None else username

    def handoff(self, agent: Agent, handoff_id: int | None) -> Handoff:
        """The picked handoff, if it is of one of `agent`'s teams (admins: any)."""
        h = self.store.get_handoff(int(handoff_id)) if handoff_id else None
        if h is None:
            raise ConsoleError("Pick a conversation from the queue first.")
        refused = refusal(self.store, agent, h.team, f"Conversation #{h.id}")
        if refused is not None:
            raise ConsoleError(refused)
        return h

    @staticmethod
    def owns(agent: Agent, h: Handoff | None) -> bool:
        """Whether `agent` may answer, release or transfer `h` (claimed by them; admins
        may act on any claimed conversation)."""
        return (
            h is not None
            and h.status == "claimed"
            and (h.claimed_by == agent.username or agent.role == "admin")
        )

    # -- canned replies --------------------------------------------------------------------

    def canned_choices(self) -> list[tuple[str, int]]:
        """(title, id) of every canned reply, by title."""
        return [(r.title, int(r.id or 0)) for r in self.store.canned_replies()]

    def canned_text(self, reply_id: int | None) -> tuple[str, str]:
        """The title and text of a canned reply, for an admin to change ("" for none)."""
        reply = self.store.get_canned_reply(int(reply_id)) if reply_id else None
        return (reply.title, reply.text) if reply is not None else ("", "")

    def insert_canned(
        self, agent: Agent, handoff_id: int | None, reply_id: int | None, box: str
    ) -> tuple[str, str]:
        """The reply box with the canned reply filled in (after what it held), and a
        notice. Never raises for the reply's text: what cannot be filled stays as typed."""
        reply = self.store.get_canned_reply(int(reply_id)) if reply_id else None
        if reply is None:
            raise ConsoleError("Pick a canned reply to insert.")
        h = self.handoff(agent, handoff_id)
        conv = self.store.get_conversation(h.conversation_id)
        values = {
            "customer_name": (conv.customer_name or "") if conv is not None else "",
            "agent_name": agent.display_name,
            "conversation_id": h.conversation_id,
        }
        text = fill(reply.text, values)
        notice = f'Inserted "{reply.title}": edit it, then send.'
        try:
            used = check_placeholders(reply.text)
        except StoreError:  # saved before the check, or by hand: filled as far as it goes
            used = ()
            notice += " Some braces could not be filled; check them."
        if any(not values[name] for name in used):
            text = _SPACE_BEFORE_MARK.sub(r"\1", text)
            notice += " The customer's name is not known; check the greeting."
        joined = f"{box.rstrip()}\n{text}" if box.strip() else text
        if len(joined) > MAX_REPLY_CHARS:
            raise ConsoleError(f"Replies are at most {MAX_REPLY_CHARS} characters.")
        return joined, notice

    def save_canned(self, agent: Agent, reply_id: int | None, title: str, text: str) -> str:
        """Add a canned reply (or change `reply_id`): admins only."""
        reply = _store(
            lambda: self.store.save_canned_reply(
                agent, title or "", text or "", reply_id=int(reply_id) if reply_id else None
            )
        )
        return f'Saved the canned reply "{reply.title}".'

    def delete_canned(self, agent: Agent, reply_id: int | None) -> str:
        if not reply_id:
            raise ConsoleError("Pick the canned reply to delete.")
        title, _ = self.canned_text(reply_id)
        _store(lambda: self.store.delete_canned_reply(agent, int(reply_id)))
        return f'Deleted the canned reply "{title}".'

    # -- internal notes --------------------------------------------------------------------

    def notes(self, agent: Agent, handoff_id: int | None) -> list[NoteView]:
        """The picked conversation's notes, oldest first (none without a conversation,
        or of one outside `agent`'s teams)."""
        h = self.store.get_handoff(int(handoff_id)) if handoff_id else None
        if h is None or refusal(self.store, agent, h.team, "") is not None:
            return []
        names: dict[str, str] = {}
        return [
            NoteView(names.setdefault(n.agent, self._name(n.agent)), _when(n), n.text)
            for n in self.store.notes(h.conversation_id)
        ]

    def add_note(self, agent: Agent, handoff_id: int | None, text: str) -> str:
        """Any agent may note on an open conversation, claimed by them or not."""
        h = self.handoff(agent, handoff_id)
        if not (text or "").strip():
            raise ConsoleError("Write the note first.")
        _store(lambda: self.store.add_note(h.conversation_id, agent.username, text))
        return f"Note added to conversation #{h.id}; only agents see it."

    # -- release and transfer --------------------------------------------------------------

    def transfer_choices(self, agent: Agent, handoff_id: int | None) -> list[tuple[str, str]]:
        """(display name, username) of the agents the picked conversation may go to: the
        members of its team, and admins."""
        h = self.store.get_handoff(int(handoff_id)) if handoff_id else None
        holder = h.claimed_by if h is not None else agent.username
        members = set(self.store.team_members().get(h.team, [])) if h is not None else set()
        return [
            (f"{a.display_name} ({a.username})", a.username)
            for a in self.store.agents()
            if a.username != holder and (a.username in members or a.role == "admin")
        ]

    def release(self, agent: Agent, handoff_id: int | None) -> str:
        """Put the conversation back in the queue, unclaimed; a note says who did."""
        h = self.handoff(agent, handoff_id)
        self.store.typing.stop(h.conversation_id, "agent")
        _store(lambda: self.store.release_handoff(int(h.id or 0), agent))
        self._note(agent, h, f"Released conversation #{h.id} to the queue.")
        logger.info("handoff %s released by %s", h.id, agent.username)
        return f"Conversation #{h.id} is back in the queue for any agent to claim."

    def transfer(self, agent: Agent, handoff_id: int | None, to: str | None) -> str:
        """Give the conversation to agent `to`; a note says who gave it to whom."""
        h = self.handoff(agent, handoff_id)
        if not to:
            raise ConsoleError("Pick the agent to transfer the conversation to.")
        self.store.typing.stop(h.conversation_id, "agent")
        _store(lambda: self.store.transfer_handoff(int(h.id or 0), agent, to))
        name = self._name(to)
        self._note(agent, h, f"Transferred conversation #{h.id} to {name}.")
        logger.info("handoff %s transferred by %s to %s", h.id, agent.username, to)
        return f"Conversation #{h.id} is now with {name}; the customer sees their name."

    def _note(self, agent: Agent, h: Handoff, text: str) -> None:
        # The notes are the conversation's history among agents: who moved it, when.
        try:
            self.store.add_note(h.conversation_id, agent.username, text)
        except StoreError:  # erased meanwhile: nothing to note on
            logger.info("no note of the move of handoff %s", h.id)

    # -- typing ----------------------------------------------------------------------------

    def agent_typing(self, agent: Agent, handoff_id: int | None, *, typing: bool) -> None:
        """The agent types (or stopped typing) a reply to the picked conversation; the
        customer sees it only while the agent has the conversation."""
        h = self.store.get_handoff(int(handoff_id)) if handoff_id else None
        if h is None:
            return
        if not typing:
            self.store.typing.stop(h.conversation_id, "agent")
        elif self.owns(agent, h):
            self.store.typing.start(h.conversation_id, "agent", agent.display_name)

    def customer_typing(self, handoff_id: int | None) -> bool:
        """Whether the customer of the picked conversation types now."""
        conversation_id = self.conversation_of(handoff_id)
        if conversation_id is None:
            return False
        return self.store.typing.typing(conversation_id, "customer") is not None


def _when(note: ConversationNote) -> str:
    t = note.created_at if note.created_at.tzinfo else note.created_at.replace(tzinfo=UTC)
    today = datetime.now(UTC).date() == t.date()
    return t.strftime("%H:%M UTC" if today else "%d %b %H:%M UTC")
