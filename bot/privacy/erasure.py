"""GDPR erasure of a customer's data, and the retention period of raw conversation logs.

An erasure (`deskbot forget --customer ID`, `DELETE /api/me`, the console's admin
route) removes a customer's conversations with everything stored about them: turns
(feedback included), agents' labels of those turns, handoffs, dialogue state. What
other layers derived from those rows on disk (the nightly job's training bookkeeping,
FAQ proposals, neighbour banks of model versions) is removed by *erasure hooks*:
plug-ins in the entry-point group `deskbot.erasure`, since `bot` may not import the
layers that write those files.

A hook is called with the `ErasureScope`, the store and the config, and returns a context
manager: entering it removes the derived rows (and may hold a lock, e.g. so that no
retraining run reads the store meanwhile) and gives the counts; the store's rows are
deleted while every hook's context is open. A hook that cannot finish raises, and
then nothing is deleted from the store, so the erasure can simply be run again.

Retention (`privacy.retention_days`, `deskbot db prune`) deletes conversations idle
for longer than the period, in batches; it does not call the hooks: what the nightly
job learnt from old conversations stays, PII-redacted (see SECURITY.md).

Example:
    >>> report = Eraser(store, config).forget(customer_id="c-123")   # doctest: +SKIP
    >>> report.rows["turns"], report.derived                       # doctest: +SKIP
    (12, {'training.known_examples': 2})
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import TypedDict

from deskbot.bot.core.config import BotConfig
from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.audit import ERASURE, AuditEntry

logger = logging.getLogger(__name__)

ERASURE_HOOKS = "deskbot.erasure"
MAX_CUSTOMER_ID = 128

ErasureHook = Callable[
    ["ErasureScope", SqlConversationStore, BotConfig], AbstractContextManager[dict[str, int]]
]


class ErasureError(DeskbotError):
    """An erasure cannot be done now (the message says why and what to do)."""


def customer_hash(key: str, customer_id: str) -> str:
    """HMAC-SHA256 of `customer_id` under `key`, in hex: what the embedding site sends
    with a customer id to prove that it, and not the visitor, chose the id."""
    return hmac.new(key.encode("utf-8"), customer_id.encode("utf-8"), hashlib.sha256).hexdigest()


def check_customer_id(customer_id: str) -> str:
    """`customer_id` if usable as an id (1 to 128 printable characters), else ValueError."""
    if not customer_id or len(customer_id) > MAX_CUSTOMER_ID:
        raise ValueError(f"a customer id has 1 to {MAX_CUSTOMER_ID} characters")
    if (
        any(ord(c) < 32 or ord(c) == 0x7F for c in customer_id)
        or customer_id != customer_id.strip()
    ):
        raise ValueError("a customer id has no control characters and no outer spaces")
    return customer_id


@dataclass(frozen=True)
class ErasureScope:
    """What one erasure covers.

    Attributes:
        customer_id: the customer, or None for conversations erased by id.
        conversation_ids: the conversations.
        turn_ids: every turn of them.
        label_ids: agents' labels of those turns.
        customer_texts: what the customer wrote (derived copies are found by these).
        agent_texts: what agents and the bot wrote to the customer.
    """

    customer_id: str | None
    conversation_ids: tuple[str, ...]
    turn_ids: tuple[int, ...]
    customer_texts: tuple[str, ...]
    agent_texts: tuple[str, ...] = ()
    label_ids: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.conversation_ids


class ErasureCounts(TypedDict):
    """An `ErasureReport` as JSON (`deskbot forget`, `DELETE /api/me`, the admin route)."""

    conversations: int
    rows: dict[str, int]
    derived: dict[str, int]


@dataclass
class ErasureReport:
    """What an erasure or a prune removed: store rows per table, derived rows per hook."""

    conversations: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    derived: dict[str, int] = field(default_factory=dict)

    def add(self, rows: dict[str, int]) -> None:
        for name, n in rows.items():
            self.rows[name] = self.rows.get(name, 0) + n
        self.conversations = self.rows.get("conversations", 0)

    def to_dict(self) -> ErasureCounts:
        return {
            "conversations": self.conversations,
            "rows": dict(sorted(self.rows.items())),
            "derived": dict(sorted(self.derived.items())),
        }


def load_erasure_hooks() -> list[tuple[str, ErasureHook]]:
    """The installed erasure hooks (entry-point group `deskbot.erasure`), by name.

    A hook that cannot be imported makes the erasure fail: it would otherwise leave
    derived copies behind without anyone noticing.
    """
    hooks: list[tuple[str, ErasureHook]] = []
    for ep in sorted(metadata.entry_points(group=ERASURE_HOOKS), key=lambda e: e.name):
        try:
            hooks.append((ep.name, ep.load()))
        except ImportError as exc:
            raise ErasureError(
                f"erasure hook {ep.name} ({ep.value}) cannot be loaded: {exc}; "
                "reinstall deskbot before erasing"
            ) from exc
    return hooks


class Eraser:
    """Erases customers and prunes old conversations.

    Args:
        store: the conversation store.
        config: the bot's config (the hooks find derived files through it).
        hooks: erasure hooks; default: the installed ones (`load_erasure_hooks`).
    """

    def __init__(
        self,
        store: SqlConversationStore,
        config: BotConfig,
        hooks: Sequence[tuple[str, ErasureHook]] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self._hooks = list(hooks) if hooks is not None else None

    @property
    def hooks(self) -> list[tuple[str, ErasureHook]]:
        if self._hooks is None:
            self._hooks = load_erasure_hooks()
        return self._hooks

    def scope(
        self, *, customer_id: str | None = None, conversation_ids: Sequence[str] = ()
    ) -> ErasureScope:
        """The conversations of `customer_id` and/or the given ones, with their turns."""
        ids = list(dict.fromkeys(conversation_ids))
        if customer_id is not None:
            ids += [c for c in self.store.customer_conversation_ids(customer_id) if c not in ids]
        ids = [c for c in ids if self.store.get_conversation(c) is not None]
        turns = self.store.customer_turns(ids)
        turn_ids = tuple(int(t.id) for t in turns if t.id is not None)
        return ErasureScope(
            customer_id=customer_id,
            conversation_ids=tuple(ids),
            turn_ids=turn_ids,
            label_ids=tuple(int(x.id) for x in self.store.labels_for(turn_ids) if x.id),
            customer_texts=tuple(t.text for t in turns if t.role == "user" and t.text),
            agent_texts=tuple(t.text for t in turns if t.role != "user" and t.text),
        )

    def forget(
        self,
        *,
        customer_id: str | None = None,
        conversation_ids: Sequence[str] = (),
        requested_by: str = "cli",
        actor: str | None = None,
        address: str | None = None,
    ) -> ErasureReport:
        """Erase the customer's (or the given conversations') data everywhere.

        The audit log gets one `erasure` row by `actor` (from `address`), written with the
        deletion; it names neither the customer nor the conversations, and the rows
        about them lose those names (`deskbot.bot.store.audit`).

        Raises:
            ErasureError: nothing named, or a hook cannot finish now (nothing was erased).
        """
        if customer_id is None and not conversation_ids:
            raise ErasureError("name a customer id or conversation ids to erase")
        scope = self.scope(customer_id=customer_id, conversation_ids=conversation_ids)
        report = ErasureReport()
        if scope.empty:
            return report
        with ExitStack() as stack:
            for name, hook in self.hooks:
                counts = stack.enter_context(hook(scope, self.store, self.config))
                for what, n in counts.items():
                    report.derived[f"{name}.{what}"] = n
            audit = AuditEntry(
                actor or requested_by,
                ERASURE,
                object_type="customer" if customer_id is not None else "conversation",
                address=address,
                detail=f"{len(scope.conversation_ids)} conversations",
            )
            report.add(
                self.store.erase_conversations(
                    scope.conversation_ids,
                    kind="forget",
                    requested_by=requested_by,
                    audit=audit,
                )
            )
        logger.info(
            "erased %d conversations (%d turns) and %d derived rows, requested by %s",
            report.conversations,
            report.rows.get("turns", 0),
            sum(report.derived.values()),
            requested_by,
        )
        return report

    def prune(
        self,
        *,
        older_than: timedelta | None = None,
        now: datetime | None = None,
        batch: int = 500,
    ) -> ErasureReport:
        """Delete the conversations idle for longer than `older_than` (default: the
        config's `privacy.retention_days`), `batch` conversations per transaction.

        Raises:
            ErasureError: no period given and none configured.
        """
        if older_than is None:
            days = self.config.privacy.retention_days
            if days is None:
                raise ErasureError(
                    "no retention period: set privacy.retention_days in the config or pass --days"
                )
            older_than = timedelta(days=days)
        if older_than <= timedelta(0):
            raise ErasureError("the retention period must be positive")
        cutoff = (now or datetime.now(UTC)) - older_than
        report = ErasureReport()
        while True:
            ids = self.store.conversation_ids_idle_since(cutoff, limit=batch)
            if not ids:
                break
            rows = self.store.erase_conversations(ids, kind="prune", requested_by="retention")
            report.add(rows)
            if not rows.get("conversations"):  # deleted by someone else meanwhile
                break
        if report.conversations:
            logger.info(
                "pruned %d conversations idle since before %s",
                report.conversations,
                cutoff.isoformat(timespec="seconds"),
            )
        return report
