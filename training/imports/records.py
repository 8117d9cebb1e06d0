"""What every import format reads into: conversations of turns, and problems by line.

A reader never raises on a bad row: it reports a `Problem` (the line and what to fix)
and goes on, so that one run lists every bad row and the caller decides, by `--strict`,
whether one problem refuses the file. What it cannot read at all (not UTF-8, not the
format) is an `ImportFileError`.

The checks here are the ones every format shares: ids, roles, texts and times.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from deskbot.bot.core.errors import DataError
from deskbot.knowledge.files.safe_yaml import brief

__all__ = [
    "FORMATS",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "Format",
    "ImportFileError",
    "ParsedConversation",
    "ParsedFile",
    "ParsedTurn",
    "Problem",
    "RowError",
    "clean_text",
    "external_id",
    "parse_time",
    "role_of",
]

Format = Literal["jsonl", "csv", "chatwoot", "zendesk", "rasa"]
FORMATS: Final[tuple[Format, ...]] = ("jsonl", "csv", "chatwoot", "zendesk", "rasa")
# The store's roles: a customer's turn is "user", as in live conversations.
StoreRole = Literal["user", "agent", "bot"]

MAX_ID_CHARS: Final = 128  # Conversation.external_id
MAX_CHANNEL_CHARS: Final = 32  # Conversation.channel
# A ticket's e-mail can be long; past this it is a quoted history or an attachment
# pasted in, not a message anyone learns from.
MAX_TEXT_CHARS: Final = 20_000
# Times outside these years are a unit mistake (milliseconds read as seconds) or junk.
_YEARS = (1990, 2200)
# Epoch numbers past this are milliseconds (10**11 s is the year 5138).
_MILLIS_FROM: Final = 10**11
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ROLES: Final[dict[str, StoreRole]] = {
    "customer": "user",
    "user": "user",
    "agent": "agent",
    "bot": "bot",
}


class ImportFileError(DataError):
    """A file that cannot be imported at all, or a bad row under `--strict`:
    `FILE[:LINE]: what to fix`. Nothing of the file was stored."""


class RowError(ValueError):
    """A bad value in a row: what to fix, without the file (the reader adds it) and with
    the line when it is not the record's own (a message deep in a pretty-printed file)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Problem:
    """A bad row: its line (1-based) and what to fix."""

    line: int
    message: str

    def where(self, file: str) -> str:
        return f"{file}:{self.line}: {self.message}"


@dataclass
class ParsedTurn:
    role: StoreRole
    text: str
    time: datetime | None


@dataclass
class ParsedConversation:
    """A conversation as read: its id in the source, where it starts in the file, its
    channel and start time if the file says, and its turns in order."""

    external_id: str
    line: int
    channel: str | None = None
    started_at: datetime | None = None
    turns: list[ParsedTurn] = field(default_factory=list)
    bad: bool = False  # a row of it was bad: skipped whole, never stored in part


@dataclass
class ParsedFile:
    """What a reader found: conversations in file order, problems, and how many records
    were not messages (activity, private notes, actions, slots: left out on purpose)."""

    format: Format
    conversations: list[ParsedConversation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: int = 0
    dropped: int = 0  # conversations refused whole before they were read (a bad line)

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(line, message))


def _valid_unicode(text: str) -> str:
    """`text` without lone surrogates (JSON's "\\ud800"), which no database stores."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean_text(value: Any, what: str = "text") -> str:
    """A message's text as stored: line ends as \\n, no control characters, trimmed."""
    if not isinstance(value, str):
        raise RowError(f"{what} must be a string, got {brief(value)}")
    text = _valid_unicode(value).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        raise RowError(f"{what} is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise RowError(f"{what} has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return text


def external_id(value: Any, what: str = "id") -> str:
    """A conversation's id in its source: text or a whole number, one line, not too long."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(f"{what} must be a string or an integer, got {brief(value)}")
    text = _valid_unicode(str(value)).strip()
    if not text:
        raise RowError(f"{what} is empty")
    if len(text) > MAX_ID_CHARS:
        raise RowError(f"{what} has {len(text):,} characters; the limit is {MAX_ID_CHARS}")
    if _CONTROL.search(text) or "\n" in text or "\t" in text:
        raise RowError(f"{what} {brief(text)} holds control characters")
    return text


def channel_name(value: Any, what: str = "channel") -> str | None:
    """An optional channel name ("email", "web", ...)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RowError(f"{what} must be a string, got {brief(value)}")
    text = _CONTROL.sub("", _valid_unicode(value)).strip()
    if len(text) > MAX_CHANNEL_CHARS:
        raise RowError(f"{what} has {len(text)} characters; the limit is {MAX_CHANNEL_CHARS}")
    return text or None


def role_of(value: Any, what: str = "role") -> StoreRole:
    """customer (or user), agent or bot, in any case: the store's role."""
    role = _ROLES.get(value.strip().lower()) if isinstance(value, str) else None
    if role is None:
        raise RowError(f"{what} {brief(value)} is not one of customer, agent, bot")
    return role


def parse_time(value: Any, what: str = "time") -> datetime | None:
    """A time: ISO 8601 text (a time without an offset is UTC) or Unix seconds (a number
    or digits; over 10^11, milliseconds). None or "" is no time."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowError(f"{what} must be ISO 8601 or Unix seconds, got {brief(value)}")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d{1,20}(\.\d{1,9})?", text):
            return _from_epoch(float(text), what, value)
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise RowError(
                f"{what} {brief(value)} is not a time: use ISO 8601 "
                "(2024-03-01T10:15:00Z) or Unix seconds"
            ) from None
        when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        return _in_range(when.astimezone(UTC), what, value)
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer past float's range
            raise RowError(f"{what} {brief(value)} is out of range") from None
        return _from_epoch(seconds, what, value)
    raise RowError(f"{what} must be ISO 8601 or Unix seconds, got {brief(value)}")


def _from_epoch(seconds: float, what: str, raw: Any) -> datetime:
    if not math.isfinite(seconds):
        raise RowError(f"{what} {brief(raw)} is not a time")
    if abs(seconds) >= _MILLIS_FROM:
        seconds /= 1000.0
    try:
        when = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise RowError(f"{what} {brief(raw)} is out of range") from None
    return _in_range(when, what, raw)


def _in_range(when: datetime, what: str, raw: Any) -> datetime:
    if not _YEARS[0] <= when.year <= _YEARS[1]:
        raise RowError(f"{what} {brief(raw)} is in the year {when.year}; is the unit right?")
    return when
