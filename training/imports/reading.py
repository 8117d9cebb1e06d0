"""One export file read in the format it names, or in the one it is recognised as."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

from deskbot.knowledge.files.safe_yaml import brief
from deskbot.training.imports.formats import CSV_COLUMNS, read_csv, read_jsonl
from deskbot.training.imports.records import Format, ImportFileError, ParsedFile
from deskbot.training.imports.source import JsonDoc, json_document, read_text
from deskbot.training.imports.vendors import read_chatwoot, read_rasa, read_zendesk

__all__ = ["FormatChoice", "detect_json_format", "read_export"]

FormatChoice = Format | Literal["auto"]

_JSON_READERS: Final[dict[Format, Callable[[JsonDoc], ParsedFile]]] = {
    "jsonl": read_jsonl,
    "chatwoot": read_chatwoot,
    "zendesk": read_zendesk,
    "rasa": read_rasa,
}
_HINT: Final = (
    "expected 'turns' (jsonl), 'payload' or 'message_type' (chatwoot), 'ticket' and "
    "'comments' (zendesk), 'events' or 'event' with 'sender_id' (rasa), or a CSV header "
    "conversation_id,role,text; pass --format"
)


def read_export(path: Path, fmt: FormatChoice = "auto") -> ParsedFile:
    """Read `path` as `fmt` ("auto": recognise it from its first record).

    Raises:
        ImportFileError: the file cannot be read at all, or its format not recognised.
    """
    text = read_text(path)
    if fmt == "csv" or (fmt == "auto" and text.lstrip()[:1] not in ("{", "[")):
        if fmt == "auto":
            header = text.lstrip().split("\n", 1)[0].lower()
            if not all(column in header for column in CSV_COLUMNS):
                raise ImportFileError(
                    f"{path}:1: cannot tell the format: not JSON, and no CSV header "
                    f"conversation_id,role,text; {_HINT}"
                )
        return read_csv(path, text)
    doc = json_document(path, text)
    chosen = detect_json_format(path, doc) if fmt == "auto" else fmt
    return _JSON_READERS[chosen](doc)


def detect_json_format(path: Path, doc: JsonDoc) -> Format:
    """The format of a JSON export, from its first record."""
    first = next(((line, r) for line, r in doc.records if isinstance(r, dict)), None)
    if first is None:
        line = doc.records[0][0] if doc.records else 1
        got = brief(doc.records[0][1]) if doc.records else "no records"
        raise ImportFileError(f"{path}:{line}: cannot tell the format from {got}; {_HINT}")
    line, record = first
    found = _format_of(record)
    if found is None:
        keys = ", ".join(brief(k, 30) for k in list(record)[:8]) or "none"
        raise ImportFileError(
            f"{path}:{line}: cannot tell the format from a record with the keys {keys}; {_HINT}"
        )
    return found


def _format_of(record: dict[str, Any]) -> Format | None:
    if "turns" in record:
        return "jsonl"
    if "payload" in record or "message_type" in record:
        return "chatwoot"
    if "comments" in record or "ticket" in record:
        return "zendesk"
    if "sender_id" in record and ("events" in record or "event" in record or "type_name" in record):
        return "rasa"
    return None
