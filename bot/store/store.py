"""`SqlConversationStore`: conversations, turns, handoffs and labels on SQLite or PostgreSQL.

Every accepted customer message is written here *before* the bot works on it, so a
crash in any later step never loses what the customer said.

Example:
    >>> engine = create_store_engine("sqlite://")
    >>> migrate(engine)
    >>> store = SqlConversationStore(engine)
    >>> conv, token = store.create_conversation()
    >>> store.append_turn(conv.id, "user", "my card hasn't arrived").seq
    1
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, bindparam, delete, event, func, insert, update
from sqlalchemy import text as sql_text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, col, create_engine, select

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.models import (
    Agent,
    AgentLabel,
    Conversation,
    DialogueStateRecord,
    ErasureRecord,
    Handoff,
    TurnRecord,
    utcnow,
)
from deskbot.knowledge.files.fsutil import file_lock

logger = logging.getLogger(__name__)

_TOKEN_BYTES = 32


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_store_engine(url: str, *, echo: bool = False, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for `url`, tuned for the store's access pattern.

    SQLite gets WAL (readers never block the writer) and a busy timeout (how long a
    writer waits for another process's write to finish); an in-memory SQLite database
    is shared by all threads. PostgreSQL gets pre-ping so a restarted server costs one
    retry, not an error.
    """
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
            poolclass=StaticPool if in_memory else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not in_memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("deskbot.bot.store") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


# pg_advisory_xact_lock key of schema migrations ("deskbot" in ASCII).
_MIGRATION_LOCK = 0x6465736B626F74


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on `<database>.migrate.lock` beside a SQLite file, held until the
    migration has committed (same host only, as SQLite itself)."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        yield
        return
    with file_lock(Path(f"{path}.migrate.lock")):
        yield


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema to `revision` with the shipped Alembic migrations.

    Safe to run from several processes at once (replicas starting together): one
    migrates, the others wait for it and then find nothing to do."""
    cfg = _alembic_config(engine)
    url = engine.url.render_as_string(hide_password=True)
    try:
        with _sqlite_migration_lock(engine), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Released when this transaction ends; DDL is transactional in PostgreSQL,
                # so the next process sees the finished schema.
                conn.execute(sql_text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        reason = str(exc.orig).lower()
        if exc.connection_invalidated or "connect" in reason or "unable to open" in reason:
            raise StoreError(
                f"cannot reach the database {url}: {exc.orig}. "
                "Check DESKBOT_DATABASE_URL or database.url in the config"
            ) from exc
        raise StoreError(f"migrating the database {url} failed: {exc.orig}") from exc


class SqlConversationStore:
    """The conversation store on a SQLAlchemy engine (SQLite or PostgreSQL).

    Args:
        engine: from `create_store_engine`; its schema must be migrated (`migrate`).
    """

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
        # A turn's statements, built once with bound parameters: building them per call
        # (the upsert's `excluded` alias above all) cost more CPU than running them.
        next_seq = (
            select(func.coalesce(func.max(TurnRecord.seq), 0) + 1)
            .where(TurnRecord.conversation_id == bindparam("cid"))
            .scalar_subquery()
        )
        self._insert_turn = (
            insert(TurnRecord)
            .values(seq=next_seq)
            .returning(col(TurnRecord.id), col(TurnRecord.seq))
        )
        self._touch_conversation = (
            update(Conversation)
            .where(col(Conversation.id) == bindparam("cid"))
            .values(updated_at=bindparam("now"))
        )
        self._by_token = select(Conversation).where(
            col(Conversation.token_hash) == bindparam("token_hash")
        )
        self._state_of = select(col(DialogueStateRecord.state)).where(
            col(DialogueStateRecord.conversation_id) == bindparam("cid")
        )
        # UPDATEs of a user turn's columns, one per set of columns (intent, confidence).
        self._label_statements: dict[frozenset[str], Any] = {}
        self._lock_conversation = (
            select(col(Conversation.id))
            .where(Conversation.id == bindparam("cid"))
            .with_for_update()
        )
        if engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        upsert = dialect_insert(DialogueStateRecord)
        self._upsert_state_stmt = upsert.on_conflict_do_update(
            index_elements=["conversation_id"],
            set_={"state": upsert.excluded.state, "updated_at": upsert.excluded.updated_at},
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Held around every write transaction (see `__init__`); free on PostgreSQL."""
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

    # -- conversations -------------------------------------------------------------------

    def create_conversation(
        self, *, customer_id: str | None = None, channel: str = "web"
    ) -> tuple[Conversation, str]:
        """Open a conversation; returns it with its session token (shown once, stored hashed)."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        conv = Conversation(
            id=secrets.token_hex(16),
            token_hash=hash_token(token),
            customer_id=customer_id,
            channel=channel,
        )
        with self._writing(), self.session() as s:
            s.add(conv)
            s.commit()
        return conv, token

    def conversation_by_token(self, token: str) -> Conversation | None:
        with self.session() as s:
            return s.exec(self._by_token, params={"token_hash": hash_token(token)}).first()

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        with self.session() as s:
            return s.get(Conversation, conversation_id)

    def set_status(self, conversation_id: str, status: str) -> None:
        with self._writing(), self.session() as s:
            s.execute(
                update(Conversation)
                .where(col(Conversation.id) == conversation_id)
                .values(status=status, updated_at=utcnow())
            )
            s.commit()

    # -- turns ---------------------------------------------------------------------------

    def append_turn(self, conversation_id: str, role: str, text: str, **meta: Any) -> TurnRecord:
        """Store one message as the conversation's next turn and return it (with its id).

        The sequence number is computed inside the INSERT itself. SQLite runs that
        statement under its write lock; PostgreSQL first locks the conversation's row,
        so concurrent writers to one conversation queue instead of colliding.
        """
        now = utcnow()
        values = {
            "conversation_id": conversation_id,
            "role": role,
            "text": text,
            "created_at": now,
            "passages": [],
            "model_versions": {},
            "latency_ms": {},
            **meta,
        }
        try:
            with self._writing(), self.engine.begin() as conn:
                if self.engine.dialect.name != "sqlite":
                    found = conn.execute(self._lock_conversation, {"cid": conversation_id}).first()
                    if found is None:
                        raise StoreError(f"no conversation {conversation_id!r}")
                row = self._insert(conn, values)
        except IntegrityError as exc:
            raise StoreError(f"no conversation {conversation_id!r}") from exc
        values.update(id=row.id, seq=row.seq)
        return TurnRecord(**values)

    def _insert(self, conn: Any, values: dict[str, Any]) -> Any:
        """Insert a turn (its `seq` the conversation's next) and touch its conversation."""
        cid = values["conversation_id"]
        row = conn.execute(self._insert_turn, {**values, "cid": cid}).one()
        conn.execute(self._touch_conversation, {"cid": cid, "now": values["created_at"]})
        return row

    def update_turn(self, turn_id: int, **values: Any) -> None:
        with self._writing(), self.session() as s:
            s.execute(update(TurnRecord).where(col(TurnRecord.id) == turn_id).values(**values))
            s.commit()

    def history(self, conversation_id: str, *, limit: int | None = None) -> list[TurnRecord]:
        """The conversation's turns, oldest first (the newest `limit` if given)."""
        with self.session() as s:
            q = (
                select(TurnRecord)
                .where(TurnRecord.conversation_id == conversation_id)
                .order_by(col(TurnRecord.seq).desc())
            )
            if limit is not None:
                q = q.limit(limit)
            return list(reversed(s.exec(q).all()))

    def get_turn(self, turn_id: int) -> TurnRecord | None:
        with self.session() as s:
            return s.get(TurnRecord, turn_id)

    def count_turns(self, *, role: str | None = None) -> int:
        with self.session() as s:
            q = select(func.count()).select_from(TurnRecord)
            if role is not None:
                q = q.where(TurnRecord.role == role)
            return int(s.exec(q).one())

    def set_feedback(self, turn_id: int, value: int) -> None:
        if value not in (-1, 1):
            raise ValueError("feedback is +1 or -1")
        self.update_turn(turn_id, feedback=value)

    # -- handoffs ------------------------------------------------------------------------

    def open_handoff(
        self, conversation_id: str, reason: str, *, intent: str | None = None
    ) -> Handoff:
        """Queue the conversation for a human; an already open handoff is returned as is."""
        with self._writing(), self.session() as s:
            existing = s.exec(
                select(Handoff).where(
                    Handoff.conversation_id == conversation_id,
                    col(Handoff.status).in_(("queued", "claimed")),
                )
            ).first()
            if existing is not None:
                return existing
            handoff = Handoff(conversation_id=conversation_id, reason=reason, intent=intent)
            s.add(handoff)
            s.execute(
                update(Conversation)
                .where(col(Conversation.id) == conversation_id)
                .values(status="handoff", updated_at=utcnow())
            )
            s.commit()
            return handoff

    def handoff_queue(self, *, statuses: Sequence[str] = ("queued",)) -> list[Handoff]:
        with self.session() as s:
            return list(
                s.exec(
                    select(Handoff)
                    .where(col(Handoff.status).in_(tuple(statuses)))
                    .order_by(col(Handoff.created_at))
                ).all()
            )

    def claim_handoff(self, handoff_id: int, agent: str) -> bool:
        """Give the handoff to `agent`; False if someone else already has it.

        One conditional UPDATE decides: of two agents (in any number of processes)
        claiming at once, exactly one changes the row.
        """
        with self._writing(), self.session() as s:
            result = s.execute(
                update(Handoff)
                .where(col(Handoff.id) == handoff_id, col(Handoff.status) == "queued")
                .values(status="claimed", claimed_by=agent, claimed_at=utcnow())
            )
            s.commit()
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def resolve_handoff(self, handoff_id: int, *, back_to_bot: bool = True) -> None:
        """Close the handoff; the conversation returns to the bot or is closed."""
        with self._writing(), self.session() as s:
            handoff = s.get(Handoff, handoff_id)
            if handoff is None:
                raise StoreError(f"no handoff {handoff_id}")
            handoff.status = "resolved"
            handoff.resolved_at = utcnow()
            s.add(handoff)
            s.execute(
                update(Conversation)
                .where(col(Conversation.id) == handoff.conversation_id)
                .values(status="open" if back_to_bot else "closed", updated_at=utcnow())
            )
            s.commit()

    # -- dialogue (the turn pipeline's state, session expiry, feedback) --------------------

    def dialogue_state(self, conversation_id: str) -> dict[str, Any] | None:
        """The dialogue policy's stored state of the conversation (None before its first turn)."""
        with self.engine.connect() as conn:
            row = conn.execute(self._state_of, {"cid": conversation_id}).first()
        return dict(row.state or {}) if row is not None else None

    def save_dialogue_state(self, conversation_id: str, state: dict[str, Any]) -> None:
        with self._writing(), self.engine.begin() as conn:
            self._upsert_state(conn, conversation_id, state)

    def _upsert_state(self, conn: Any, conversation_id: str, state: dict[str, Any]) -> None:
        conn.execute(
            self._upsert_state_stmt,
            {"conversation_id": conversation_id, "state": state, "updated_at": utcnow()},
        )

    def record_bot_turn(
        self,
        conversation_id: str,
        text: str,
        *,
        user_turn_id: int | None = None,
        user_values: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        **meta: Any,
    ) -> TurnRecord:
        """Store the bot's reply, what the bot learnt about the customer's message
        (`user_values` on turn `user_turn_id`) and the dialogue state, in one transaction."""
        now = utcnow()
        values = {
            "conversation_id": conversation_id,
            "role": "bot",
            "text": text,
            "created_at": now,
            "passages": [],
            "model_versions": {},
            "latency_ms": {},
            **meta,
        }
        try:
            with self._writing(), self.engine.begin() as conn:
                if self.engine.dialect.name != "sqlite":
                    conn.execute(self._lock_conversation, {"cid": conversation_id}).first()
                if user_turn_id is not None and user_values:
                    conn.execute(
                        self._label_statement(frozenset(user_values)),
                        {**user_values, "turn_id": user_turn_id},
                    )
                row = self._insert(conn, values)
                if state is not None:
                    self._upsert_state(conn, conversation_id, state)
        except IntegrityError as exc:
            raise StoreError(f"no conversation {conversation_id!r}") from exc
        values.update(id=row.id, seq=row.seq)
        return TurnRecord(**values)

    def _label_statement(self, columns: frozenset[str]) -> Any:
        """The UPDATE of a turn's `columns`, with bound parameters (built once a set)."""
        statement = self._label_statements.get(columns)
        if statement is None:
            statement = (
                update(TurnRecord)
                .where(col(TurnRecord.id) == bindparam("turn_id"))
                .values({name: bindparam(name) for name in columns})
            )
            self._label_statements[columns] = statement
        return statement

    def conversation_turn(self, conversation_id: str, turn_id: int) -> TurnRecord | None:
        """Turn `turn_id` if it belongs to the conversation (else None: nothing leaks)."""
        with self.session() as s:
            turn = s.get(TurnRecord, turn_id)
            return turn if turn is not None and turn.conversation_id == conversation_id else None

    def conversation_for_customer(self, customer_id: str, *, channel: str) -> Conversation | None:
        """The customer's newest conversation on `channel` (e.g. a Rasa REST sender)."""
        with self.session() as s:
            return s.exec(
                select(Conversation)
                .where(Conversation.customer_id == customer_id, Conversation.channel == channel)
                .order_by(col(Conversation.created_at).desc())
            ).first()

    # -- labels and agents ---------------------------------------------------------------

    def add_label(self, turn_id: int, agent: str, **values: Any) -> AgentLabel:
        label = AgentLabel(turn_id=turn_id, agent=agent, **values)
        with self._writing(), self.session() as s:
            s.add(label)
            s.commit()
        return label

    def labels(self) -> list[AgentLabel]:
        with self.session() as s:
            return list(s.exec(select(AgentLabel).order_by(col(AgentLabel.id))).all())

    def add_agent(self, agent: Agent) -> None:
        with self._writing(), self.session() as s:
            s.add(agent)
            try:
                s.commit()
            except IntegrityError as exc:
                raise StoreError(f"agent {agent.username!r} already exists") from exc

    def get_agent(self, username: str) -> Agent | None:
        with self.session() as s:
            return s.get(Agent, username)

    # -- agent console: review queue and dashboard (appended for the UI) ------------------

    def get_handoff(self, handoff_id: int) -> Handoff | None:
        with self.session() as s:
            return s.get(Handoff, handoff_id)

    def active_handoff(self, conversation_id: str) -> Handoff | None:
        """The conversation's queued or claimed handoff, if it has one."""
        with self.session() as s:
            return s.exec(
                select(Handoff)
                .where(
                    Handoff.conversation_id == conversation_id,
                    col(Handoff.status).in_(("queued", "claimed")),
                )
                .order_by(col(Handoff.id).desc())
            ).first()

    def least_confident_turns(self, *, limit: int = 20) -> list[TurnRecord]:
        """Bot turns with the lowest intent confidence that no agent has labelled yet."""
        return self._unlabelled_bot_turns(
            col(TurnRecord.confidence).is_not(None),
            order_by=(col(TurnRecord.confidence), col(TurnRecord.id).desc()),
            limit=limit,
        )

    def thumbs_down_turns(self, *, limit: int = 20) -> list[TurnRecord]:
        """Bot turns the customer gave a thumbs-down, newest first, not labelled yet."""
        return self._unlabelled_bot_turns(
            TurnRecord.feedback == -1, order_by=(col(TurnRecord.id).desc(),), limit=limit
        )

    def _unlabelled_bot_turns(
        self, condition: Any, *, order_by: tuple[Any, ...], limit: int
    ) -> list[TurnRecord]:
        """The review queue's base query: bot turns matching `condition` without a label."""
        labelled = select(AgentLabel.turn_id)
        with self.session() as s:
            return list(
                s.exec(
                    select(TurnRecord)
                    .where(TurnRecord.role == "bot", condition, col(TurnRecord.id).not_in(labelled))
                    .order_by(*order_by)
                    .limit(limit)
                ).all()
            )

    def labels_for(self, turn_ids: Sequence[int]) -> list[AgentLabel]:
        """The labels of the given turns, oldest first."""
        if not turn_ids:
            return []
        with self.session() as s:
            return list(
                s.exec(
                    select(AgentLabel)
                    .where(col(AgentLabel.turn_id).in_(tuple(turn_ids)))
                    .order_by(col(AgentLabel.id))
                ).all()
            )

    def dashboard_counts(self, *, days: int = 14) -> dict[str, Any]:
        """Aggregates for the agent dashboard over the last `days` days (UTC).

        Returns a dict with `turns_per_day` ({"YYYY-MM-DD": customer messages}),
        `conversations` (those with a customer message), `handed_off` (those of them
        with a handoff), `handoff_reasons`, `bot_kinds` and `top_intents` (name -> count).
        """
        since = utcnow() - timedelta(days=days)
        day = func.date(TurnRecord.created_at)
        with self.session() as s:
            per_day = s.execute(
                select(day, func.count())
                .where(TurnRecord.role == "user", col(TurnRecord.created_at) >= since)
                .group_by(day)
                .order_by(day)
            ).all()
            active = (
                select(TurnRecord.conversation_id)
                .where(TurnRecord.role == "user", col(TurnRecord.created_at) >= since)
                .distinct()
                .subquery()
            )
            conversations = s.execute(select(func.count()).select_from(active)).scalar_one()
            handed_off = s.execute(
                select(func.count(func.distinct(Handoff.conversation_id))).where(
                    col(Handoff.conversation_id).in_(select(active.c.conversation_id))
                )
            ).scalar_one()
            reasons = s.execute(
                select(Handoff.reason, func.count())
                .where(col(Handoff.created_at) >= since)
                .group_by(Handoff.reason)
            ).all()
            bot_recent = (TurnRecord.role == "bot", col(TurnRecord.created_at) >= since)
            kinds = s.execute(
                select(TurnRecord.kind, func.count()).where(*bot_recent).group_by(TurnRecord.kind)
            ).all()
            intents = s.execute(
                select(TurnRecord.intent, func.count())
                .where(*bot_recent, col(TurnRecord.intent).is_not(None))
                .group_by(TurnRecord.intent)
                .order_by(func.count().desc(), col(TurnRecord.intent))
                .limit(10)
            ).all()
        return {
            "turns_per_day": {str(d): int(n) for d, n in per_day},
            "conversations": int(conversations),
            "handed_off": int(handed_off),
            "handoff_reasons": {str(r): int(n) for r, n in reasons},
            "bot_kinds": {str(k): int(n) for k, n in kinds},
            "top_intents": {str(i): int(n) for i, n in intents},
        }

    # -- privacy: erasure and retention (see `deskbot.bot.privacy.erasure`) ----------------------

    def customer_conversation_ids(self, customer_id: str) -> list[str]:
        """Ids of every conversation of `customer_id`, on every channel."""
        with self.session() as s:
            return list(
                s.exec(
                    select(Conversation.id)
                    .where(Conversation.customer_id == customer_id)
                    .order_by(col(Conversation.created_at))
                ).all()
            )

    def conversation_ids_idle_since(self, before: datetime, *, limit: int = 500) -> list[str]:
        """Ids of conversations whose last activity is older than `before` (oldest first)."""
        with self.session() as s:
            return list(
                s.exec(
                    select(Conversation.id)
                    .where(col(Conversation.updated_at) < before)
                    .order_by(col(Conversation.updated_at))
                    .limit(limit)
                ).all()
            )

    def customer_turns(self, conversation_ids: Sequence[str]) -> list[TurnRecord]:
        """Every turn of the conversations, in order (what an erasure must find copies of)."""
        out: list[TurnRecord] = []
        with self.session() as s:
            for chunk in _chunks(conversation_ids):
                out.extend(
                    s.exec(
                        select(TurnRecord)
                        .where(col(TurnRecord.conversation_id).in_(chunk))
                        .order_by(col(TurnRecord.conversation_id), col(TurnRecord.seq))
                    ).all()
                )
        return out

    def erase_conversations(
        self, conversation_ids: Sequence[str], *, kind: str = "forget", requested_by: str = "cli"
    ) -> dict[str, int]:
        """Delete the conversations and everything stored about them, in one transaction:
        agents' labels of their turns, the turns (feedback included), handoffs, dialogue
        state, the conversations. Returns the rows deleted per table.

        The same transaction adds an `ErasureRecord` (`kind`, `requested_by`, the counts)
        when anything was deleted.
        """
        counts = dict.fromkeys(
            ("agent_labels", "turns", "handoffs", "dialogue_states", "conversations"), 0
        )
        if not conversation_ids:
            return counts
        with self._writing(), self.engine.begin() as conn:
            for chunk in _chunks(conversation_ids):
                if self.engine.dialect.name != "sqlite":
                    # Lock the conversations first, as a turn being stored does: a turn
                    # written meanwhile is then either waited for and deleted, or refused
                    # ("no conversation"), never left behind its deleted conversation.
                    conn.execute(
                        select(col(Conversation.id))
                        .where(col(Conversation.id).in_(chunk))
                        .order_by(col(Conversation.id))
                        .with_for_update()
                    ).all()
                turns = select(TurnRecord.id).where(col(TurnRecord.conversation_id).in_(chunk))
                for name, stmt in (
                    ("agent_labels", delete(AgentLabel).where(col(AgentLabel.turn_id).in_(turns))),
                    ("turns", delete(TurnRecord).where(col(TurnRecord.conversation_id).in_(chunk))),
                    ("handoffs", delete(Handoff).where(col(Handoff.conversation_id).in_(chunk))),
                    (
                        "dialogue_states",
                        delete(DialogueStateRecord).where(
                            col(DialogueStateRecord.conversation_id).in_(chunk)
                        ),
                    ),
                    ("conversations", delete(Conversation).where(col(Conversation.id).in_(chunk))),
                ):
                    counts[name] += int(conn.execute(stmt).rowcount)
            if any(counts.values()):
                conn.execute(
                    insert(ErasureRecord).values(
                        kind=kind,
                        requested_by=requested_by[:160],
                        counts=counts,
                        created_at=utcnow(),
                    )
                )
        return counts

    def erasures(self) -> list[ErasureRecord]:
        """The record of erasures and prunes, oldest first."""
        with self.session() as s:
            return list(s.exec(select(ErasureRecord).order_by(col(ErasureRecord.id))).all())


def _chunks(ids: Sequence[str], size: int = 500) -> Iterator[list[str]]:
    """`ids` in slices small enough for any database's limit on bound parameters."""
    items = list(ids)
    for start in range(0, len(items), size):
        yield items[start : start + size]
