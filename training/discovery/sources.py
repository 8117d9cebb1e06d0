"""Where the messages to cluster come from: a CSV file, or a project's conversation store.

A CSV has a `text` column and, optionally, a `category` column that is only used to
score the clusters (never shown to the method). From a store, each conversation gives
its opening customer message(s): the customer's turns before the first reply, joined.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from deskbot.bot.core.errors import DataError
from deskbot.training.data.datasets import (
    MAX_TEXT_CHARS,
    check_text,
    normalize_text,
    read_data_file,
)

if TYPE_CHECKING:
    from _csv import Reader

CUSTOMER_ROLE = "user"


@dataclass(frozen=True)
class Messages:
    """Texts to cluster, each with an id (a CSV line, or a conversation id), and the
    categories when the source had them (for scoring only)."""

    texts: tuple[str, ...]
    ids: tuple[str, ...]
    categories: tuple[str, ...] | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)


def read_csv(path: str | Path) -> Messages:
    """Read `text` (and `category`, if present) from a UTF-8 CSV file.

    Raises:
        DataError: `FILE:LINE: what to fix` for the first bad row.
    """
    file = Path(path)
    _raw, text = read_data_file(
        file, binary="a binary file (NUL bytes), not a CSV of messages", nul_scan=None
    )
    reader = csv.reader(io.StringIO(text, newline=""))
    header, ti, ci = _columns(reader, file)
    texts: list[str] = []
    ids: list[str] = []
    categories: list[str] = []
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:  # an unclosed quote, a cell past csv's size limit
            raise DataError(f"{file}:{reader.line_num}: not readable as CSV: {exc}") from None
        if row is None:
            break
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{file}:{line}: {len(row)} columns, the header has {len(header)}")
        text = normalize_text(row[ti])
        check_text(text, f"{file}:{line}")
        if ci is not None:
            category = row[ci].strip()
            if not category:
                raise DataError(f"{file}:{line}: empty category (fill it or drop the column)")
            categories.append(category)
        texts.append(text)
        ids.append(f"line:{line}")
    if len(texts) < 2:
        raise DataError(f"{file}: {len(texts)} message(s); at least 2 are needed to cluster")
    return Messages(
        tuple(texts), tuple(ids), tuple(categories) if ci is not None else None, str(file)
    )


def _columns(reader: Reader, file: Path) -> tuple[list[str], int, int | None]:
    """The header's column names, and where `text` and (if present) `category` are."""
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise DataError(f"{file}:{reader.line_num}: not readable as CSV: {exc}") from None
    if "text" not in header:
        shown = ",".join(_printable(h[:40]) for h in header[:10])
        raise DataError(f"{file}:1: no 'text' column in the header (found {shown or 'none'})")
    for name in ("text", "category"):
        if header.count(name) > 1:  # which one is meant? Reading the first would be a guess.
            raise DataError(f"{file}:1: {header.count(name)} '{name}' columns in the header")
    return header, header.index("text"), header.index("category") if "category" in header else None


def _printable(cell: str) -> str:
    """`cell` for a one-line message: newlines, escape sequences, bidi overrides and stray
    byte-order marks written as Python escapes (`\\n`, `\\x1b`, `\\ufeff`), not printed."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cell)


def has_source_column() -> bool:
    """Whether the store's conversations record where they came from (imported or live)."""
    from deskbot.bot.store.models import Conversation

    return "source" in Conversation.model_fields


def read_store(engine: Engine, *, source: str | None = None, opening_only: bool = True) -> Messages:
    """Customers' messages from a migrated store: per conversation, its opening customer
    turns joined (or, with `opening_only=False`, every customer turn on its own).

    Args:
        source: only conversations of this `Conversation.source` (e.g. "imported"); None
            for all. Refused when the store has no such column.
    """
    from sqlmodel import Session, select

    from deskbot.bot.store.models import Conversation, TurnRecord

    query = (
        select(TurnRecord.conversation_id, TurnRecord.id, TurnRecord.role, TurnRecord.text)
        .join(Conversation, Conversation.id == TurnRecord.conversation_id)  # type: ignore[arg-type]
        .order_by(TurnRecord.conversation_id, TurnRecord.seq)  # type: ignore[arg-type]
    )
    if source is not None:
        if not has_source_column():
            raise DataError("this store does not record where conversations came from")
        query = query.where(getattr(Conversation, "source") == source)  # noqa: B009
    texts: list[str] = []
    ids: list[str] = []
    with Session(engine) as session:
        rows: Sequence[tuple[str, int, str, str]] = session.exec(query).all()  # type: ignore[assignment]
    current, done = "", False
    opening: list[str] = []
    for conversation_id, turn_id, role, text in [*rows, ("", 0, "", "")]:
        if conversation_id != current:
            if opening_only and opening:
                texts.append(_clip(" ".join(opening)))
                ids.append(current)
            current, opening, done = conversation_id, [], False
        if not conversation_id:
            break
        if role != CUSTOMER_ROLE:
            done = True
            continue
        clean = normalize_text(text)
        if not clean:
            continue
        if not opening_only:
            texts.append(_clip(clean))
            ids.append(f"{conversation_id}:{turn_id}")
        elif not done:
            opening.append(clean)
    return Messages(tuple(texts), tuple(ids), None, str(engine.url))


def _clip(text: str) -> str:
    return text[:MAX_TEXT_CHARS]
