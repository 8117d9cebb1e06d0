"""Conversations, their turns and the dialogue state kept between turns.

Every accepted customer message is written here *before* the bot works on it, so a
crash in any later step never loses what the customer said.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Unpack

from sqlalchemy import Connection, Insert, Update, bindparam, func, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from deskbot.bot.core.errors import StoreError
from deskbot.bot.core.types import Role
from deskbot.bot.store.audit import AuditEntry, write_audit
from deskbot.bot.store.base import SqlRepository, set_conversation_status
from deskbot.bot.store.models import (
    Conversation,
    ConversationStatus,
    DialogueStateRecord,
    TurnFields,
    TurnRecord,
    utcnow,
)

__all__ = ["ConversationRepository", "hash_token"]

_TOKEN_BYTES = 32

# A turn's statements, built once with bound parameters: building them per call (the
# upsert's `excluded` alias above all) cost more CPU than running them.
_NEXT_SEQ = (
    select(func.coalesce(func.max(TurnRecord.seq), 0) + 1)
    .where(TurnRecord.conversation_id == bindparam("cid"))
    .scalar_subquery()
)
_INSERT_TURN = (
    insert(TurnRecord).values(seq=_NEXT_SEQ).returning(col(TurnRecord.id), col(TurnRecord.seq))
)
_TOUCH_CONVERSATION = (
    update(Conversation)
    .where(col(Conversation.id) == bindparam("cid"))
    .values(updated_at=bindparam("now"))
)
_BY_TOKEN = select(Conversation).where(col(Conversation.token_hash) == bindparam("token_hash"))
_BY_MESSAGE_ID = select(TurnRecord).where(
    col(TurnRecord.conversation_id) == bindparam("cid"),
    col(TurnRecord.message_id) == bindparam("mid"),
)
_STATE_OF = select(col(DialogueStateRecord.state)).where(
    col(DialogueStateRecord.conversation_id) == bindparam("cid")
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@functools.cache
def _upsert_state(dialect: str) -> Insert:
    """INSERT of a conversation's dialogue state that replaces the one stored."""
    key = ["conversation_id"]
    if dialect == "postgresql":
        pg = postgresql.insert(DialogueStateRecord)
        new = pg.excluded
        return pg.on_conflict_do_update(
            index_elements=key, set_={"state": new.state, "updated_at": new.updated_at}
        )
    lite = sqlite.insert(DialogueStateRecord)
    new = lite.excluded
    return lite.on_conflict_do_update(
        index_elements=key, set_={"state": new.state, "updated_at": new.updated_at}
    )


@functools.cache
def _update_turn(columns: frozenset[str]) -> Update:
    """The UPDATE of a turn's `columns`, with bound parameters (built once a set)."""
    return (
        update(TurnRecord)
        .where(col(TurnRecord.id) == bindparam("turn_id"))
        .values({name: bindparam(name) for name in columns})
    )


def _turn_values(conversation_id: str, role: Role, text: str, meta: TurnFields) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "role": role,
        "text": text,
        "created_at": utcnow(),
        "passages": [],
        "model_versions": {},
        "latency_ms": {},
        **meta,
    }


class ConversationRepository(SqlRepository):
    """Conversations (opened with a session token, stored hashed), their turns in order,
    and the dialogue policy's state between turns."""

    # -- conversations -------------------------------------------------------------------

    def create_conversation(
        self,
        *,
        customer_id: str | None = None,
        channel: str = "web",
        customer_name: str | None = None,
        page: str | None = None,
        language: str | None = None,
    ) -> tuple[Conversation, str]:
        """Open a conversation; returns it with its session token (shown once, stored hashed).

        `customer_name`, `page` and `language` are what the site said of its customer,
        checked by the caller (`deskbot.bot.server.identity`)."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        conv = Conversation(
            id=secrets.token_hex(16),
            token_hash=hash_token(token),
            customer_id=customer_id,
            channel=channel,
            customer_name=customer_name,
            page=page,
            language=language,
        )
        with self._write_session() as s:
            s.add(conv)
            s.commit()
        return conv, token

    def identify_customer(
        self,
        conversation_id: str,
        *,
        customer_id: str | None = None,
        customer_name: str | None = None,
        page: str | None = None,
        language: str | None = None,
    ) -> bool:
        """Fill in what the site said of the conversation's customer, where nothing was
        said before (a conversation started before the site identified its customer).

        What is stored is never replaced: a conversation stays with the customer it was
        first given, whatever a later page says. Returns whether anything changed."""
        with self._write_session() as s:
            conv = s.get(Conversation, conversation_id)
            if conv is None:
                return False
            values: dict[str, str] = {}
            # The name goes with the id: never another customer's name on this one.
            if customer_id is None or conv.customer_id in (None, customer_id):
                if customer_id is not None and conv.customer_id is None:
                    values["customer_id"] = customer_id
                if customer_name is not None and conv.customer_name is None:
                    values["customer_name"] = customer_name
            if page is not None and conv.page is None:
                values["page"] = page
            if language is not None and conv.language is None:
                values["language"] = language
            if values:
                s.execute(
                    update(Conversation)
                    .where(col(Conversation.id) == conversation_id)
                    .values(values)
                )
                s.commit()
        return bool(values)

    def conversation_by_token(self, token: str) -> Conversation | None:
        with self.session() as s:
            return s.exec(_BY_TOKEN, params={"token_hash": hash_token(token)}).first()

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        with self.session() as s:
            return s.get(Conversation, conversation_id)

    def conversation_for_customer(self, customer_id: str, *, channel: str) -> Conversation | None:
        """The customer's newest conversation on `channel` (e.g. a Rasa REST sender)."""
        with self.session() as s:
            return s.exec(
                select(Conversation)
                .where(Conversation.customer_id == customer_id, Conversation.channel == channel)
                .order_by(col(Conversation.created_at).desc())
            ).first()

    def set_status(self, conversation_id: str, status: ConversationStatus) -> None:
        with self._write_session() as s:
            s.execute(set_conversation_status(conversation_id, status))
            s.commit()

    # -- turns ---------------------------------------------------------------------------

    def append_turn(
        self,
        conversation_id: str,
        role: Role,
        text: str,
        *,
        audit: AuditEntry | None = None,
        **meta: Unpack[TurnFields],
    ) -> TurnRecord:
        """Store one message as the conversation's next turn and return it (with its id);
        `audit` (an agent's reply) is written in the same transaction.

        The sequence number is computed inside the INSERT itself. SQLite runs that
        statement under its write lock; PostgreSQL first locks the conversation's row,
        so concurrent writers to one conversation queue instead of colliding.
        """
        values = _turn_values(conversation_id, role, text, meta)
        with self._turn_transaction(conversation_id) as conn:
            if not self._lock_conversation(conn, conversation_id):
                raise StoreError(f"no conversation {conversation_id!r}")
            turn = self._insert(conn, values)
            if audit is not None:
                write_audit(conn, audit)
            return turn

    def append_message(
        self, conversation_id: str, text: str, message_id: str
    ) -> tuple[TurnRecord, bool]:
        """Store a customer message that carries the client's id for it, once.

        Returns (the turn, True) when it is stored now, or (the turn stored before with
        that id, False) for a retry: then nothing is written. The check and the insert
        are one transaction under the conversation's write lock, so two copies sent at
        once store one turn.
        """
        values = _turn_values(conversation_id, "user", text, {"message_id": message_id})
        with self._turn_transaction(conversation_id) as conn:
            if not self._lock_conversation(conn, conversation_id):
                raise StoreError(f"no conversation {conversation_id!r}")
            row = conn.execute(_BY_MESSAGE_ID, {"cid": conversation_id, "mid": message_id}).first()
            if row is not None:
                return TurnRecord(**row._asdict()), False
            return self._insert(conn, values), True

    def message_turn(self, conversation_id: str, message_id: str) -> TurnRecord | None:
        """The customer turn stored with the client's id `message_id`, if any."""
        return self._first_turn(conversation_id, TurnRecord.message_id == message_id)

    def reply_to(self, conversation_id: str, user_turn_id: int) -> TurnRecord | None:
        """The bot turn that answers customer turn `user_turn_id`, once it is stored."""
        return self._first_turn(conversation_id, TurnRecord.reply_to == user_turn_id)

    def _first_turn(self, conversation_id: str, condition: Any) -> TurnRecord | None:
        """The first turn of the conversation that meets `condition`, if any."""
        with self.session() as s:
            return s.exec(
                select(TurnRecord).where(TurnRecord.conversation_id == conversation_id, condition)
            ).first()

    def record_bot_turn(
        self,
        conversation_id: str,
        text: str,
        *,
        user_turn_id: int | None = None,
        user_values: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        **meta: Unpack[TurnFields],
    ) -> TurnRecord:
        """Store the bot's reply, what the bot learnt about the customer's message
        (`user_values` on turn `user_turn_id`) and the dialogue state, in one transaction."""
        if user_turn_id is not None:
            meta["reply_to"] = user_turn_id
        values = _turn_values(conversation_id, "bot", text, meta)
        with self._turn_transaction(conversation_id) as conn:
            self._lock_conversation(conn, conversation_id)
            if user_turn_id is not None and user_values:
                conn.execute(
                    _update_turn(frozenset(user_values)), {**user_values, "turn_id": user_turn_id}
                )
            turn = self._insert(conn, values)
            if state is not None:
                self._save_state(conn, conversation_id, state)
        return turn

    @contextmanager
    def _turn_transaction(self, conversation_id: str) -> Iterator[Connection]:
        """The write transaction of a turn; a turn of no conversation is a StoreError."""
        try:
            with self._changing_transaction() as conn:
                yield conn
        except IntegrityError as exc:
            raise StoreError(f"no conversation {conversation_id!r}") from exc

    def _insert(self, conn: Connection, values: dict[str, Any]) -> TurnRecord:
        """Insert a turn (its `seq` the conversation's next) and touch its conversation."""
        cid = values["conversation_id"]
        row = conn.execute(_INSERT_TURN, {**values, "cid": cid}).one()
        conn.execute(_TOUCH_CONVERSATION, {"cid": cid, "now": values["created_at"]})
        return TurnRecord(**values, id=row.id, seq=row.seq)

    def update_turn(self, turn_id: int, **values: Unpack[TurnFields]) -> None:
        with self._write_session() as s:
            s.execute(update(TurnRecord).where(col(TurnRecord.id) == turn_id).values(**values))
            s.commit()

    def set_feedback(self, turn_id: int, value: int) -> None:
        if value not in (-1, 1):
            raise ValueError("feedback is +1 or -1")
        self.update_turn(turn_id, feedback=value)

    def history(self, conversation_id: str, *, limit: int | None = None) -> list[TurnRecord]:
        """The conversation's turns, oldest first (the newest `limit` if given)."""
        q = (
            select(TurnRecord)
            .where(TurnRecord.conversation_id == conversation_id)
            .order_by(col(TurnRecord.seq).desc())
        )
        return self._all(q if limit is None else q.limit(limit))[::-1]

    def get_turn(self, turn_id: int) -> TurnRecord | None:
        with self.session() as s:
            return s.get(TurnRecord, turn_id)

    def conversation_turn(self, conversation_id: str, turn_id: int) -> TurnRecord | None:
        """Turn `turn_id` if it belongs to the conversation (else None: nothing leaks)."""
        turn = self.get_turn(turn_id)
        return turn if turn is not None and turn.conversation_id == conversation_id else None

    def count_turns(self, *, role: Role | None = None) -> int:
        with self.session() as s:
            q = select(func.count()).select_from(TurnRecord)
            if role is not None:
                q = q.where(TurnRecord.role == role)
            return int(s.exec(q).one())

    # -- dialogue state ------------------------------------------------------------------

    def dialogue_state(self, conversation_id: str) -> dict[str, Any] | None:
        """The dialogue policy's stored state of the conversation (None before its first turn)."""
        with self.engine.connect() as conn:
            row = conn.execute(_STATE_OF, {"cid": conversation_id}).first()
        return dict(row.state or {}) if row is not None else None

    def save_dialogue_state(self, conversation_id: str, state: dict[str, Any]) -> None:
        with self._write_transaction() as conn:
            self._save_state(conn, conversation_id, state)

    def _save_state(self, conn: Connection, conversation_id: str, state: dict[str, Any]) -> None:
        conn.execute(
            _upsert_state(self.engine.dialect.name),
            {"conversation_id": conversation_id, "state": state, "updated_at": utcnow()},
        )
