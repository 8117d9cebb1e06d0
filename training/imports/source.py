"""Reading an export file: its text, and its JSON records with the line each starts on.

JSON exports come two ways: JSON Lines (one record a line, as a script that pages an
API writes them) or one document (an API response saved as is, often pretty-printed).
Both are read here, and every object keeps the line it starts on, so that a bad message
deep in a pretty-printed response is still reported as `FILE:LINE`.
"""

from __future__ import annotations

import bisect
import json
import json.scanner
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deskbot.training.data.datasets import read_data_file
from deskbot.training.imports.records import ImportFileError, Problem

__all__ = ["JsonDoc", "json_document", "read_text"]


def read_text(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark allowed), or an `ImportFileError`."""
    _raw, text = read_data_file(
        path,
        binary="a binary file, not an export (expected UTF-8 JSON or CSV)",
        error=ImportFileError,
    )
    return text


class _LocatingDecoder(json.JSONDecoder):
    """A JSON decoder that remembers where each object starts (pure Python: slower than
    the C scanner, so used only for documents that are not JSON Lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: dict[int, int] = {}
        parse_object: Any = getattr(self, "parse_object")  # noqa: B009 (untyped in typeshed)

        def located(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
            obj, end = parse_object(s_and_end, *args)
            self.starts[id(obj)] = s_and_end[1] - 1
            return obj, end

        self.parse_object = located
        self.scan_once = getattr(json.scanner, "py_make_scanner")(self)  # noqa: B009


@dataclass
class JsonDoc:
    """A file's JSON records, each with its line; `problems` are lines that are not JSON."""

    records: list[tuple[int, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    _starts: dict[int, int] = field(default_factory=dict)
    _newlines: list[int] = field(default_factory=list)

    def add(self, line: int, value: Any) -> None:
        """A line's value: a record, or, if it is a list, one record per element."""
        if isinstance(value, list):
            self.records.extend((line, item) for item in value)
        else:
            self.records.append((line, value))

    def line_of(self, obj: Any, default: int) -> int:
        """The line `obj` starts on in a whole document; `default` in JSON Lines."""
        start = self._starts.get(id(obj))
        if start is None:
            return default
        return bisect.bisect_right(self._newlines, start) + 1


def _lines(text: str) -> Iterator[tuple[int, str]]:
    # Only \n ends a JSON line: a \r or \u2028 inside a string is text, not a line end.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line


def _decode(line: str) -> Any:
    return json.loads(line)


def _json_error(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "not JSON this program can read: nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} (column {exc.colno})"
    return f"not JSON this program can read: {' '.join(str(exc).split())[:120]}"


def json_document(path: Path, text: str) -> JsonDoc:
    """The JSON records of `text`: JSON Lines when its first line is JSON on its own
    (later lines that are not JSON become problems), else one document, whose elements
    are the records if it is a list. A document that is not JSON is an ImportFileError."""
    doc = JsonDoc()
    lines = _lines(text)
    first = next(lines, None)
    if first is not None:
        try:
            value = _decode(first[1])
        except (ValueError, RecursionError):
            pass
        else:
            doc.add(first[0], value)
            for number, line in lines:
                try:
                    doc.add(number, _decode(line))
                except (ValueError, RecursionError) as exc:
                    doc.problems.append(Problem(number, _json_error(exc)))
            return doc
    decoder = _LocatingDecoder()
    try:
        value = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{path}:{exc.lineno}: {_json_error(exc)}") from None
    except (ValueError, RecursionError) as exc:
        raise ImportFileError(f"{path}: {_json_error(exc)}") from None
    doc._starts = decoder.starts
    doc._newlines = [m.start() for m in re.finditer("\n", text)]
    for item in value if isinstance(value, list) else [value]:
        doc.records.append((doc.line_of(item, 1), item))
    return doc
