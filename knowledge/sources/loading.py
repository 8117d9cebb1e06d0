"""Every kind of knowledge file, read into `IndexedPassage`s.

FAQ files (.yaml, .yml, .csv, .json, .jsonl) give one passage per entry; documents
(.md, .markdown, .html, .htm, .txt) give one per heading section, split by length (see
`deskbot.knowledge.sources.documents`). A folder stands for the supported files under it.

Intent-labelled utterances (the classifier's training CSV, `text,category`) can be
attached to the FAQ entries of their intent as alternative questions: `read_examples`.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable
from pathlib import Path

from deskbot.knowledge.errors import SourceError
from deskbot.knowledge.passage import IndexedPassage
from deskbot.knowledge.sources.documents import DEFAULT_MAX_CHARS, DOCUMENT_SUFFIXES, read_document
from deskbot.knowledge.sources.faq import (
    FaqEntry,
    RowProblem,
    brief_header,
    csv_errors,
    csv_rows,
    decode_text,
    load_faq,
    read_faq,
)

FAQ_SUFFIXES = (".yaml", ".yml", ".csv", ".json", ".jsonl")
SUPPORTED_SUFFIXES = FAQ_SUFFIXES + DOCUMENT_SUFFIXES
_LABEL_COLUMNS = ("category", "intent", "label")


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, plus the supported files under each folder named (sorted, no hidden ones)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise SourceError(
                    f"{path}: no knowledge files in this folder "
                    f"(looked for {', '.join(SUPPORTED_SUFFIXES)})"
                )
            out.extend(found)
        else:
            out.append(path)
    return out


def faq_entries(paths: Iterable[str | Path]) -> list[FaqEntry]:
    """The FAQ entries of the FAQ files among `paths` (folders expanded; documents left
    out): what the trainers that learn from the FAQ read."""
    files = [p for p in expand_paths(paths) if p.suffix.lower() in FAQ_SUFFIXES]
    return [e for f in files for e in load_faq(f)]


def read_source(
    path: str | Path, *, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[list[IndexedPassage], list[RowProblem]]:
    """Read one FAQ or document file into passages, with a problem for each bad row.

    Raises:
        SourceError: the whole file is unusable (missing, empty, binary, unknown format).
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix in FAQ_SUFFIXES:
        entries, problems = read_faq(file)
        return [e.passage(position=i) for i, e in enumerate(entries)], problems
    if suffix in DOCUMENT_SUFFIXES:
        return read_document(file, max_chars=max_chars)
    if not file.is_file():
        raise SourceError(f"{file}: no such file")
    raise SourceError(
        f"{file}: unknown format {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}"
    )


def read_examples(
    path: str | Path, *, per_intent: int | None = None, seed: int = 0
) -> tuple[dict[str, list[str]], list[RowProblem]]:
    """Intent-labelled utterances from a CSV with columns `text` and `category` (or `intent`).

    Args:
        path: the CSV file (the intent classifier's training data has this shape).
        per_intent: keep at most this many utterances per intent (a seeded sample);
            None keeps all.
        seed: the sample's seed.

    Returns:
        The utterances by intent, and a problem for each unusable row.
    """
    file = Path(path)
    name = str(file)
    if not file.is_file():
        raise SourceError(f"{name}: no such file")
    text = decode_text(file.read_bytes(), name, "a CSV of labelled utterances")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    with csv_errors(name, reader):
        header = reader.fieldnames or []
    label = next((c for c in _LABEL_COLUMNS if c in header), None)
    if "text" not in header or label is None:
        raise SourceError(
            f"{name}: the header must have columns 'text' and 'category' (or 'intent'); "
            f"found {brief_header(header)}"
        )
    by_intent: dict[str, list[str]] = {}
    problems: list[RowProblem] = []
    for row in csv_rows(name, reader):
        utterance = (row.get("text") or "").strip()
        intent = (row.get(label) or "").strip()
        if not utterance or not intent:
            problems.append(RowProblem(name, reader.line_num, f"missing 'text' or '{label}'"))
            continue
        by_intent.setdefault(intent, []).append(utterance)
    if per_intent is not None:
        rng = random.Random(seed)
        for intent, texts in by_intent.items():
            if len(texts) > per_intent:
                by_intent[intent] = rng.sample(texts, per_intent)
    return by_intent, problems
