"""Help desks' and bot frameworks' export shapes: Chatwoot, Zendesk, Rasa.

Each reads what the vendor's public API returns, saved as JSON Lines (one API object a
line, as a script paging the API writes them) or as one document:

- **Chatwoot**: message objects (`GET /api/v1/accounts/{a}/conversations/{c}/messages`
  returns `{"meta": ..., "payload": [message, ...]}`; a line may be such a response or
  one message). `message_type` 0 is the customer's (incoming), 1 an agent's or, sent by
  an `agent_bot`, the bot's (outgoing); 2 (activity) and 3 (template) are not messages,
  and `private` ones are agents' internal notes: all left out. Grouped by
  `conversation_id`; `created_at` is Unix seconds.
- **Zendesk**: a ticket with its comments, `{"ticket": {...}, "comments": [...],
  "users": [...]}`: the ticket as `GET /api/v2/tickets/{id}` returns it (its `id`,
  `requester_id`, `via.channel`, `created_at`), its comments as `GET
  /api/v2/tickets/{id}/comments` does (`author_id`, `plain_body` or `body`, `public`,
  `created_at`), and optionally the users that call side-loads (`?include=users`, each
  with its `role`). The requester's comments (and any end-user's) are the customer's,
  the others an agent's; private comments (`public: false`) are internal notes, left out.
- **Rasa**: tracker-store events. A line is a tracker (`GET
  /conversations/{id}/tracker`: `sender_id` and `events`), one event with its
  `sender_id` (an event broker's), or a row of the SQL tracker store (`sender_id`,
  `type_name`, `data`: the event as JSON text). `user` events are the customer's, `bot`
  events the bot's; actions, slots and the rest are left out, and so are button
  payloads ("/greet"). A `session_started` or `restart` event begins a new conversation:
  the first of a sender is its `sender_id`, the next `sender_id#2`, and so on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from deskbot.knowledge.files.safe_yaml import brief
from deskbot.training.imports.records import (
    ParsedConversation,
    ParsedFile,
    ParsedTurn,
    RowError,
    StoreRole,
    channel_name,
    clean_text,
    external_id,
    parse_time,
)
from deskbot.training.imports.source import JsonDoc

__all__ = ["read_chatwoot", "read_rasa", "read_zendesk"]

_BOT_SENDERS = frozenset({"agent_bot", "agentbot", "captain_assistant"})
_CHATWOOT_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
_RASA_PAYLOAD = re.compile(r"/[\w.-]+(\{.*\})?", re.DOTALL)


class _Conversations:
    """Conversations being gathered from messages spread over a file."""

    def __init__(self, out: ParsedFile) -> None:
        self.out = out
        self.by_id: dict[str, ParsedConversation] = {}
        self.seen_messages: set[tuple[str, str]] = set()

    def get(self, ext: str, line: int) -> ParsedConversation:
        conv = self.by_id.get(ext)
        if conv is None:
            conv = self.by_id[ext] = ParsedConversation(ext, line)
        return conv

    def repeated(self, ext: str, message_id: Any) -> bool:
        """Whether this message was read before (overlapping pages of an API)."""
        if message_id is None or isinstance(message_id, dict | list):
            return False
        key = (ext, str(message_id))
        if key in self.seen_messages:
            return True
        self.seen_messages.add(key)
        return False

    def done(self) -> ParsedFile:
        for conv in self.by_id.values():
            if conv.turns or conv.bad:
                _in_time_order(conv)
                self.out.conversations.append(conv)
        return self.out


def _in_time_order(conv: ParsedConversation) -> None:
    """Sort the turns by time when all have one (pages may come newest first)."""
    if all(t.time is not None for t in conv.turns):
        conv.turns.sort(key=lambda t: t.time or datetime.min)


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RowError(f"{what} must be an object, got {brief(value)}")
    return value


def _flag(value: Any, what: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RowError(f"{what} must be true or false, got {brief(value)}")
    return value


def _each_item(
    doc: JsonDoc,
    out: ParsedFile,
    items: list[tuple[int, Any]],
    read: Callable[[int, Any], None],
) -> None:
    """`read` each item at its line; a RowError becomes a problem there."""
    for line, item in items:
        at = doc.line_of(item, line)
        try:
            read(at, item)
        except RowError as exc:
            out.problem(exc.line or at, str(exc))


# -- Chatwoot -------------------------------------------------------------------------------


def read_chatwoot(doc: JsonDoc) -> ParsedFile:
    """Conversations of Chatwoot message objects (see the module's docstring)."""
    out = ParsedFile("chatwoot", problems=list(doc.problems))
    convs = _Conversations(out)
    messages: list[tuple[int, Any]] = []
    for line, record in doc.records:
        if isinstance(record, dict) and isinstance(record.get("payload"), list):
            messages.extend((doc.line_of(m, line), m) for m in record["payload"])
        elif isinstance(record, dict) and "message_type" in record:
            messages.append((line, record))
        else:
            out.problem(
                line,
                "expected a Chatwoot message (message_type, content, created_at, "
                f'conversation_id) or a messages response {{"payload": [...]}}, got {brief(record)}',
            )
    _each_item(doc, out, messages, lambda at, m: _chatwoot_message(convs, at, m))
    return convs.done()


def _chatwoot_message(convs: _Conversations, line: int, raw: Any) -> None:
    message = _mapping(raw, "a message")
    conv = convs.get(external_id(message.get("conversation_id"), "conversation_id"), line)
    try:
        kind: Any = message.get("message_type")
        if isinstance(kind, int) and not isinstance(kind, bool):
            kind = _CHATWOOT_TYPES.get(kind, kind)
        if kind not in ("incoming", "outgoing", "activity", "template"):
            raise RowError(
                f"message_type {brief(message.get('message_type'))} is not 0 (incoming), "
                "1 (outgoing), 2 (activity) or 3 (template)"
            )
        private = _flag(message.get("private"), "private", False)
        time = parse_time(message.get("created_at"), "created_at")
        content = message.get("content")
        if kind in ("activity", "template") or private or content in (None, ""):
            convs.out.ignored += 1  # not a message, an internal note, or an attachment alone
            return
        if convs.repeated(conv.external_id, message.get("id")):
            return
        role: StoreRole = "user"
        if kind == "outgoing":
            sender = message.get("sender")
            sender_type = sender.get("type") if isinstance(sender, dict) else None
            sender_type = sender_type or message.get("sender_type")
            bot = isinstance(sender_type, str) and sender_type.lower() in _BOT_SENDERS
            role = "bot" if bot else "agent"
        conv.turns.append(ParsedTurn(role, clean_text(content, "content"), time))
    except RowError:
        conv.bad = True
        raise


# -- Zendesk --------------------------------------------------------------------------------


def read_zendesk(doc: JsonDoc) -> ParsedFile:
    """Conversations of Zendesk tickets with their comments (see the module's docstring)."""
    out = ParsedFile("zendesk", problems=list(doc.problems))
    first_line: dict[str, int] = {}

    def read(line: int, record: Any) -> None:
        conv = _zendesk_ticket(doc, out, line, record)
        if conv.external_id in first_line:
            raise RowError(
                f"ticket {brief(conv.external_id)} again (first on line "
                f"{first_line[conv.external_id]}); give each ticket once with all its comments"
            )
        first_line[conv.external_id] = line
        if conv.turns:
            _in_time_order(conv)
            out.conversations.append(conv)
        else:
            out.ignored += 1  # internal notes alone

    _each_item(doc, out, doc.records, read)
    out.dropped = len(out.problems)  # one record, one ticket
    return out


def _zendesk_ticket(doc: JsonDoc, out: ParsedFile, line: int, raw: Any) -> ParsedConversation:
    record = _mapping(raw, "a Zendesk record")
    if "ticket" not in record or not isinstance(record.get("comments"), list):
        raise RowError(
            'expected a ticket with its comments: {"ticket": {"id", "requester_id", ...}, '
            f'"comments": [...]}}, got {brief(record)}'
        )
    ticket = _mapping(record["ticket"], "ticket")
    via = ticket.get("via")
    conv = ParsedConversation(
        external_id(ticket.get("id"), "ticket.id"),
        line,
        channel=channel_name(via.get("channel") if isinstance(via, dict) else None, "via.channel"),
        started_at=parse_time(ticket.get("created_at"), "ticket.created_at"),
    )
    requester = ticket.get("requester_id")
    end_users = {requester} if requester is not None else set()
    users = record.get("users")
    if isinstance(users, list):
        end_users |= {
            u.get("id") for u in users if isinstance(u, dict) and u.get("role") == "end-user"
        }
    end_users.discard(None)
    if not end_users:
        raise RowError(
            "the ticket has no requester_id (and no end-user in users): the customer's "
            "comments cannot be told from agents'"
        )
    seen: set[str] = set()
    for i, raw_comment in enumerate(record["comments"]):
        at = doc.line_of(raw_comment, line)
        try:
            comment = _mapping(raw_comment, f"comments[{i}]")
            if not _flag(comment.get("public"), f"comments[{i}].public", True):
                out.ignored += 1  # an internal note
                continue
            key = comment.get("id")
            if isinstance(key, str | int) and str(key) in seen:
                continue
            seen.add(str(key))
            body = comment.get("plain_body")
            body = body if isinstance(body, str) and body.strip() else comment.get("body")
            role: StoreRole = "user" if comment.get("author_id") in end_users else "agent"
            conv.turns.append(
                ParsedTurn(
                    role,
                    clean_text(body, f"comments[{i}].body"),
                    parse_time(comment.get("created_at"), f"comments[{i}].created_at"),
                )
            )
        except RowError as exc:
            raise RowError(f"ticket {brief(conv.external_id)}: {exc}", at) from None
    return conv


# -- Rasa -----------------------------------------------------------------------------------


def read_rasa(doc: JsonDoc) -> ParsedFile:
    """Conversations of Rasa tracker-store events (see the module's docstring)."""
    out = ParsedFile("rasa", problems=list(doc.problems))
    events: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    first_line: dict[str, int] = {}
    bad: set[str] = set()

    def read(line: int, raw: Any) -> None:
        record = _mapping(raw, "a Rasa record")
        sender = external_id(record.get("sender_id"), "sender_id")
        first_line.setdefault(sender, line)
        try:
            if isinstance(record.get("events"), list):
                for event in record["events"]:
                    events.setdefault(sender, []).append(
                        (doc.line_of(event, line), _mapping(event, "an event"))
                    )
            elif isinstance(record.get("type_name"), str) and isinstance(record.get("data"), str):
                events.setdefault(sender, []).append((line, _sql_row_event(record["data"])))
            elif isinstance(record.get("event"), str):
                events.setdefault(sender, []).append((line, record))
            else:
                raise RowError(
                    "expected a tracker (sender_id, events), an event (event, sender_id) "
                    f"or a SQL tracker-store row (sender_id, type_name, data), got {brief(record)}"
                )
        except RowError:
            bad.add(sender)
            raise

    _each_item(doc, out, doc.records, read)
    for sender, sender_events in events.items():
        for conv in _rasa_sessions(out, sender, first_line[sender], sender_events):
            conv.bad = conv.bad or sender in bad
            out.conversations.append(conv)
    return out


def _sql_row_event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except (ValueError, RecursionError):
        raise RowError("data is not an event in JSON") from None
    return _mapping(event, "data")


def _rasa_sessions(
    out: ParsedFile, sender: str, line: int, events: list[tuple[int, dict[str, Any]]]
) -> list[ParsedConversation]:
    sessions = [ParsedConversation(sender, line)]
    for at, event in events:
        name = event.get("event")
        conv = sessions[-1]
        try:
            if name in ("session_started", "restart"):
                if conv.turns:
                    n = len(sessions) + 1
                    sessions.append(ParsedConversation(external_id(f"{sender}#{n}"), at))
                continue
            if name not in ("user", "bot"):
                out.ignored += 1  # actions, slots, loops: not messages
                continue
            time = parse_time(event.get("timestamp"), "timestamp")
            text = event.get("text")
            if text is None or (name == "user" and _is_payload(text)):
                out.ignored += 1  # a custom payload, an image, a button's intent
                continue
            if name == "user" and conv.channel is None:
                conv.channel = channel_name(event.get("input_channel"), "input_channel")
            role: StoreRole = "user" if name == "user" else "bot"
            conv.turns.append(ParsedTurn(role, clean_text(text), time))
        except RowError as exc:
            out.problem(at, f"sender {brief(sender)}: {exc}")
            conv.bad = True
    return [s for s in sessions if s.turns or s.bad]


def _is_payload(text: Any) -> bool:
    return isinstance(text, str) and _RASA_PAYLOAD.fullmatch(text.strip()) is not None
