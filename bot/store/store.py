"""`SqlConversationStore`: conversations, turns, handoffs and labels on SQLite or PostgreSQL.

Every accepted customer message is written here *before* the bot works on it, so a
crash in any later step never loses what the customer said.

The store is one object joined from a repository per aggregate, all over one engine
and one queue of writers (`SqlRepository`):

- `ConversationRepository` (`conversations.py`): conversations, turns, dialogue state;
- `HandoffRepository` (`handoffs.py`): the queue of conversations for a person;
- `AgentRepository` (`agents.py`): console accounts and agents' labels;
- `ReviewRepository` (`review.py`): the review queue and the dashboard's counts;
- `SearchRepository` (`search.py`): the console's search of every conversation;
- `SatisfactionRepository` (`satisfaction.py`): survey answers and CSAT;
- `ErasureRepository` (`erasure.py`): erasure and retention;
- `AuditRepository` (`audit.py`): the audit log of who did what (#22);
- `CannedReplyRepository` (`canned.py`), `NoteRepository` (`notes.py`),
  `HandoffTransferRepository` (`transfers.py`), `PresenceRepository` (`presence.py`):
  the help desk's canned replies, internal notes, release and transfer, who is typing;
- `TeamRepository` (`teams.py`): teams of agents, each with its own queue.

Example:
    >>> engine = create_store_engine("sqlite://")
    >>> migrate(engine)
    >>> store = SqlConversationStore(engine)
    >>> conv, token = store.create_conversation()
    >>> store.append_turn(conv.id, "user", "my card hasn't arrived").seq
    1
"""

from __future__ import annotations

from sqlalchemy import Engine

from deskbot.bot.core.config_teams import DEFAULT_TEAM
from deskbot.bot.store.agents import AgentRepository
from deskbot.bot.store.audit import AuditRepository
from deskbot.bot.store.canned import CannedReplyRepository
from deskbot.bot.store.conversations import ConversationRepository, hash_token
from deskbot.bot.store.engine import create_store_engine, migrate
from deskbot.bot.store.erasure import ErasureRepository
from deskbot.bot.store.handoffs import HandoffRepository
from deskbot.bot.store.notes import NoteRepository
from deskbot.bot.store.presence import PresenceRepository
from deskbot.bot.store.review import ReviewRepository
from deskbot.bot.store.satisfaction import SatisfactionRepository
from deskbot.bot.store.search import SearchRepository
from deskbot.bot.store.teams import TeamRepository
from deskbot.bot.store.transfers import HandoffTransferRepository

__all__ = ["SqlConversationStore", "create_store_engine", "hash_token", "migrate"]


class SqlConversationStore(
    ConversationRepository,
    HandoffRepository,
    AgentRepository,
    ReviewRepository,
    SearchRepository,
    SatisfactionRepository,
    ErasureRepository,
    CannedReplyRepository,
    NoteRepository,
    HandoffTransferRepository,
    PresenceRepository,
    AuditRepository,
    TeamRepository,
):
    """The conversation store on a SQLAlchemy engine (SQLite or PostgreSQL).

    Args:
        engine: from `create_store_engine`; its schema must be migrated (`migrate`).
        default_team: the team of new agents and of handoffs no route names.
    """

    def __init__(self, engine: Engine, *, default_team: str = DEFAULT_TEAM) -> None:
        super().__init__(engine)
        self.default_team = default_team
