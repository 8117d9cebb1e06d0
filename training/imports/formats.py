"""deskbot's own import formats: JSON Lines and CSV.

JSON Lines, one conversation a line (times optional: ISO 8601 or Unix seconds)::

    {"id": "c-1", "channel": "chat", "started_at": "2024-03-01T10:00:00Z",
     "turns": [{"role": "customer", "text": "my card hasn't arrived", "time": "..."},
               {"role": "agent", "text": "It ships in 3-5 days.", "time": "..."}]}

CSV, one turn a row, a conversation's rows in order (they need not be adjacent)::

    conversation_id,role,text,time
    c-1,customer,my card hasn't arrived,2024-03-01T10:00:00Z

Roles are customer (or user), agent and bot.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from deskbot.knowledge.files.safe_yaml import brief
from deskbot.training.imports.records import (
    ImportFileError,
    ParsedConversation,
    ParsedFile,
    ParsedTurn,
    RowError,
    channel_name,
    clean_text,
    external_id,
    parse_time,
    role_of,
)
from deskbot.training.imports.source import JsonDoc

__all__ = ["CSV_COLUMNS", "read_csv", "read_jsonl"]

CSV_COLUMNS = ("conversation_id", "role", "text")
CSV_OPTIONAL = ("time", "channel")


def read_jsonl(doc: JsonDoc) -> ParsedFile:
    """Conversations of deskbot's JSON Lines (see the module's docstring)."""
    out = ParsedFile("jsonl", problems=list(doc.problems))
    first_line: dict[str, int] = {}
    for line, record in doc.records:
        try:
            conv = _jsonl_conversation(record, line, doc)
        except RowError as exc:
            out.problem(exc.line or line, str(exc))
            continue
        if conv.external_id in first_line:
            out.problem(
                line,
                f"conversation {brief(conv.external_id)} again (first on line "
                f"{first_line[conv.external_id]}); write each conversation on one line",
            )
            continue
        first_line[conv.external_id] = line
        out.conversations.append(conv)
    out.dropped = len(out.problems)  # one line, one conversation
    return out


def _jsonl_conversation(record: Any, line: int, doc: JsonDoc) -> ParsedConversation:
    if not isinstance(record, dict):
        raise RowError(f'expected a conversation {{"id", "turns"}}, got {brief(record)}')
    if "id" not in record:
        raise RowError("the conversation has no 'id'")
    conv = ParsedConversation(
        external_id(record["id"]),
        line,
        channel=channel_name(record.get("channel")),
        started_at=parse_time(record.get("started_at"), "started_at"),
    )
    parse_time(record.get("ended_at"), "ended_at")
    turns = record.get("turns")
    if not isinstance(turns, list) or not turns:
        raise RowError("'turns' must be a non-empty list of {role, text, time}")
    for i, turn in enumerate(turns):
        at = doc.line_of(turn, line)
        if not isinstance(turn, dict):
            raise RowError(f"turns[{i}] must be an object {{role, text, time}}", at)
        try:
            conv.turns.append(
                ParsedTurn(
                    role_of(turn.get("role"), f"turns[{i}].role"),
                    clean_text(turn.get("text"), f"turns[{i}].text"),
                    parse_time(turn.get("time"), f"turns[{i}].time"),
                )
            )
        except RowError as exc:
            raise RowError(str(exc), at) from None
    return conv


def read_csv(path: Path, text: str) -> ParsedFile:
    """Conversations of a CSV of turns (see the module's docstring)."""
    out = ParsedFile("csv")
    # newline="": csv reads \r, \n and \r\n line ends itself, and newlines in quoted cells.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise ImportFileError(f"{path}:{reader.line_num}: not readable as CSV: {exc}") from None
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        shown = ",".join(brief(h, 30) if len(h) > 30 else h for h in header[:8])
        raise ImportFileError(
            f"{path}:1: expected the columns conversation_id,role,text (time and channel "
            f"optional), found {shown or 'none'}"
        )
    index = {name: header.index(name) for name in (*CSV_COLUMNS, *CSV_OPTIONAL) if name in header}
    conversations: dict[str, ParsedConversation] = {}
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader, None)
        except csv.Error as exc:  # a cell past csv's 131,072-character limit, a NUL
            raise ImportFileError(f"{path}:{start}: not readable as CSV: {exc}") from None
        if row is None:
            break
        if not any(cell.strip() for cell in row):
            continue
        conv: ParsedConversation | None = None
        try:
            ext = external_id(_cell(row, index["conversation_id"]), "conversation_id")
            conv = conversations.get(ext)
            if conv is None:
                conv = conversations[ext] = ParsedConversation(ext, start)
            if len(row) != len(header):
                raise RowError(f"{len(row)} columns, the header has {len(header)}")
            turn = ParsedTurn(
                role_of(row[index["role"]]),
                clean_text(row[index["text"]]),
                parse_time(row[index["time"]]) if "time" in index else None,
            )
            if "channel" in index and conv.channel is None:
                conv.channel = channel_name(row[index["channel"]])
        except RowError as exc:
            out.problem(start, str(exc))
            if conv is not None:
                conv.bad = True
            continue
        conv.turns.append(turn)
    out.conversations = list(conversations.values())
    return out


def _cell(row: list[str], i: int) -> str:
    if i >= len(row):
        raise RowError(f"{len(row)} columns: no conversation_id")
    return row[i]
