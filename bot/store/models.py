"""SQLModel tables of the conversation store.

The schema is owned by Alembic migrations (`deskbot.bot.store.migrations`); these
classes must stay in step with the newest migration, which a test checks.

Statuses, roles and kinds are `Literal`s of the strings stored: the columns stay plain
strings (`AutoString` of the migrated length), so databases written before keep loading.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from sqlalchemy import JSON, Column, Index, UniqueConstraint, false
from sqlmodel import AutoString, Field, SQLModel

from deskbot.bot.core.types import Role

# open -> handoff (an agent owns it) -> open again, or closed
ConversationStatus = Literal["open", "handoff", "closed"]
HandoffStatus = Literal["queued", "claimed", "resolved"]
AgentRole = Literal["agent", "admin"]
# forget: `deskbot forget`, `DELETE /api/me`, the admin route; prune: retention
ErasureKind = Literal["forget", "prune"]
# What a bot turn was: the values of `deskbot.bot.core.types.Reply.kind` (a test holds
# the two in step).
TurnKind = Literal[
    "faq", "generated", "clarify", "handoff", "action", "smalltalk", "fallback", "form"
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Conversation(SQLModel, table=True):
    """One customer's conversation with the bot (and, after a handoff, with agents).

    An imported past conversation (`deskbot import conversations`) names its `source`
    (the export format) and its id there (`external_id`, unique per source: importing
    twice adds nothing); a live one has neither. Imported ones open to no session token,
    are never queued, and the dashboard's live figures leave them out."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("uq_conversations_source_external_id", "source", "external_id", unique=True),
    )

    id: str = Field(primary_key=True, max_length=32)
    # Only a hash of the session token is stored: a database leak reveals no sessions.
    token_hash: str = Field(index=True, max_length=64)
    customer_id: str | None = Field(default=None, index=True, max_length=128)
    channel: str = Field(default="web", max_length=32)
    # What the site passed about its customer when the widget opened (the console's
    # customer panel shows them): a display name, the page it was opened on, the language.
    customer_name: str | None = Field(default=None, max_length=128)
    page: str | None = Field(default=None, max_length=512)
    language: str | None = Field(default=None, max_length=16)
    status: ConversationStatus = Field(default="open", index=True, sa_type=AutoString(16))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    source: str | None = Field(default=None, max_length=16)
    external_id: str | None = Field(default=None, max_length=128)


class TurnRecord(SQLModel, table=True):
    """One message: the customer's, the bot's or an agent's, with what the bot knew."""

    __tablename__ = "turns"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_turns_conversation_seq"),
        Index("ix_turns_created_at", "created_at"),
        Index("uq_turns_conversation_message", "conversation_id", "message_id", unique=True),
        Index("ix_turns_reply_to", "reply_to"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(foreign_key="conversations.id", index=True, max_length=32)
    seq: int
    role: Role = Field(sa_type=AutoString(16))
    text: str
    author: str | None = Field(default=None, max_length=128)
    intent: str | None = Field(default=None, max_length=128, index=True)
    confidence: float | None = None
    kind: TurnKind | None = Field(default=None, sa_type=AutoString(32))
    passages: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    model_versions: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))
    latency_ms: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON))
    feedback: int | None = None  # +1 thumbs up, -1 thumbs down
    created_at: datetime = Field(default_factory=utcnow)
    # A customer message: the client's id for it (`Idempotency-Key`), unique in its
    # conversation, so that a retry gets the stored reply instead of a second turn.
    message_id: str | None = Field(default=None, max_length=64)
    # A bot turn: the customer turn it answers, and what the API sent besides the text
    # (citations, buttons, action, handoff reason), so a retry gets the same reply.
    reply_to: int | None = None
    reply: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class TurnFields(TypedDict, total=False):
    """What a turn may be stored with besides its conversation, role and text."""

    author: str | None
    intent: str | None
    confidence: float | None
    kind: TurnKind | None
    passages: list[dict[str, Any]]
    model_versions: dict[str, str]
    latency_ms: dict[str, float]
    feedback: int | None
    message_id: str | None
    reply_to: int | None
    reply: dict[str, Any] | None


class LabelFields(TypedDict, total=False):
    """What an agent's label of a turn may say (see `AgentLabel`)."""

    intent: str | None
    answer_wrong: bool
    correct_answer: str | None
    note: str | None


class DialogueStateRecord(SQLModel, table=True):
    """What the dialogue policy remembers of a conversation between turns (slots, form)."""

    __tablename__ = "dialogue_states"

    conversation_id: str = Field(foreign_key="conversations.id", primary_key=True, max_length=32)
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    updated_at: datetime = Field(default_factory=utcnow)


class Handoff(SQLModel, table=True):
    """A conversation waiting for (or owned by) a human agent."""

    __tablename__ = "handoffs"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(foreign_key="conversations.id", index=True, max_length=32)
    reason: str = Field(max_length=64)
    status: HandoffStatus = Field(default="queued", index=True, sa_type=AutoString(16))
    intent: str | None = Field(default=None, max_length=128)
    claimed_by: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utcnow)
    claimed_at: datetime | None = None
    resolved_at: datetime | None = None
    # The team whose queue it waits in (`Team.name`; DEFAULT_TEAM when none routes it).
    team: str = Field(
        default="general", index=True, max_length=64, sa_column_kwargs={"server_default": "general"}
    )


class AgentLabel(SQLModel, table=True):
    """An agent's correction of a bot turn: the training data of the nightly job."""

    __tablename__ = "agent_labels"

    id: int | None = Field(default=None, primary_key=True)
    turn_id: int = Field(foreign_key="turns.id", index=True)
    agent: str = Field(max_length=128)
    intent: str | None = Field(default=None, max_length=128)
    answer_wrong: bool = False
    correct_answer: str | None = None
    note: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Agent(SQLModel, table=True):
    """A person who may use the agent console."""

    __tablename__ = "agents"

    username: str = Field(primary_key=True, max_length=128)
    display_name: str = Field(max_length=128)
    password_hash: str = Field(max_length=256)
    role: AgentRole = Field(default="agent", sa_type=AutoString(16))
    created_at: datetime = Field(default_factory=utcnow)
    # A disabled agent cannot log in, and their sessions were ended (`deskbot agents disable`).
    disabled: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class SatisfactionAnswer(SQLModel, table=True):
    """The customer's answer to the satisfaction survey after a conversation (CSAT): one
    per conversation, a second answer replaces the first. Erased with the conversation."""

    __tablename__ = "satisfaction"

    conversation_id: str = Field(foreign_key="conversations.id", primary_key=True, max_length=32)
    score: int  # 1 (very unsatisfied) .. 5 (very satisfied)
    comment: str | None = None
    # Who helped the customer, and what they asked about, when they answered: the
    # dashboard's CSAT by agent and by intent reads these, not the turns.
    agent_id: str | None = Field(default=None, max_length=128, index=True)
    intent: str | None = Field(default=None, max_length=128, index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class ErasureRecord(SQLModel, table=True):
    """That customer data was erased (`deskbot forget`, `DELETE /api/me`) or pruned after
    the retention period, by whom and how many rows: the record of compliance. It names
    no customer and holds no text of theirs."""

    __tablename__ = "erasures"

    id: int | None = Field(default=None, primary_key=True)
    kind: ErasureKind = Field(sa_type=AutoString(16))
    requested_by: str = Field(max_length=160)  # cli, customer, admin:USERNAME, retention
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class ConversationNote(SQLModel, table=True):
    """An agent's internal note on a conversation: agents see it beside the transcript,
    the customer never does. Erased with the conversation."""

    __tablename__ = "conversation_notes"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(foreign_key="conversations.id", index=True, max_length=32)
    agent: str = Field(max_length=128)
    text: str
    created_at: datetime = Field(default_factory=utcnow)


class CannedReply(SQLModel, table=True):
    """A saved reply agents insert in one click, shared by all agents and edited by
    admins. Its text may hold placeholders ({customer_name}, {agent_name}, ...)."""

    __tablename__ = "canned_replies"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=128, unique=True)
    text: str
    updated_by: str = Field(max_length=128)
    updated_at: datetime = Field(default_factory=utcnow)


class AgentSession(SQLModel, table=True):
    """A console login, behind the session cookie: the cookie carries a random token,
    the row its SHA-256. Deleting the row ends the session on every replica (logout,
    `deskbot agents revoke`, `disable`, a password change)."""

    __tablename__ = "agent_sessions"

    id: str = Field(primary_key=True, max_length=64)  # SHA-256 of the token, hex
    username: str = Field(foreign_key="agents.username", index=True, max_length=128)
    address: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class AuditEvent(SQLModel, table=True):
    """One thing someone did with customers' data or the bot (#22): who, what, on which
    object, from where, when. Append-only, and never the text of a message: erasing a
    customer keeps the row and blanks `conversation_id` (see `deskbot.bot.store.audit`)."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    # An agent's username, or "os:NAME" for the command line (the operating-system user).
    actor: str | None = Field(default=None, index=True, max_length=160)
    action: str = Field(index=True, max_length=48)
    object_type: str | None = Field(default=None, max_length=32)
    object_id: str | None = Field(default=None, max_length=128)
    conversation_id: str | None = Field(default=None, index=True, max_length=32)
    address: str | None = Field(default=None, max_length=64)
    # A short machine-written detail (an intent, a version, a count): never customer text.
    detail: str | None = Field(default=None, max_length=256)


class Team(SQLModel, table=True):
    """A group of agents with its own queue: handoffs are routed to a team by intent or
    handoff reason (config `teams`), and agents see and claim their teams' handoffs."""

    __tablename__ = "teams"

    name: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class AgentTeam(SQLModel, table=True):
    """An agent's membership of a team."""

    __tablename__ = "agent_teams"

    username: str = Field(foreign_key="agents.username", primary_key=True, max_length=128)
    team: str = Field(foreign_key="teams.name", primary_key=True, max_length=64)
