"""Intent training data: CSV (`text,category`) or Rasa-style `nlu.yml`.

The label `oos` marks out-of-scope examples. They fit the out-of-scope detector and
are scored as out-of-scope, never learnt as an intent. `out_of_scope` (what the
classifier predicts, `deskbot.bot.core.types.OUT_OF_SCOPE`) means the same wherever a
label is read: `as_label` turns either spelling into `OOS_LABEL`, the one name the
training code uses.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from deskbot.bot.core.errors import DataError
from deskbot.bot.core.types import OUT_OF_SCOPE
from deskbot.knowledge.files.safe_yaml import brief, load_yaml

OOS_LABEL = "oos"
MAX_TEXT_CHARS = 2_000


def as_label(label: str) -> str:
    """A label as the training code names it: out of scope, however spelt, is `OOS_LABEL`.

    Used where labels come in: data files, the store's labels and predictions, a
    classifier's predictions. Nothing past those readers compares against both spellings.
    """
    return OOS_LABEL if label == OUT_OF_SCOPE else label


@dataclass(frozen=True)
class IntentDataset:
    """Texts with their labels (`oos` allowed), and where they came from.

    Labels `out_of_scope` become `oos` on creation (see `as_label`).
    """

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    source: str = ""
    sha256: str = ""

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError("texts and labels differ in length")
        if OUT_OF_SCOPE in self.labels:  # a dataset holds one name for out of scope
            object.__setattr__(self, "labels", tuple(as_label(y) for y in self.labels))

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def intents(self) -> list[str]:
        """The in-scope intents, sorted."""
        return sorted({label for label in self.labels if label != OOS_LABEL})

    @property
    def has_oos(self) -> bool:
        return OOS_LABEL in self.labels

    def counts(self) -> Counter[str]:
        return Counter(self.labels)

    def subset(self, rows: Sequence[int]) -> IntentDataset:
        return IntentDataset(
            tuple(self.texts[i] for i in rows),
            tuple(self.labels[i] for i in rows),
            self.source,
            self.sha256,
        )

    def without_intents(self, intents: set[str], *, as_oos: bool) -> IntentDataset:
        """Drop `intents`, or (with `as_oos`) relabel their examples as out of scope."""
        texts, labels = [], []
        for t, label in zip(self.texts, self.labels, strict=True):
            if label in intents:
                if not as_oos:
                    continue
                label = OOS_LABEL
            texts.append(t)
            labels.append(label)
        return IntentDataset(tuple(texts), tuple(labels), self.source, self.sha256)

    def few_shot(self, per_intent: int, *, seed: int = 0) -> IntentDataset:
        """`per_intent` examples of each intent (all of an intent with fewer), drawn with `seed`."""
        rng = random.Random(seed)
        by_label: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            by_label.setdefault(label, []).append(i)
        rows: list[int] = []
        for label in sorted(by_label):
            idx = by_label[label]
            rows.extend(rng.sample(idx, min(per_intent, len(idx))))
        return self.subset(sorted(rows))

    def split(self, valid_fraction: float, *, seed: int = 0) -> tuple[IntentDataset, IntentDataset]:
        """A stratified split: every label with at least 2 examples has one in each part."""
        rng = random.Random(seed)
        by_label: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            by_label.setdefault(label, []).append(i)
        train_rows: list[int] = []
        valid_rows: list[int] = []
        for label in sorted(by_label):
            idx = by_label[label][:]
            rng.shuffle(idx)
            n_valid = max(1, round(len(idx) * valid_fraction)) if len(idx) >= 2 else 0
            valid_rows.extend(idx[:n_valid])
            train_rows.extend(idx[n_valid:])
        return self.subset(sorted(train_rows)), self.subset(sorted(valid_rows))


def read_data_file(
    file: Path,
    *,
    binary: str,
    error: type[DataError] = DataError,
    nul_scan: int | None = 8192,
) -> tuple[bytes, str]:
    """The bytes and text of a data file: UTF-8 (a byte-order mark allowed), not binary,
    not empty.

    Args:
        binary: what to say of a binary file (a NUL byte in its first `nul_scan` bytes;
            None: anywhere), after `FILE: `.
        error: the DataError raised, its message `FILE[:LINE]: what to fix`.
    """
    if not file.is_file():
        raise error(f"{file}: no such file")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise error(f"{file}: cannot be read: {exc.strerror}") from None
    if b"\x00" in raw[:nul_scan]:
        raise error(f"{file}: {binary}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"{file}:{line}: not UTF-8 text (bad byte at offset {exc.start}); re-save it as UTF-8"
        ) from None
    if not text.strip():
        raise error(f"{file}: the file is empty")
    return raw, text


def load_intents(path: str | Path) -> IntentDataset:
    """Read a CSV (`text,category`) or YAML (Rasa `nlu:` style) intents file.

    Raises:
        DataError: naming the file (and line) and what to fix.
    """
    file = Path(path)
    raw, text = read_data_file(
        file, binary="a binary file, not intents data (expected UTF-8 CSV or YAML)"
    )
    suffix = file.suffix.lower()
    if suffix == ".csv":
        texts, labels = _read_csv(text, file)
    elif suffix in (".yml", ".yaml"):
        texts, labels = _read_nlu_yaml(text, file)
    else:
        raise DataError(
            f"{file}: unknown format {suffix!r}; use .csv (text,category) or .yml (Rasa nlu)"
        )
    if not texts:
        raise DataError(f"{file}: no examples")
    return IntentDataset(tuple(texts), tuple(labels), str(file), hashlib.sha256(raw).hexdigest())


def load_project_intents(train: Path | None, discovered: Path | None) -> IntentDataset:
    """The project's intents file with, when the file exists, the examples agents approved
    in the console's Discover tab (`intents.discovered_data`), one dataset.

    Raises:
        DataError: neither file, or one that `load_intents` refuses.
    """
    parts = [load_intents(p) for p in (train, discovered) if p is not None and p.is_file()]
    if train is not None and not train.is_file():
        raise DataError(f"{train}: no such file")
    if not parts:
        raise DataError(
            "no training data: set intents.train_data, or approve candidates in the "
            "console's Discover tab"
        )
    if len(parts) == 1:
        return parts[0]
    return IntentDataset(
        sum((d.texts for d in parts), ()),
        sum((d.labels for d in parts), ()),
        " + ".join(d.source for d in parts),
        hashlib.sha256("".join(d.sha256 for d in parts).encode()).hexdigest(),
    )


def _read_csv(text: str, file: Path) -> tuple[list[str], list[str]]:
    # newline="": csv reads \r, \n and \r\n line ends itself; split lines would make it
    # refuse a bare \r.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{file}: the file is empty") from None
    except csv.Error as exc:
        raise DataError(f"{file}:{reader.line_num}: not readable as CSV: {exc}") from None
    if "text" not in header or not ({"category", "intent", "label"} & set(header)):
        shown = ",".join(brief(h, 40) if len(h) > 40 else h for h in header[:10])
        raise DataError(
            f"{file}: expected columns 'text,category', found {shown or 'none'}"
            + (f" and {len(header) - 10} more" if len(header) > 10 else "")
        )
    ti = header.index("text")
    li = next(header.index(c) for c in ("category", "intent", "label") if c in header)
    texts, labels = [], []
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:  # a cell past csv's 131,072-character limit
            raise DataError(f"{file}:{reader.line_num}: not readable as CSV: {exc}") from None
        if row is None:
            break
        line = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{file}:{line}: {len(row)} columns, the header has {len(header)}")
        t, label = normalize_text(row[ti]), row[li].strip()
        _check_row(t, label, file, line)
        texts.append(t)
        labels.append(label)
    return texts, labels


_ENTITY_MARKUP = re.compile(r"\[([^\]]+)\]\([^)]+\)|\[([^\]]+)\]\{[^}]+\}")


def _read_nlu_yaml(text: str, file: Path) -> tuple[list[str], list[str]]:
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nlu"), list):
        raise DataError(f"{file}: expected a mapping with an 'nlu:' list (Rasa nlu.yml style)")
    texts, labels = [], []
    for n, block in enumerate(doc["nlu"], start=1):
        if not isinstance(block, dict) or "intent" not in block:
            continue  # synonyms, regexes, lookups: not examples
        if not isinstance(block["intent"], str | int | float):
            raise DataError(
                f"{file}: block {n}: 'intent' must be a name, got {brief(block['intent'])}"
            )
        label = str(block["intent"]).strip()
        examples = block.get("examples")
        if isinstance(examples, str):
            items = [
                ln.strip()[1:].strip() for ln in examples.splitlines() if ln.strip().startswith("-")
            ]
        elif isinstance(examples, list):
            if not all(isinstance(x, str | int | float) for x in examples):
                raise DataError(
                    f"{file}: intent {brief(label)} (block {n}): each example must be text"
                )
            items = [str(x).strip() for x in examples]
        else:
            raise DataError(f"{file}: intent {brief(label)} (block {n}) has no 'examples'")
        for item in items:
            plain = normalize_text(_ENTITY_MARKUP.sub(lambda m: m.group(1) or m.group(2), item))
            _check_row(plain, label, file, None)
            texts.append(plain)
            labels.append(label)
    return texts, labels


def normalize_text(text: str) -> str:
    """Collapse runs of whitespace (newlines inside quoted CSV cells included) to one space."""
    return " ".join(text.split())


def _check_row(text: str, label: str, file: Path, line: int | None) -> None:
    where = f"{file}:{line}" if line else str(file)
    if text and not label:
        raise DataError(f"{where}: empty category")
    check_text(text, where)


def check_text(text: str, where: str) -> None:
    """A DataError at `where` (`FILE:LINE`) for an empty, too long or unprintable text."""
    if not text:
        raise DataError(f"{where}: empty text")
    if len(text) > MAX_TEXT_CHARS:
        raise DataError(f"{where}: text of {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text):
        raise DataError(f"{where}: control characters in the text")


def check_trainable(data: IntentDataset, *, min_per_intent: int = 2) -> None:
    """Refuse data a classifier cannot learn from, saying which labels are short."""
    counts = data.counts()
    intents = [label for label in counts if label != OOS_LABEL]
    if len(intents) < 2:
        raise DataError(f"{data.source}: at least 2 intents are needed, found {len(intents)}")
    short = sorted(label for label in intents if counts[label] < min_per_intent)
    if short:
        shown = ", ".join(f"{s} ({counts[s]})" for s in short[:10])
        raise DataError(
            f"{data.source}: intents need at least {min_per_intent} examples each; too few: {shown}"
            + (f" and {len(short) - 10} more" if len(short) > 10 else "")
        )
