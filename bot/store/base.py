"""`SqlRepository`: what every part of the store shares, one engine and its write queue."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, Update, bindparam, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from deskbot.bot.core.config_teams import DEFAULT_TEAM
from deskbot.bot.store.changes import ChangeFeed
from deskbot.bot.store.models import Conversation, ConversationStatus, utcnow

T = TypeVar("T")

# The conversation's row, locked until the transaction ends (PostgreSQL): concurrent
# writers of one conversation's turns queue on it instead of colliding.
LOCK_CONVERSATION = (
    select(col(Conversation.id)).where(Conversation.id == bindparam("cid")).with_for_update()
)


class SqlRepository:
    """The base of the store's repositories (one per aggregate), which
    `SqlConversationStore` joins over one engine.

    Args:
        engine: from `create_store_engine`; its schema must be migrated (`migrate`).
    """

    # The team of new agents and of handoffs no route names (`SqlConversationStore`'s
    # argument, config `teams.default`).
    default_team: str = DEFAULT_TEAM

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer at a time. Threads that meet its lock wait in its busy
        # handler, which sleeps 1, 2, 5, 10... ms between tries whether or not the lock
        # was freed meanwhile. This process's writers queue here instead and start the
        # moment the one before commits (measured under 50 concurrent sessions: 65
        # instead of 50 turns/s). Other processes still meet the busy handler.
        self._write_lock: threading.RLock | None = (
            threading.RLock() if engine.dialect.name == "sqlite" else None
        )
        # What the agent console waits on: every write of a turn, a handoff or a label.
        self.changes = ChangeFeed(engine)

    @property
    def locks_rows(self) -> bool:
        """Whether the database locks rows (PostgreSQL); SQLite locks the whole file."""
        return self.engine.dialect.name != "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def _all(self, statement: SelectOfScalar[T]) -> list[T]:
        """Every row `statement` selects."""
        with self.session() as s:
            return list(s.exec(statement).all())

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Held around every write transaction (see `__init__`); free on PostgreSQL."""
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

    @contextmanager
    def _write_session(self) -> Iterator[Session]:
        """A session for writing, in this process's queue of writers."""
        with self._writing(), self.session() as s:
            yield s

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        """A connection in one transaction (committed on exit), in the queue of writers."""
        with self._writing(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _changing_transaction(self) -> Iterator[Connection]:
        """`_write_transaction` whose commit the readers of `changes` hear of."""
        with self._write_transaction() as conn:
            yield conn
            self.changes.wrote(conn)
        self.changes.committed()

    def _lock_conversation(self, conn: Connection, conversation_id: str) -> bool:
        """Lock the conversation's row where rows lock; False if there is no such row."""
        if not self.locks_rows:
            return True
        return conn.execute(LOCK_CONVERSATION, {"cid": conversation_id}).first() is not None


def set_conversation_status(conversation_id: str, status: ConversationStatus) -> Update:
    """The UPDATE that gives the conversation `status` (and touches it)."""
    return (
        update(Conversation)
        .where(col(Conversation.id) == conversation_id)
        .values(status=status, updated_at=utcnow())
    )
