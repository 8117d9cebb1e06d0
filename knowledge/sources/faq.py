"""FAQ sources: YAML, CSV and JSON/JSONL files of (question, answer, intent, tags, url).

An entry may also list `alternatives`: other ways customers ask the same question
(CSV: separated by "|"). Each is embedded as its own vector of the entry, which helps
retrieval much more than a longer text would (see benchmarks/quality/retrieval_quality.py).

Example:
    >>> entries = load_faq("faq.yaml")                     # doctest: +SKIP
    >>> entries[0].id, entries[0].intent                   # doctest: +SKIP
    ('card-arrival', 'card_arrival')
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import yaml

from deskbot.knowledge.errors import SourceError
from deskbot.knowledge.files.safe_yaml import brief, load_yaml_with_node
from deskbot.knowledge.passage import IndexedPassage

_Row = TypeVar("_Row", covariant=True)

MAX_ANSWER_CHARS = 20_000
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


@dataclass(frozen=True, slots=True)
class FaqEntry:
    """One question with its answer. `id` is stable across re-ingestion."""

    id: str
    question: str
    answer: str
    source: str
    intent: str | None = None
    tags: tuple[str, ...] = ()
    url: str | None = None
    line: int | None = None
    alternatives: tuple[str, ...] = ()

    @property
    def content_hash(self) -> str:
        """Changes when anything that is embedded or shown changes."""
        h = hashlib.sha256()
        parts = (self.question, self.answer, self.intent or "", self.url or "", *self.tags)
        for part in (*parts, "\x01", *self.alternatives):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()[:16]

    def passage(self, *, position: int = 0) -> IndexedPassage:
        """The entry as the index stores it; `position`: its place in the file."""
        return IndexedPassage(
            id=self.id,
            text=self.answer,
            source=self.source,
            question=self.question,
            intent=self.intent,
            tags=self.tags,
            url=self.url,
            content_hash=self.content_hash,
            line=self.line,
            position=position,
            alternatives=self.alternatives,
        )


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that could not be used, with where it is."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


def load_faq(path: str | Path, *, strict: bool = True) -> list[FaqEntry]:
    """Read one FAQ file. With `strict`, the first bad row raises `SourceError`."""
    entries, problems = read_faq(path)
    if strict and problems:
        raise SourceError(
            str(problems[0]) + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    return entries


def read_faq(path: str | Path) -> tuple[list[FaqEntry], list[RowProblem]]:
    """Read one FAQ file; returns the good entries and a problem for each bad row."""
    file = Path(path)
    name = str(file)
    if not file.is_file():
        raise SourceError(f"{name}: no such file")
    text = decode_text(file.read_bytes(), name, "an FAQ (expected UTF-8 YAML, CSV or JSON)")
    suffix = file.suffix.lower()
    if suffix in (".yaml", ".yml"):
        rows = _yaml_rows(text, name)
    elif suffix == ".csv":
        rows = _csv_rows(text, name)
    elif suffix == ".jsonl":
        rows = _jsonl_rows(text, name)
    elif suffix == ".json":
        rows = _json_rows(text, name)
    else:
        raise SourceError(
            f"{name}: unknown FAQ format {suffix!r}; use .yaml, .yml, .csv, .json or .jsonl"
        )
    return _validate(rows, name)


def decode_text(data: bytes, name: str, expected: str) -> str:
    """`data` as text, or a `SourceError` for a binary, non-UTF-8 or empty file."""
    if b"\x00" in data[:8192]:
        raise SourceError(f"{name}: a binary file, not {expected}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{name}: not UTF-8 text (bad byte at offset {exc.start})") from exc
    if not text.strip():
        raise SourceError(f"{name}: the file is empty")
    return text


def _yaml_rows(text: str, name: str) -> Iterator[tuple[int | None, object]]:
    try:
        raw, doc = load_yaml_with_node(text)
    except yaml.YAMLError as exc:
        raise SourceError(f"{name}: not valid YAML: {exc}") from exc
    items = raw.get("entries") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise SourceError(f"{name}: expected a list of entries (or a mapping with 'entries:')")
    nodes: list[yaml.Node] = []
    if doc is not None:
        top = doc
        if isinstance(raw, dict):
            top = next((v for k, v in doc.value if k.value == "entries"), doc)
        if isinstance(top, yaml.SequenceNode):
            nodes = list(top.value)
    for i, item in enumerate(items):
        line = nodes[i].start_mark.line + 1 if i < len(nodes) else None
        yield line, item


def _csv_rows(text: str, name: str) -> Iterator[tuple[int | None, object]]:
    # newline="": the csv module reads \r, \n and \r\n line ends itself (and keeps
    # line breaks inside quoted cells); a StringIO that split lines would refuse a bare \r.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    with csv_errors(name, reader):
        header = set(reader.fieldnames or [])
    if not {"question", "answer"} <= header:
        raise SourceError(
            f"{name}: the header must have columns 'question' and 'answer' "
            f"(optional: id, intent, tags, url, alternatives); found {brief_header(header)}"
        )
    for row in csv_rows(name, reader):
        if "tags" in row and isinstance(row["tags"], str):
            row["tags"] = [t.strip() for t in row["tags"].split(";") if t.strip()]
        if "alternatives" in row and isinstance(row["alternatives"], str):
            row["alternatives"] = [a.strip() for a in row["alternatives"].split("|") if a.strip()]
        yield reader.line_num, row


class CsvReader(Protocol[_Row]):
    """What `csv_rows` needs of a `csv.reader` or `csv.DictReader`."""

    @property
    def line_num(self) -> int: ...

    def __next__(self) -> _Row: ...


def csv_rows(name: str, reader: CsvReader[_Row]) -> Iterator[_Row]:
    """The rows of a csv reader; a `SourceError` (with the line) for what csv refuses."""
    while True:
        with csv_errors(name, reader):
            row = next(reader, None)
        if row is None:
            return
        yield row


@contextmanager
def csv_errors(name: str, reader: CsvReader[object]) -> Iterator[None]:
    """Turn the csv module's errors (a cell past its 131,072-character limit) into a
    `SourceError` naming the file and line."""
    try:
        yield
    except csv.Error as exc:
        # line_num counts the lines read before the one csv refused.
        raise SourceError(f"{name}:{reader.line_num + 1}: not readable as CSV: {exc}") from None


def brief_header(header: Iterable[str | None]) -> str:
    """A CSV header for an error message: at most 10 names, each cut to 40 characters."""
    names = sorted(str(h) for h in header)
    shown = [brief(n, 40) for n in names[:10]]
    return "[" + ", ".join(shown) + (f", and {len(names) - 10} more]" if len(names) > 10 else "]")


def _json_rows(text: str, name: str) -> Iterator[tuple[int | None, object]]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    except RecursionError:
        raise SourceError(f"{name}: not valid JSON: nested too deeply") from None
    except ValueError as exc:  # an integer past Python's 4,300 digits
        raise SourceError(f"{name}: not valid JSON: {exc}") from None
    items = raw.get("entries") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise SourceError(f"{name}: expected a list of entries (or an object with 'entries')")
    lines = _json_item_lines(text, raw)
    for i, item in enumerate(items):
        yield (lines[i] if i < len(lines) else None), item


def _json_item_lines(text: str, raw: object) -> list[int]:
    """The line each entry of the top-level (or `entries`) array starts on."""
    m = re.search(r'"entries"\s*:\s*\[', text) if isinstance(raw, dict) else re.search(r"\[", text)
    if m is None:
        return []
    decoder = json.JSONDecoder()
    pos = m.end()
    lines: list[int] = []
    line, counted = 1, 0  # newlines are counted once, not from the start for each entry
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return lines
        line += text.count("\n", counted, pos)
        counted = pos
        lines.append(line)
        try:
            _, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return lines


def _jsonl_rows(text: str, name: str) -> Iterator[tuple[int | None, object]]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            row = SourceError(f"not valid JSON: {exc.msg}")
        except RecursionError:
            row = SourceError("not valid JSON: nested too deeply")
        except ValueError as exc:  # an integer past Python's 4,300 digits
            row = SourceError(f"not valid JSON: {exc}")
        yield n, row


class _Refused(Exception):
    """A row that is not an FAQ entry; the message says why."""


def _validate(
    rows: Iterable[tuple[int | None, object]], name: str
) -> tuple[list[FaqEntry], list[RowProblem]]:
    entries: list[FaqEntry] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for index, (line, row) in enumerate(rows, start=1):
        where = line if line is not None else index
        try:
            entry = _entry(row, name, where, seen)
        except _Refused as exc:
            problems.append(RowProblem(name, where, str(exc)))
            continue
        seen[entry.id] = where
        entries.append(entry)
    return entries, problems


def _entry(row: object, name: str, where: int, seen: dict[str, int]) -> FaqEntry:
    """The entry in `row` (read from `name` at `where`), or `_Refused`."""
    if isinstance(row, Exception):
        raise _Refused(str(row))
    if not isinstance(row, dict):
        raise _Refused(f"an entry must be a mapping, got {type(row).__name__}")
    question = _text(row.get("question"))
    answer = _text(row.get("answer"))
    if not question:
        raise _Refused("missing 'question'")
    if not answer:
        raise _Refused("missing 'answer'")
    if len(answer) > MAX_ANSWER_CHARS:
        raise _Refused(f"answer has {len(answer)} characters; the limit is {MAX_ANSWER_CHARS}")
    entry_id = _text(row.get("id")) or slug(question)
    if not _ID_RE.match(entry_id):
        raise _Refused(
            f"id {brief(entry_id)} must be letters, digits, '_', '.', ':' or '-' (at most 128)"
        )
    if entry_id in seen:
        raise _Refused(f"duplicate id {entry_id!r} (first at line {seen[entry_id]})")
    tags = _strings(row.get("tags"), "tags")
    alternatives = _strings(row.get("alternatives"), "alternatives")
    return FaqEntry(
        id=entry_id,
        question=question,
        answer=answer,
        source=name,
        intent=_text(row.get("intent")) or None,
        tags=tags,
        url=_text(row.get("url")) or None,
        line=where,
        alternatives=tuple(
            dict.fromkeys(a.strip() for a in alternatives if a.strip() and a != question)
        ),
    )


def _strings(value: object, key: str) -> tuple[str, ...]:
    """A string or a list of strings as a tuple (empty when absent), or `_Refused`."""
    if isinstance(value, str):
        return (value,) if value else ()
    if not value:
        return ()
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _Refused(f"'{key}' must be a list of strings")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) else ""


def slug(text: str, *, digest: bool = True) -> str:
    """A short id-safe form of `text`; with `digest`, a hash of it keeps slugs distinct."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")
    if not digest:
        return base
    return f"{base or 'entry'}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:6]}"
