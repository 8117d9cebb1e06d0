"""The FAQ proposals file (`faq-proposals.yaml` beside the index), read and written.

Proposals come from agents' answers (`deskbot.training.data.faq_proposals`) and from
answers mined from agents' replies in past conversations (`deskbot discover answers`,
`deskbot.training.data.answers`). Agents review them in the console's FAQ proposals tab
(approve, edit, reject); the nightly job indexes the approved ones. This module is the
one reader and writer the console and the miner share (the console may not import
`training`): `entries:`, a mapping each, with `id`, `status` (pending, approved,
rejected), `question`, `answer`, `intent`, and what the proposer adds (`variants`,
`support`, `source`, ...). Changes are made under a lock on the file, so the console
and a mining run do not lose each other's writes.

Example:
    >>> proposals = ProposalsFile(index_dir.parent / PROPOSALS_FILE)   # doctest: +SKIP
    >>> proposals.decide("mined-card_arrival", APPROVED, answer="It takes 3 days.")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from deskbot.knowledge.errors import KnowledgeError
from deskbot.knowledge.files.fsutil import atomic_write_text, file_lock
from deskbot.knowledge.files.safe_yaml import load_yaml

PROPOSALS_FILE = "faq-proposals.yaml"
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
STATUSES = (PENDING, APPROVED, REJECTED)
MAX_ANSWER_CHARS = 4_000
HEADER = (
    "# FAQ entries proposed from agents' answers. Review each in the console's FAQ\n"
    "# proposals tab (or set status to 'approved' or 'rejected' here); approved ones are\n"
    "# indexed at the next `deskbot retrain`.\n"
)

Entry = dict[str, Any]


class ProposalsError(KnowledgeError):
    """The proposals file cannot be read, or a change to it is refused."""


class ProposalsFile:
    """The proposals YAML file: read, changed under its lock, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[Entry]:
        """The entries (mappings only); none when the file does not exist."""
        if not self.path.is_file():
            return []
        try:
            raw = load_yaml(self.path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ProposalsError(f"{self.path}: not valid YAML ({exc}); fix it by hand") from exc
        entries = raw.get("entries", []) if isinstance(raw, dict) else []
        if not isinstance(entries, list):
            raise ProposalsError(f"{self.path}: 'entries' must be a list")
        return [e for e in entries if isinstance(e, dict)]

    def write(self, entries: list[Entry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.path,
            HEADER + yaml.safe_dump({"entries": entries}, sort_keys=False, allow_unicode=True),
        )

    @contextmanager
    def changing(self) -> Iterator[list[Entry]]:
        """The entries, for the block to change in place; written when it ends without error."""
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            entries = self.read()
            yield entries
            self.write(entries)

    def pending(self) -> list[Entry]:
        return [e for e in self.read() if e.get("status", PENDING) == PENDING]

    def get(self, pid: str) -> Entry | None:
        return next((e for e in self.read() if str(e.get("id")) == pid), None)

    def decide(
        self,
        pid: str,
        status: str,
        *,
        question: str | None = None,
        answer: str | None = None,
        by: str = "",
        before_write: Callable[[Entry, list[str]], None] | None = None,
    ) -> Entry:
        """Set a pending proposal's status (and, for an edit, its question or answer).

        `before_write` runs with the changed entry and the keys this call changed,
        before the file is written (the
        console records its audit row there: a row that cannot be written stops the
        change). A decision (not an edit left pending) by `by` is marked
        `decision_recorded`, so the nightly job does not record it a second time.

        Raises:
            ProposalsError: an unknown id, a proposal already decided, an empty answer.
        """
        if status not in STATUSES:
            raise ProposalsError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        with self.changing() as entries:
            entry = next((e for e in entries if str(e.get("id")) == pid), None)
            if entry is None:
                raise ProposalsError(f"no proposal {pid!r} (reload the list)")
            if entry.get("status", PENDING) != PENDING:
                raise ProposalsError(f"proposal {pid!r} is already {entry.get('status')}")
            changed: list[str] = []
            for key, value in (("question", question), ("answer", answer)):
                if value is None:
                    continue
                clean = value.strip()
                if not clean:
                    raise ProposalsError(f"the {key} must not be empty")
                if len(clean) > MAX_ANSWER_CHARS:
                    raise ProposalsError(
                        f"the {key} has {len(clean)} characters; the limit is {MAX_ANSWER_CHARS}"
                    )
                if clean != entry.get(key):
                    entry[key] = clean
                    entry["edited"] = True
                    changed.append(key)
            entry["status"] = status
            if by and status != PENDING:
                entry["decided_by"] = by
                entry["decided_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                entry["decision_recorded"] = True
            if before_write is not None:
                before_write(entry, changed)
        return entry
