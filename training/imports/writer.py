"""Imported conversations into the store: redacted, marked, once, in one transaction.

- **Redacted** on the way in: every turn's text (the customer's, the agent's, the
  bot's) goes through `PiiRedactor`, as logged text does before it becomes training
  data; an external id that holds personal data (a Rasa sender id that is an e-mail
  address) is stored as its hash.
- **Marked**: `Conversation.source` (the format) and `external_id`; status closed; a
  token hash no session token has (no SHA-256 digest is "imported"), so no customer
  ever opens one; no handoff, so no queue shows one; the dashboard leaves them out.
- **Once**: a conversation whose (source, external id) is stored already is counted as
  a duplicate and skipped; the store's unique index refuses one that another import
  wrote meanwhile, and then the whole file is rolled back.
- **One transaction per file**: all of a file's conversations, or none.

`updated_at` is the import's time: the retention period (`deskbot db prune`) counts
from the import, not from the conversation's last message, which may be years old.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import col
from tqdm.auto import tqdm

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.models import Conversation, TurnRecord, utcnow
from deskbot.training.data.pii import PiiRedactor
from deskbot.training.imports.records import ImportFileError, ParsedConversation

__all__ = ["IMPORTED_TOKEN_HASH", "ConversationWriter", "Written", "conversation_key"]

IMPORTED_TOKEN_HASH: Final = "imported"
_CHUNK: Final = 500  # ids a lookup names at once
_INSERT_ROWS: Final = 5_000  # rows an INSERT statement carries


def conversation_key(source: str, external: str) -> str:
    """The store's id of an imported conversation: the same for the same source and id."""
    return hashlib.sha256(f"{source}\x1f{external}".encode()).hexdigest()[:32]


@dataclass
class Written:
    """What a file's write stored and left out."""

    conversations: int = 0
    turns: int = 0
    duplicates: int = 0
    redacted: Counter[str] = field(default_factory=Counter)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ConversationWriter:
    """Stores parsed conversations of one source (see the module's docstring).

    Args:
        engine: the store's engine, migrated.
        redactor: the PII redactor (default: every kind).
    """

    def __init__(self, engine: Engine, redactor: PiiRedactor | None = None) -> None:
        self.engine = engine
        self.redactor = redactor or PiiRedactor()

    def stored_id(self, external: str, counts: Counter[str]) -> str:
        """`external` as stored: its hash if it holds personal data."""
        red = self.redactor.redact(external)
        if not red.changed:
            return external
        counts.update(red.counts)
        return "pii:" + hashlib.sha256(external.encode()).hexdigest()[:40]

    def write(
        self,
        conversations: Sequence[ParsedConversation],
        source: str,
        *,
        path: str,
        progress: bool = False,
    ) -> Written:
        """Store `conversations` (all with turns, none bad) of `source` in one transaction.

        Raises:
            ImportFileError: another import stored some of them meanwhile (nothing written).
        """
        result = Written()
        now = utcnow()
        keyed: dict[str, ParsedConversation] = {}
        for conv in conversations:
            external = self.stored_id(conv.external_id, result.redacted)
            keyed.setdefault(external, conv)
        with self.engine.begin() as conn:
            stored = set()
            for chunk in _chunks(list(keyed), _CHUNK):
                stored |= set(
                    conn.execute(
                        select(col(Conversation.external_id)).where(
                            col(Conversation.source) == source,
                            col(Conversation.external_id).in_(chunk),
                        )
                    ).scalars()
                )
            result.duplicates = len(conversations) - len(keyed) + len(stored)
            fresh = [(ext, conv) for ext, conv in keyed.items() if ext not in stored]
            conv_rows, turn_rows = self._rows(fresh, source, now, result, progress, path)
            try:
                for rows in _chunks(conv_rows, _INSERT_ROWS):
                    conn.execute(insert(Conversation), list(rows))
                for rows in _chunks(turn_rows, _INSERT_ROWS):
                    conn.execute(insert(TurnRecord), list(rows))
            except IntegrityError:
                raise ImportFileError(
                    f"{path}: another import stored some of these conversations meanwhile; "
                    "nothing of this file was imported: run it again"
                ) from None
            except SQLAlchemyError as exc:
                reason = " ".join(str(getattr(exc, "orig", exc)).split())[:200]
                raise StoreError(
                    f"{path}: the database refused the import ({reason}); "
                    "nothing of this file was imported"
                ) from None
        result.conversations = len(conv_rows)
        result.turns = len(turn_rows)
        return result

    def _rows(
        self,
        fresh: list[tuple[str, ParsedConversation]],
        source: str,
        now: datetime,
        result: Written,
        progress: bool,
        path: str,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        conv_rows: list[dict[str, Any]] = []
        turn_rows: list[dict[str, Any]] = []
        total = sum(len(c.turns) for _, c in fresh)
        redact = self.redactor.redact
        with tqdm(
            total=total, desc=f"importing {path}", unit="turn", disable=not progress, leave=False
        ) as bar:
            for external, conv in fresh:
                cid = conversation_key(source, external)
                start = conv.started_at or next((t.time for t in conv.turns if t.time), now)
                conv_rows.append(
                    {
                        "id": cid,
                        "token_hash": IMPORTED_TOKEN_HASH,
                        "channel": conv.channel or source,
                        "status": "closed",
                        "created_at": start,
                        "updated_at": now,
                        "source": source,
                        "external_id": external,
                    }
                )
                when = start
                for seq, turn in enumerate(conv.turns, start=1):
                    when = turn.time or when
                    red = redact(turn.text)
                    result.redacted.update(red.counts)
                    turn_rows.append(
                        {
                            "conversation_id": cid,
                            "seq": seq,
                            "role": turn.role,
                            "text": red.text,
                            "created_at": when,
                            "passages": [],
                            "model_versions": {},
                            "latency_ms": {},
                        }
                    )
                bar.update(len(conv.turns))
        return conv_rows, turn_rows
