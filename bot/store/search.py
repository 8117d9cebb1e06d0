"""Finding conversations for the agent console: by status, by the agent who had them, by
intent, by when they were active and by words in their messages, resolved ones
included; and a customer's other conversations.

The same queries run on SQLite and PostgreSQL: the text is a case-insensitive LIKE
(`ILIKE` on PostgreSQL, `lower() LIKE lower()` on SQLite, which folds ASCII letters
only) with `%`, `_` and the escape character itself escaped, so what an agent types is
matched as typed. A page holds at most `MAX_PAGE_SIZE` conversations, newest activity
first; the columns each one shows are read for that page alone.

Example:
    >>> page = store.search_conversations(ConversationFilter(text="50%", status="closed"))
    >>> [s.conversation.id for s in page.results]   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, and_, exists, func, or_
from sqlmodel import Session, col, select

from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import Agent, Conversation, Handoff, HandoffStatus, TurnRecord
from deskbot.bot.store.teams import readable_by

__all__ = [
    "MAX_PAGE_SIZE",
    "SEARCH_STATUSES",
    "ConversationFilter",
    "ConversationSummary",
    "SearchPage",
    "SearchRepository",
    "SearchStatus",
    "like_pattern",
]

# open: with the bot; queued: waiting for a person; claimed: with a person; resolved: a
# person finished with it (handed back or closed); closed: resolved and closed.
SearchStatus = Literal["open", "queued", "claimed", "resolved", "closed"]
SEARCH_STATUSES: tuple[SearchStatus, ...] = get_args(SearchStatus)
MAX_PAGE_SIZE = 100
MAX_TEXT_CHARS = 200
ESCAPE = "\\"


def like_pattern(text: str) -> str:
    """A LIKE pattern (escape character `\\`) matching `text` anywhere, as typed."""
    escaped = text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class ConversationFilter:
    """What conversations to find; every condition given must hold.

    Attributes:
        text: words in any of its messages (case-insensitive, as typed; at most
            `MAX_TEXT_CHARS`).
        status: see `SearchStatus`.
        agent: the username of an agent who claimed it or wrote in it.
        intent: an intent the bot predicted in it, or that its handoff was for.
        since: active at or after this time (UTC).
        until: started before this time (UTC).
        customer_id: the site's id of its customer.
        exclude: a conversation id left out (the one already on screen).
        teams: only conversations the agents of these teams may read: never handed off
            (no team), or whose latest handoff waits in one of them. None: every team's
            (an admin's search).
    """

    text: str | None = None
    status: SearchStatus | None = None
    agent: str | None = None
    intent: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    customer_id: str | None = None
    exclude: str | None = None
    teams: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in SEARCH_STATUSES:
            raise ValueError(f"status is one of {', '.join(SEARCH_STATUSES)}, not {self.status!r}")
        if self.text is not None and len(self.text) > MAX_TEXT_CHARS:
            raise ValueError(f"search for at most {MAX_TEXT_CHARS} characters of text")

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE conditions on `conversations` (a conversation with no message is
        never found: there is nothing in it to read)."""
        cid = col(Conversation.id)
        turn_of = col(TurnRecord.conversation_id) == cid
        handoff_of = col(Handoff.conversation_id) == cid
        where: list[ColumnElement[bool]] = [exists().where(turn_of)]
        text = (self.text or "").strip()
        if text:
            match = col(TurnRecord.text).ilike(like_pattern(text), escape=ESCAPE)
            where.append(exists().where(turn_of, match))
        if self.status in ("open", "closed"):
            where.append(col(Conversation.status) == self.status)
        elif self.status is not None:
            where.append(exists().where(handoff_of, col(Handoff.status) == self.status))
        if self.agent:
            wrote = and_(col(TurnRecord.role) == "agent", col(TurnRecord.author) == self.agent)
            where.append(
                or_(
                    exists().where(handoff_of, col(Handoff.claimed_by) == self.agent),
                    exists().where(turn_of, wrote),
                )
            )
        if self.intent:
            where.append(
                or_(
                    exists().where(turn_of, col(TurnRecord.intent) == self.intent),
                    exists().where(handoff_of, col(Handoff.intent) == self.intent),
                )
            )
        if self.since is not None:
            where.append(col(Conversation.updated_at) >= self.since)
        if self.until is not None:
            where.append(col(Conversation.created_at) < self.until)
        if self.customer_id is not None:
            where.append(col(Conversation.customer_id) == self.customer_id)
        if self.exclude is not None:
            where.append(cid != self.exclude)
        if self.teams is not None:
            where.append(readable_by(cid, self.teams))
        return where


@dataclass(frozen=True)
class ConversationSummary:
    """A found conversation, with what its row in a list of results shows.

    Attributes:
        conversation: the conversation.
        handoff_status: the status of its newest handoff (None: never handed off).
        agent: who claimed its newest claimed handoff.
        intent: the newest intent the bot predicted in it (or its handoff's).
        first_message: what its customer wrote first.
        match: the first message holding the searched text ("" without a text search).
        turns: how many messages it has.
    """

    conversation: Conversation
    handoff_status: HandoffStatus | None
    agent: str | None
    intent: str | None
    first_message: str
    match: str
    turns: int


@dataclass(frozen=True)
class SearchPage:
    """One page of results: `results` from `offset` on, of `total` found."""

    results: list[ConversationSummary]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.results) < self.total


class SearchRepository(SqlRepository):
    """The console's search of every conversation, and a customer's history."""

    def search_conversations(
        self, where: ConversationFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> SearchPage:
        """Conversations matching `where`, newest activity first, `limit` of them (at most
        `MAX_PAGE_SIZE`) from `offset` on."""
        where = where or ConversationFilter()
        limit = max(1, min(int(limit), MAX_PAGE_SIZE))
        offset = max(0, int(offset))
        conditions = where.conditions()
        with self.session() as s:
            total = s.execute(
                select(func.count()).select_from(Conversation).where(*conditions)
            ).scalar_one()
            found = list(
                s.exec(
                    select(Conversation)
                    .where(*conditions)
                    .order_by(col(Conversation.updated_at).desc(), col(Conversation.id))
                    .limit(limit)
                    .offset(offset)
                ).all()
            )
            results = _summaries(s, found, (where.text or "").strip())
        return SearchPage(results, int(total), offset, limit)

    def customer_history(
        self,
        customer_id: str,
        *,
        exclude: str | None = None,
        limit: int = 20,
        teams: Sequence[str] | None = None,
    ) -> list[ConversationSummary]:
        """The customer's conversations (but `exclude`), newest activity first; with
        `teams`, only those the agents of these teams may read."""
        where = ConversationFilter(
            customer_id=customer_id,
            exclude=exclude,
            teams=None if teams is None else tuple(teams),
        )
        found = self.search_conversations(where, limit=limit)
        return found.results

    def agent_choices(self) -> list[tuple[str, str]]:
        """Every agent account as (display name, username), by username: whom to filter by."""
        with self.session() as s:
            rows = s.execute(
                select(Agent.display_name, Agent.username).order_by(col(Agent.username))
            ).all()
        return [(str(name), str(username)) for name, username in rows]


def _summaries(
    s: Session, conversations: Sequence[Conversation], text: str
) -> list[ConversationSummary]:
    """What the rows of `conversations` show, in a few queries for all of them."""
    ids = [c.id for c in conversations]
    if not ids:
        return []
    in_page = col(TurnRecord.conversation_id).in_(ids)
    customer = col(TurnRecord.role) == "user"
    first = _turn_text(s, in_page, customer, newest=False)
    intents = _turn_field(s, TurnRecord.intent, in_page, col(TurnRecord.intent).is_not(None))
    matches: dict[str, str] = {}
    if text:
        match = col(TurnRecord.text).ilike(like_pattern(text), escape=ESCAPE)
        matches = _turn_text(s, in_page, match, newest=False)
    counts = dict(
        s.execute(
            select(TurnRecord.conversation_id, func.count())
            .where(in_page)
            .group_by(TurnRecord.conversation_id)
        ).all()
    )
    handoffs: dict[str, Handoff] = {}
    claimed: dict[str, str] = {}
    for handoff in s.exec(
        select(Handoff).where(col(Handoff.conversation_id).in_(ids)).order_by(col(Handoff.id))
    ).all():
        handoffs[handoff.conversation_id] = handoff
        if handoff.claimed_by:
            claimed[handoff.conversation_id] = handoff.claimed_by
    out = []
    for c in conversations:
        newest = handoffs.get(c.id)
        out.append(
            ConversationSummary(
                conversation=c,
                handoff_status=newest.status if newest is not None else None,
                agent=claimed.get(c.id),
                intent=intents.get(c.id) or (newest.intent if newest is not None else None),
                first_message=first.get(c.id, ""),
                match=matches.get(c.id, ""),
                turns=int(counts.get(c.id, 0)),
            )
        )
    return out


def _turn_text(s: Session, *where: ColumnElement[bool], newest: bool) -> dict[str, str]:
    return {k: str(v) for k, v in _turn_field(s, TurnRecord.text, *where, newest=newest).items()}


def _turn_field(
    s: Session, field: Any, *where: ColumnElement[bool], newest: bool = True
) -> dict[str, Any]:
    """Per conversation, `field` of its first (or newest) turn matching `where`."""
    seq = func.max(TurnRecord.seq) if newest else func.min(TurnRecord.seq)
    picked = (
        select(col(TurnRecord.conversation_id).label("cid"), seq.label("seq"))
        .where(*where)
        .group_by(TurnRecord.conversation_id)
        .subquery()
    )
    rows = s.execute(
        select(TurnRecord.conversation_id, field).join(
            picked,
            and_(
                col(TurnRecord.conversation_id) == picked.c.cid,
                col(TurnRecord.seq) == picked.c.seq,
            ),
        )
    ).all()
    return {str(cid): value for cid, value in rows}
