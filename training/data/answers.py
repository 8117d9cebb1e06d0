"""Answers mined from agents' replies: each labelled intent's most typical reply, proposed
as its FAQ answer (#20 item 4).

Which customer messages are of which intent comes from what agents decided: the
examples they approved in the console's Discover tab (`intents.discovered_data`, whose
`ref` column names the conversation, or `conversation:turn`, each example came from) and
their labels of bot turns (`agent_labels.intent`). The reply to a customer message is
what agents wrote after it, up to the customer's next message (several agent messages
in a row are one reply). Replies are PII-redacted first (`PiiRedactor`); an agent's
message sent under two intents or more ("Let me check that for you") says nothing about
either and is left out of the reply. Each intent's replies are embedded with the project's encoder and grouped
(average-linkage clustering, cosine similarity at least `similarity`); the largest group
is what agents agree on, and its medoid (the reply closest to all the others) is the
proposal, its question the medoid of the customers' messages it answered. The other
groups' medoids are its variants. An intent whose largest group has fewer than
`min_support` replies gets no proposal: the agents did not agree.

Proposals go to the FAQ proposals file (`faq-proposals.yaml`) as pending entries
(`source: mined`, id `mined-<intent>`); agents review them in the console and the
nightly job indexes the approved ones, as it does for agents' corrections. A new run
refreshes a pending proposal nobody edited and leaves reviewed ones alone.

Example:
    >>> exchanges = read_exchanges(engine, cfg.intents.discovered_data)   # doctest: +SKIP
    >>> mined = AnswerMiner(embedder).mine(exchanges)                       # doctest: +SKIP
    >>> propose(mined, ProposalsFile(cfg.knowledge.index_dir.parent / PROPOSALS_FILE))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from deskbot.bot.core.errors import DataError
from deskbot.bot.store.models import AgentLabel, TurnRecord
from deskbot.knowledge.embedding.embedder import Embedder
from deskbot.knowledge.sources.proposals import PENDING, ProposalsFile
from deskbot.training.data.datasets import OOS_LABEL, as_label, normalize_text
from deskbot.training.data.export import text_key
from deskbot.training.data.pii import PiiRedactor

CUSTOMER, AGENT = "user", "agent"
MINED_SOURCE = "mined"
_CHUNK = 500  # conversation ids per IN (...) query


@dataclass(frozen=True)
class Exchange:
    """A customer's message of a known intent and the agents' reply to it."""

    intent: str
    conversation_id: str
    question: str
    parts: tuple[str, ...]  # the agents' messages, in order
    reply_turn_id: int

    @property
    def reply(self) -> str:
        return " ".join(self.parts)


@dataclass
class MinedAnswer:
    """An intent's proposed FAQ answer: the typical reply, its question and variants."""

    intent: str
    question: str
    answer: str
    support: int  # replies in the answer's group
    replies: int  # replies of the intent in all
    reply_turn_id: int
    variants: list[dict[str, Any]] = field(default_factory=list)  # {"text", "replies"}


def discovered_refs(path: Path | None) -> list[tuple[str, str]]:
    """(intent, ref) of the approved discovered examples that name their conversation."""
    if path is None or not path.is_file():
        return []
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    if reader.fieldnames is None or "ref" not in reader.fieldnames:
        return []  # written by hand or by an older console: no conversation to look up
    out = []
    for row in reader:
        intent, ref = (row.get("category") or "").strip(), (row.get("ref") or "").strip()
        if intent and ref and not ref.startswith("line:") and as_label(intent) != OOS_LABEL:
            out.append((intent, ref))
    return out


def read_exchanges(engine: Engine, discovered: Path | None = None) -> list[Exchange]:
    """The labelled customer messages and the agents' replies to them.

    Args:
        engine: a migrated store.
        discovered: the Discover tab's approved examples (`intents.discovered_data`).
    """
    # (intent, conversation, customer turn id or None for the opening messages)
    wanted: list[tuple[str, str, int | None]] = []
    for intent, ref in discovered_refs(discovered):
        conversation, _, turn = ref.partition(":")
        wanted.append((intent, conversation, int(turn) if turn.isdigit() else None))
    with Session(engine) as session:
        labels = session.exec(  # type: ignore[call-overload]
            select(col(AgentLabel.intent), col(TurnRecord.conversation_id), col(TurnRecord.id))
            .join(TurnRecord, col(TurnRecord.id) == col(AgentLabel.turn_id))
            .where(col(AgentLabel.intent).is_not(None))
            .order_by(col(AgentLabel.id))
        ).all()
        for intent, conversation, turn_id in labels:
            if as_label(str(intent)) != OOS_LABEL:
                wanted.append((str(intent), str(conversation), int(turn_id)))
        turns = conversation_turns(session, sorted({c for _, c, _ in wanted}))
    out: list[Exchange] = []
    seen: set[tuple[str, str, int]] = set()
    for intent, conversation, turn_id in wanted:
        found = agent_reply_after(turns.get(conversation, []), turn_id)
        if found is None:
            continue
        question, parts, reply_id = found
        if (intent, conversation, reply_id) in seen:
            continue
        seen.add((intent, conversation, reply_id))
        out.append(Exchange(intent, conversation, question, parts, reply_id))
    return out


def conversation_turns(session: Session, conversations: Sequence[str]) -> dict[str, list[Any]]:
    """Each conversation's turns as rows (conversation id, turn id, role, text), in order."""
    by_conversation: dict[str, list[Any]] = defaultdict(list)
    for start in range(0, len(conversations), _CHUNK):
        rows = session.exec(  # type: ignore[call-overload]
            select(
                col(TurnRecord.conversation_id),
                col(TurnRecord.id),
                col(TurnRecord.role),
                col(TurnRecord.text),
            )
            .where(col(TurnRecord.conversation_id).in_(conversations[start : start + _CHUNK]))
            .order_by(col(TurnRecord.conversation_id), col(TurnRecord.seq))
        ).all()
        for row in rows:
            by_conversation[row[0]].append(row)
    return by_conversation


def agent_reply_after(
    turns: Sequence[Any], turn_id: int | None
) -> tuple[str, tuple[str, ...], int] | None:
    """The customer's message (the opening ones when `turn_id` is None; else that turn,
    or the last customer turn before it) and the agents' reply after it."""
    if not turns:
        return None
    if turn_id is None:
        end = next((i for i, t in enumerate(turns) if t[2] != CUSTOMER), len(turns))
        start = 0
    else:
        at = next((i for i, t in enumerate(turns) if t[1] == turn_id), None)
        if at is None:
            return None
        while at >= 0 and turns[at][2] != CUSTOMER:
            at -= 1
        if at < 0:
            return None
        start, end = at, at + 1
    question = normalize_text(" ".join(t[3] for t in turns[start:end] if t[2] == CUSTOMER))
    reply_parts: list[str] = []
    reply_id = 0
    for t in turns[end:]:
        if t[2] == CUSTOMER:
            break
        if t[2] == AGENT and normalize_text(t[3]):
            reply_parts.append(normalize_text(t[3]))
            reply_id = reply_id or int(t[1])
    if not question or not reply_parts:
        return None
    return question, tuple(reply_parts), reply_id


class AnswerMiner:
    """Groups each intent's agent replies and picks the most typical one.

    Args:
        embedder: the project's encoder (`knowledge.embedder`).
        similarity: the least average cosine similarity of two groups joined into one.
        min_support: the fewest replies the largest group needs for a proposal.
        max_variants: the other groups' medoids kept as variants.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        similarity: float = 0.75,
        min_support: int = 2,
        max_variants: int = 3,
        redactor: PiiRedactor | None = None,
    ) -> None:
        if not 0 < similarity < 1:
            raise ValueError(f"similarity must be between 0 and 1, not {similarity}")
        if min_support < 1:
            raise ValueError(f"min_support must be 1 or more, not {min_support}")
        self.embedder = embedder
        self.similarity = similarity
        self.min_support = min_support
        self.max_variants = max_variants
        self.redactor = redactor or PiiRedactor()

    def mine(self, exchanges: Iterable[Exchange]) -> list[MinedAnswer]:
        """One proposal per intent whose agents agree (see the module's docstring)."""
        redacted = [
            Exchange(
                e.intent,
                e.conversation_id,
                self.redactor(e.question),
                tuple(self.redactor(p) for p in e.parts),
                e.reply_turn_id,
            )
            for e in exchanges
        ]
        intents_of: dict[str, set[str]] = defaultdict(set)
        for e in redacted:
            for part in e.parts:
                intents_of[text_key(part)].add(e.intent)
        by_intent: dict[str, list[Exchange]] = defaultdict(list)
        for e in redacted:
            # A message agents send under several intents ("Let me check") says
            # nothing of any of them: left out of the reply.
            parts = tuple(p for p in e.parts if len(intents_of[text_key(p)]) == 1)
            if parts:
                by_intent[e.intent].append(
                    Exchange(e.intent, e.conversation_id, e.question, parts, e.reply_turn_id)
                )
        out = []
        for intent in sorted(by_intent):
            mined = self._mine_intent(intent, by_intent[intent])
            if mined is not None:
                out.append(mined)
        return out

    def _mine_intent(self, intent: str, exchanges: list[Exchange]) -> MinedAnswer | None:
        if len(exchanges) < self.min_support:
            return None
        vectors = self.embedder.embed([e.reply for e in exchanges])
        groups = self.group(vectors)
        main = groups[0]
        if len(main) < self.min_support:
            return None
        best = main[_medoid(vectors[main])]
        questions = [exchanges[i].question for i in main]
        q_vectors = self.embedder.embed(questions)
        variants = [
            {"text": exchanges[g[_medoid(vectors[g])]].reply, "replies": len(g)}
            for g in groups[1 : 1 + self.max_variants]
        ]
        return MinedAnswer(
            intent=intent,
            question=questions[_medoid(q_vectors)],
            answer=exchanges[best].reply,
            support=len(main),
            replies=len(exchanges),
            reply_turn_id=exchanges[best].reply_turn_id,
            variants=variants,
        )

    def group(self, vectors: np.ndarray) -> list[list[int]]:
        """Rows grouped by average-linkage clustering at `similarity`, largest first
        (ties: the tighter group first)."""
        if len(vectors) == 1:
            return [[0]]
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(
            n_clusters=None,
            metric="cosine",
            linkage="average",
            distance_threshold=1 - self.similarity,
        ).fit_predict(vectors)
        groups: dict[int, list[int]] = defaultdict(list)
        for i, label in enumerate(labels.tolist()):
            groups[label].append(i)

        def order(g: list[int]) -> tuple[int, float]:
            sims = vectors[g] @ vectors[g].T
            return -len(g), -float(sims.mean())

        return sorted(groups.values(), key=order)


def _medoid(vectors: np.ndarray) -> int:
    """The row most similar to all the others (the first on a tie)."""
    return int(np.argmax((vectors @ vectors.T).sum(axis=1)))


def proposal_id(intent: str) -> str:
    return "mined-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", intent).strip("_") or text_key(intent))


def propose(mined: Sequence[MinedAnswer], proposals: ProposalsFile) -> dict[str, int]:
    """Add each mined answer as a pending proposal, or refresh the pending one nobody
    edited; reviewed proposals are left as they are. Returns counts: added, updated, kept."""
    counts = {"added": 0, "updated": 0, "kept": 0}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with proposals.changing() as entries:
        by_id = {str(e.get("id")): e for e in entries}
        for m in mined:
            pid = proposal_id(m.intent)
            fresh: dict[str, Any] = {
                "id": pid,
                "status": PENDING,
                "source": MINED_SOURCE,
                "question": m.question,
                "answer": m.answer,
                "intent": m.intent,
                "support": m.support,
                "replies": m.replies,
                "variants": m.variants,
                "turn_id": m.reply_turn_id,
                "proposed_at": now,
            }
            old = by_id.get(pid)
            if old is None:
                entries.append(fresh)
                counts["added"] += 1
            elif old.get("status", PENDING) == PENDING and not old.get("edited"):
                old.update(fresh)
                counts["updated"] += 1
            else:
                counts["kept"] += 1
    return counts


def check_exchanges(exchanges: Sequence[Exchange], source: str) -> None:
    """Refuse to mine nothing, saying where labelled messages come from."""
    if not exchanges:
        raise DataError(
            f"{source}: no labelled customer message with an agent's reply; approve "
            "candidates in the console's Discover tab or label turns, after importing "
            "past conversations (deskbot import conversations)"
        )
