"""`import_conversations`: export files into the store, file by file.

Each file is read whole first, then written in one transaction, so a file is imported
entirely or not at all. A bad row is a `FILE:LINE: what to fix` problem: without
`strict` its conversation is skipped and counted and the rest of the file imported;
with `strict` the first bad row stops the import, and that file stores nothing (files
before it stay imported; importing them again adds nothing).

Example:
    >>> report = import_conversations(store.engine, [Path("chats.jsonl")])  # doctest: +SKIP
    >>> report.summary()["conversations"]                                      # doctest: +SKIP
    1200
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine

from deskbot.training.data.pii import PiiRedactor
from deskbot.training.imports.reading import FormatChoice, read_export
from deskbot.training.imports.records import ImportFileError
from deskbot.training.imports.writer import ConversationWriter

__all__ = ["FileReport", "ImportReport", "import_conversations", "import_file"]

logger = logging.getLogger(__name__)

# Problems a report keeps word for word; the rest are counted.
MAX_LISTED_PROBLEMS: Final = 50
# Files shorter than this many turns import without a progress bar.
PROGRESS_FROM_TURNS: Final = 5_000


@dataclass
class FileReport:
    """One file's outcome. `refused` is the error that stopped it (nothing stored)."""

    path: str
    format: str | None = None
    conversations: int = 0
    turns: int = 0
    skipped: int = 0  # conversations with a bad row
    bad_rows: int = 0
    duplicates: int = 0  # stored by an earlier import
    ignored: int = 0  # records that are no message: activity, internal notes, actions
    problems: list[str] = field(default_factory=list)
    refused: str | None = None
    redacted: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "conversations": self.conversations,
            "turns": self.turns,
            "skipped": self.skipped,
            "bad_rows": self.bad_rows,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "refused": self.refused,
            "problems": self.problems,
            "pii_redacted": dict(sorted(self.redacted.items())),
        }


@dataclass
class ImportReport:
    """Every file's outcome, and the time the import took."""

    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every row of every file was imported or was a duplicate."""
        return all(f.refused is None and f.bad_rows == 0 for f in self.files)

    def summary(self) -> dict[str, Any]:
        counts = ("conversations", "turns", "skipped", "bad_rows", "duplicates", "ignored")
        redacted: Counter[str] = Counter()
        for f in self.files:
            redacted.update(f.redacted)
        return {
            **{name: sum(getattr(f, name) for f in self.files) for name in counts},
            "refused_files": sum(f.refused is not None for f in self.files),
            "pii_redacted": dict(sorted(redacted.items())),
            "seconds": round(self.seconds, 3),
            "files": [f.to_dict() for f in self.files],
        }


def import_file(
    writer: ConversationWriter,
    path: Path,
    fmt: FormatChoice = "auto",
    *,
    strict: bool = False,
    progress: bool = False,
) -> FileReport:
    """Import one file (see the module's docstring).

    Raises:
        ImportFileError: the file cannot be read, its format is not recognised, or (with
            `strict`) a row is bad. Nothing of the file was stored.
    """
    parsed = read_export(path, fmt)
    report = FileReport(str(path), parsed.format, ignored=parsed.ignored)
    problems = sorted(parsed.problems, key=lambda p: p.line)
    if problems and strict:
        raise ImportFileError(
            f"{problems[0].where(str(path))} (--strict: nothing of this file was imported)"
        )
    report.bad_rows = len(problems)
    report.problems = [p.where(str(path)) for p in problems[:MAX_LISTED_PROBLEMS]]
    good = [c for c in parsed.conversations if not c.bad and c.turns]
    report.skipped = parsed.dropped + sum(c.bad for c in parsed.conversations)
    turns = sum(len(c.turns) for c in good)
    written = writer.write(
        good, parsed.format, path=str(path), progress=progress and turns >= PROGRESS_FROM_TURNS
    )
    report.conversations = written.conversations
    report.turns = written.turns
    report.duplicates = written.duplicates
    report.redacted = written.redacted
    logger.info(
        "imported %s (%s): %d conversations, %d turns, %d skipped, %d duplicates",
        path,
        parsed.format,
        report.conversations,
        report.turns,
        report.skipped,
        report.duplicates,
    )
    return report


def import_conversations(
    engine: Engine,
    paths: Sequence[Path],
    fmt: FormatChoice = "auto",
    *,
    strict: bool = False,
    progress: bool = False,
    redactor: PiiRedactor | None = None,
) -> ImportReport:
    """Import `paths` into the store on `engine`, each file in one transaction.

    Without `strict`, a file that cannot be read is reported (`FileReport.refused`)
    and the next one imported.

    Raises:
        ImportFileError: with `strict`, the first file refused or row found bad.
    """
    writer = ConversationWriter(engine, redactor)
    report = ImportReport()
    started = time.perf_counter()
    for path in paths:
        try:
            report.files.append(import_file(writer, path, fmt, strict=strict, progress=progress))
        except ImportFileError as exc:
            if strict:
                raise
            report.files.append(FileReport(str(path), refused=str(exc)))
    report.seconds = time.perf_counter() - started
    return report
