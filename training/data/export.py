"""Logged turns become supervised intent examples: the input of the nightly job.

What counts as an example, in order of trust:

1. **agent labels and corrections**: an agent named the intent of a customer's message
   (a label on the customer's turn, or on the bot's reply to it);
2. **confirmed predictions**: the customer gave the bot's reply a thumbs-up, or the
   conversation ended resolved without a handoff, and the prediction was confident.

Never exported: turns under dispute (a thumbs-down nobody labelled, agents who disagree),
out-of-scope predictions, any text of the test set (`intents.test_data`, compared by hash,
before and after redaction), and agent labels in quarantine (`exclude_labels`, see
`deskbot.training.nightly.quarantine`). Every text is redacted (`PiiRedactor`) as it is read, so
no personal data reaches the dataset, the reports or the model. Duplicates (same text
after normalisation) collapse into one example; an agent's label beats a confirmation.
A follow-up the bot read in its thread ("how long does it take?" after a card question)
is exported as the thread text it was read as (`deskbot.bot.nlu.context`): the model
learns the reading, not the bare words.

Example:
    >>> result = export_examples(store, heldout=heldout_keys(test_set))  # doctest: +SKIP
    >>> result.dataset().counts().most_common(3)                        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from deskbot.bot.store import AgentLabel, Conversation, Handoff, SqlConversationStore, TurnRecord
from deskbot.training.data.datasets import OOS_LABEL, IntentDataset, as_label, normalize_text
from deskbot.training.data.pii import PiiRedactor

logger = logging.getLogger(__name__)

AGENT = "agent"
CONFIRMED = "confirmed"


def text_key(text: str) -> str:
    """The identity of a message for deduplication and the held-out check.

    Case, whitespace and the final punctuation do not make two messages different.
    """
    norm = normalize_text(text).casefold().rstrip(" .!?")
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:32]


def heldout_keys(data: IntentDataset, redactor: PiiRedactor | None = None) -> frozenset[str]:
    """Hashes of an evaluation set's texts, raw and redacted: what export must never emit."""
    redactor = redactor or PiiRedactor()
    keys = {text_key(t) for t in data.texts}
    keys |= {text_key(redactor(t)) for t in data.texts}
    return frozenset(keys)


@dataclass(frozen=True)
class ExportSettings:
    """What the export trusts.

    Attributes:
        min_confidence: a confirmed prediction must have at least this calibrated confidence.
        resolved_statuses: conversation statuses that mean the customer's problem was solved.
    """

    min_confidence: float = 0.8
    resolved_statuses: tuple[str, ...] = ("resolved",)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within 0..1, got {self.min_confidence}")


@dataclass(frozen=True)
class Example:
    """One exported example: a redacted customer message and its intent.

    Attributes:
        labels: for agent examples, the `(label id, agent)` of every agent label that
            gave this intent to this text (duplicates merged); empty for confirmed ones.
    """

    text: str
    intent: str
    source: str  # AGENT or CONFIRMED
    turn_id: int
    labels: tuple[tuple[int, str], ...] = ()

    @property
    def key(self) -> str:
        return text_key(self.text)

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(sorted({agent for _, agent in self.labels}))


@dataclass
class ExportResult:
    """The examples, agent-labelled first, and what was left out and why."""

    examples: list[Example]
    stats: Counter[str] = field(default_factory=Counter)
    redacted: Counter[str] = field(default_factory=Counter)

    def dataset(self, source: str = "store export") -> IntentDataset:
        texts = tuple(e.text for e in self.examples)
        labels = tuple(e.intent for e in self.examples)
        digest = hashlib.sha256(
            "\n".join(f"{k}\t{y}" for k, y in sorted(zip(texts, labels, strict=True))).encode()
        ).hexdigest()
        return IntentDataset(texts, labels, source, digest)

    def summary(self) -> dict[str, Any]:
        by_source = Counter(e.source for e in self.examples)
        return {
            "examples": len(self.examples),
            "by_source": dict(sorted(by_source.items())),
            "left_out": dict(sorted(self.stats.items())),
            "pii_redacted": dict(sorted(self.redacted.items())),
        }


@dataclass
class _Turn:
    id: int
    conversation_id: str
    role: str
    text: str
    intent: str | None
    confidence: float | None
    feedback: int | None


def export_examples(
    store: SqlConversationStore,
    *,
    heldout: Iterable[str] = (),
    since: datetime | None = None,
    settings: ExportSettings | None = None,
    redactor: PiiRedactor | None = None,
    exclude_labels: Iterable[int] = (),
) -> ExportResult:
    """Read the store and return the supervised examples it holds.

    Args:
        store: the conversation store.
        heldout: `text_key`s of the test set (see `heldout_keys`); never exported. The
            nightly gate's validation stream is a share of what *is* exported
            (`deskbot.training.nightly.validation`).
        since: only labels, feedback and conversations from this time on.
        settings: what counts as confirmed.
        redactor: PII redaction (default: every kind).
        exclude_labels: ids of agent labels to ignore (the quarantine): as if never given.
    """
    settings = settings or ExportSettings()
    result = ExportResult([])
    rows = _read_store(store, since)
    log = _Log.from_rows(rows.turns, since)
    _read_labels(log, rows.labels, frozenset(exclude_labels), result.stats)
    _read_feedback(log)
    candidates = _agent_candidates(log, result.stats) + _confirmed_candidates(
        log, rows, settings, result.stats
    )
    result.examples = _choose(
        candidates, log, redactor or PiiRedactor(), frozenset(heldout), result
    )
    logger.info(
        "exported %d examples (%d from agents) from %d turns and %d labels",
        len(result.examples),
        sum(e.source == AGENT for e in result.examples),
        len(log.turns),
        len(rows.labels),
    )
    return result


@dataclass
class _StoreRows:
    turns: list[Any]
    labels: list[Any]
    statuses: dict[str, str]
    handed_off: set[str]


def _read_store(store: SqlConversationStore, since: datetime | None) -> _StoreRows:
    with store.engine.connect() as conn:
        q = select(
            col(TurnRecord.id),
            col(TurnRecord.conversation_id),
            col(TurnRecord.seq),
            col(TurnRecord.role),
            col(TurnRecord.text),
            col(TurnRecord.intent),
            col(TurnRecord.confidence),
            col(TurnRecord.feedback),
            col(TurnRecord.created_at),
            col(TurnRecord.reply),
        ).order_by(col(TurnRecord.conversation_id), col(TurnRecord.seq))
        turn_rows = list(conn.execute(q).all())
        label_q = select(
            col(AgentLabel.id),
            col(AgentLabel.turn_id),
            col(AgentLabel.agent),
            col(AgentLabel.intent),
            col(AgentLabel.answer_wrong),
        ).order_by(col(AgentLabel.id))
        if since is not None:
            label_q = label_q.where(col(AgentLabel.created_at) >= since)
        label_rows = list(conn.execute(label_q).all())
        statuses: dict[str, str] = {
            r[0]: r[1] for r in conn.execute(select(col(Conversation.id), col(Conversation.status)))
        }
        handed_off = {r[0] for r in conn.execute(select(col(Handoff.conversation_id)).distinct())}
    return _StoreRows(turn_rows, label_rows, statuses, handed_off)


@dataclass
class _Log:
    """The store's turns, and what agents and customers said about each customer message."""

    turns: dict[int, _Turn]
    customer_of: dict[int, int]  # turn id -> the customer message it is about
    recent: set[int]  # turns since `since`
    agent_intents: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    label_refs: dict[int, list[tuple[int, str, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    answer_disputed: set[int] = field(default_factory=set)
    thumbs: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    prediction: dict[int, tuple[str, float]] = field(default_factory=dict)
    # customer message -> the text it was read as in its thread (`Reading.explain`)
    read_as: dict[int, str] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, turn_rows: list[Any], since: datetime | None) -> _Log:
        """The customer's message each turn is about: a user turn itself, or the last user
        turn before a bot (or agent) turn in the same conversation."""
        log = cls({}, {}, set())
        last_user: dict[str, int] = {}
        for r in turn_rows:
            t = _Turn(r.id, r.conversation_id, r.role, r.text, r.intent, r.confidence, r.feedback)
            log.turns[t.id] = t
            if t.role == "user":
                last_user[t.conversation_id] = t.id
                log.customer_of[t.id] = t.id
            elif t.conversation_id in last_user:
                log.customer_of[t.id] = last_user[t.conversation_id]
                context = (r.reply or {}).get("context") if t.role == "bot" else None
                if isinstance(context, dict) and context.get("used") and context.get("read"):
                    log.read_as[last_user[t.conversation_id]] = str(context["read"])
            if since is None or r.created_at is None or _aware(r.created_at) >= _aware(since):
                log.recent.add(t.id)
        return log


def _read_labels(
    log: _Log, label_rows: list[Any], excluded: frozenset[int], stats: Counter[str]
) -> None:
    """1. agent labels, grouped by the customer message they are about."""
    for label_id, turn_id, agent, intent, answer_wrong in label_rows:
        assert label_id is not None  # a primary key
        if label_id in excluded:
            stats["quarantined_labels"] += 1
            continue
        cid = log.customer_of.get(turn_id)
        if cid is None:
            stats["label_without_customer_message"] += 1
            continue
        if intent:
            log.agent_intents[cid].add(as_label(intent))
            log.label_refs[cid].append((label_id, agent, as_label(intent)))
        elif answer_wrong:
            log.answer_disputed.add(cid)


def _read_feedback(log: _Log) -> None:
    """2. feedback and resolution: which customer messages were confirmed or disputed."""
    for t in log.turns.values():
        cid = log.customer_of.get(t.id)
        if cid is None:
            continue
        if t.feedback in (-1, 1) and t.id in log.recent:
            log.thumbs[cid].add(t.feedback)
        if t.role == "bot" and t.intent is not None and t.confidence is not None:
            log.prediction[cid] = (as_label(t.intent), t.confidence)
        elif t.role == "user" and t.intent is not None and t.confidence is not None:
            log.prediction.setdefault(cid, (as_label(t.intent), t.confidence))


# (customer turn id, intent, source, agent labels)
_Candidate = tuple[int, str, str, tuple[tuple[int, str], ...]]


def _agent_candidates(log: _Log, stats: Counter[str]) -> list[_Candidate]:
    candidates: list[_Candidate] = []
    for cid in sorted(log.agent_intents):
        intents = log.agent_intents[cid]
        if len(intents) > 1:
            stats["conflicting_labels"] += 1
            continue
        refs = tuple((lid, agent) for lid, agent, _ in log.label_refs[cid])
        candidates.append((cid, next(iter(intents)), AGENT, refs))
    return candidates


def _confirmed_candidates(
    log: _Log, rows: _StoreRows, settings: ExportSettings, stats: Counter[str]
) -> list[_Candidate]:
    candidates: list[_Candidate] = []
    for cid, turn in log.turns.items():
        if turn.role != "user" or cid in log.agent_intents:
            continue
        votes = log.thumbs.get(cid, set())
        if -1 in votes or cid in log.answer_disputed:
            stats["disputed"] += 1
            continue
        confirmed = 1 in votes or (
            rows.statuses.get(turn.conversation_id) in settings.resolved_statuses
            and turn.conversation_id not in rows.handed_off
            and cid in log.recent
        )
        if not confirmed:
            continue
        intent, conf = log.prediction.get(cid, (OOS_LABEL, 0.0))
        if intent == OOS_LABEL:
            stats["confirmed_out_of_scope"] += 1
            continue
        if conf < settings.min_confidence:
            stats["confirmed_low_confidence"] += 1
            continue
        candidates.append((cid, intent, CONFIRMED, ()))
    return candidates


def _choose(
    candidates: list[_Candidate],
    log: _Log,
    redactor: PiiRedactor,
    heldout: frozenset[str],
    result: ExportResult,
) -> list[Example]:
    """3. redact, keep the held-out set out, deduplicate (agents first, conflicts dropped)."""
    stats = result.stats
    chosen: dict[str, Example] = {}
    conflicted: set[str] = set()
    for cid, intent, source, refs in candidates:
        raw = log.read_as.get(cid) or log.turns[cid].text  # a follow-up: with its thread
        red = redactor.redact(normalize_text(raw))
        result.redacted.update(red.counts)
        if not red.text:
            continue
        key = text_key(red.text)
        if key in heldout or text_key(raw) in heldout:
            stats["heldout"] += 1
            continue
        if key in conflicted:
            stats["conflicting_texts"] += 1
            continue
        earlier = chosen.get(key)
        if earlier is None:
            chosen[key] = Example(red.text, intent, source, cid, refs)
        elif earlier.intent == intent or (earlier.source == AGENT and source == CONFIRMED):
            stats["duplicates"] += 1
            if earlier.intent == intent and refs:  # every label behind the text stays known
                chosen[key] = dataclasses.replace(earlier, labels=earlier.labels + refs)
        else:  # the same text under two intents from sources of equal trust
            del chosen[key]
            conflicted.add(key)
            stats["conflicting_texts"] += 2
    return sorted(chosen.values(), key=lambda e: (e.source != AGENT, e.turn_id))


def _aware(dt: datetime) -> datetime:
    from datetime import UTC

    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
