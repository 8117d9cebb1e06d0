"""Agent labels withdrawn from training until someone has reviewed them.

A rejected night leaves its labels in the store; without a quarantine every later
night would export them again and be poisoned by the same bad batch. So when the gate
rejects a night *and* the label audit blames the labels (the live model agrees with
them far less often than with the validation stream's agent labels), `RetrainJob` puts
the suspicious ones here (`suspects`), the export skips them from then on, and the run's
report lists them by agent for review. An admin can also withdraw an agent's labels by
hand (`withdraw_agent`), and `release` returns reviewed labels to training.

Entries live in one JSON file in the registry's work folder (beside the run records),
so the store's schema is untouched; each change is a locked read-modify-write replaced
atomically. Entries name the label, the agent and the turn, never the customer's text
(reviewers read it in the store; erasing a customer leaves nothing of theirs here).
Nothing is deleted from the store: an agent who corrects a quarantined label adds a new
label, which is exported as usual.

Example:
    >>> q = LabelQuarantine(registry.root / ".retrain" / "quarantine.json")  # doctest: +SKIP
    >>> q.release(agent="mallory")                                           # doctest: +SKIP
    120
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from deskbot.bot.core.errors import DataError
from deskbot.bot.store import AgentLabel, SqlConversationStore
from deskbot.knowledge.files.fsutil import file_lock
from deskbot.training.data.export import AGENT, Example, export_examples


@dataclass(frozen=True)
class QuarantinedLabel:
    """One agent label kept out of training.

    Attributes:
        label_id: the `AgentLabel` row.
        agent: who gave it.
        intent: the intent the agent gave.
        turn_id: the customer message it is about (or the labelled turn, if unknown).
        live_prediction: what the live model predicted for it, if known.
        run_id: the retraining run that quarantined it (None: by hand).
        reason: why, in words an agent can act on.
        at: when (Unix time).
    """

    label_id: int
    agent: str
    intent: str
    turn_id: int
    live_prediction: str | None
    run_id: str | None
    reason: str
    at: float


class LabelQuarantine:
    """The set of quarantined agent labels, stored in `path` (a JSON list)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with file_lock(self.path.with_suffix(".lock")):
            yield

    def _read(self) -> dict[int, QuarantinedLabel]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{self.path}: unreadable quarantine file ({exc})") from exc
        return {int(r["label_id"]): QuarantinedLabel(**r) for r in raw}

    def _write(self, entries: dict[int, QuarantinedLabel]) -> None:
        tmp = self.path.with_suffix(".tmp")
        rows = [dataclasses.asdict(entries[k]) for k in sorted(entries)]
        tmp.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def entries(self) -> list[QuarantinedLabel]:
        """Every quarantined label, by label id."""
        found = self._read()
        return [found[k] for k in sorted(found)]

    def label_ids(self) -> frozenset[int]:
        """The ids the export must skip."""
        return frozenset(self._read())

    def add(self, entries: Iterable[QuarantinedLabel]) -> int:
        """Quarantine `entries`; returns how many were not quarantined already."""
        with self._locked():
            current = self._read()
            added = 0
            for e in entries:
                if e.label_id not in current:
                    current[e.label_id] = e
                    added += 1
            if added:
                self._write(current)
        return added

    def release(
        self,
        *,
        label_ids: Iterable[int] = (),
        agent: str | None = None,
        run_id: str | None = None,
        everything: bool = False,
    ) -> int:
        """Return labels to training (after review): by id, by agent, by run, or all.

        Filters combine: `agent="bob", run_id="r1"` releases bob's labels from run r1.

        Raises:
            DataError: no filter was given (pass `everything=True` to release all).
        """
        ids = set(label_ids)
        if not (ids or agent or run_id or everything):
            raise DataError("release what? name label ids, an agent, a run, or everything")
        with self._locked():
            current = self._read()
            keep = {
                k: e
                for k, e in current.items()
                if not (
                    everything
                    or (
                        (not ids or k in ids)
                        and (agent is None or e.agent == agent)
                        and (run_id is None or e.run_id == run_id)
                    )
                )
            }
            released = len(current) - len(keep)
            if released:
                self._write(keep)
        return released

    def summary(self) -> dict[str, Any]:
        """Counts by agent and by run (for reports and `deskbot quarantine list`)."""
        entries = self.entries()
        return {
            "labels": len(entries),
            "by_agent": dict(sorted(Counter(e.agent for e in entries).items())),
            "by_run": dict(sorted(Counter(str(e.run_id) for e in entries).items())),
        }


def _reason(audit: dict[str, Any], flagged_agent: str | None, pred: str | None) -> str:
    """Why a label is quarantined, in words an agent can act on."""
    if flagged_agent is None:
        return (
            f"the night's labels agree with the live model on {audit['agreement']:.0%} "
            f"(floor {audit['floor']:.0%}); the live model predicts {pred}"
        )
    st = audit["agents"][flagged_agent]
    return (
        f"{flagged_agent}'s labels this night agree with the live model on "
        f"{st['agreement']:.0%} of {st['n']} (expected about "
        f"{st.get('expected', audit['expected']):.0%}, floor {st['floor']:.0%}); the live model "
        + (f"predicts {pred}" if pred else "does not know this intent")
    )


def suspects(
    new: Iterable[Example],
    audit: dict[str, Any],
    predicted: dict[str, str],
    *,
    run_id: str,
) -> list[QuarantinedLabel]:
    """The labels of a rejected night to quarantine, from the label audit.

    Nothing if the audit did not run or passed: the labels look as reliable as the
    held-out set, so the night failed for another reason and its labels stay.

    Otherwise, among the night's agent labels, the ones the live model disagrees with:

    - of the agents whose own agreement is below their floor (`audit["agents"]`), plus
      their labels of intents the live model does not know (nothing can vouch for them);
    - of every agent, if the batch as a whole failed but no single agent stands out.

    Labels the live model agrees with stay in training: they cannot teach it anything it
    does not already predict. The quarantined ones hold the wrong labels and also the bot's
    real mistakes that agents corrected; the review returns the latter (`release`).
    """
    if not audit.get("checked") or audit["agreement"] >= audit["floor"]:
        return []
    agents: dict[str, dict[str, Any]] = audit.get("agents", {})
    flagged = {a for a, st in agents.items() if st.get("flagged")}
    now = time.time()
    out: list[QuarantinedLabel] = []
    for e in new:
        if e.source != AGENT:
            continue
        pred = predicted.get(e.key)
        for label_id, agent in e.labels:
            if flagged and agent not in flagged:
                continue
            if pred is None and not flagged:
                continue  # an intent the live model does not know: not audited
            if pred == e.intent:
                continue
            reason = _reason(audit, agent if agent in flagged else None, pred)
            out.append(
                QuarantinedLabel(
                    label_id=label_id,
                    agent=agent,
                    intent=e.intent,
                    turn_id=e.turn_id,
                    live_prediction=pred,
                    run_id=run_id,
                    reason=reason,
                    at=now,
                )
            )
    return out


def withdraw_agent(
    store: SqlConversationStore,
    quarantine: LabelQuarantine,
    agent: str,
    *,
    since: datetime | None = None,
    reason: str = "withdrawn by hand",
) -> int:
    """Quarantine every intent label `agent` gave (since `since`); returns how many were new.

    The customer message a label is about comes from the export where it has it.
    """
    q = select(col(AgentLabel.id), col(AgentLabel.turn_id), col(AgentLabel.intent)).where(
        col(AgentLabel.agent) == agent, col(AgentLabel.intent).is_not(None)
    )
    if since is not None:
        q = q.where(col(AgentLabel.created_at) >= since)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    if not rows:
        return 0
    known: dict[int, Example] = {}
    for example in export_examples(store, since=since).examples:
        for lid, _ in example.labels:
            known[lid] = example
    now = time.time()
    entries = []
    for row_id, turn_id, intent in rows:
        if row_id is None:
            continue
        found = known.get(row_id)
        entries.append(
            QuarantinedLabel(
                label_id=row_id,
                agent=agent,
                intent=str(intent),
                turn_id=found.turn_id if found else int(turn_id),
                live_prediction=None,
                run_id=None,
                reason=reason,
                at=now,
            )
        )
    return quarantine.add(entries)


def quarantine_summary(quarantined: list[QuarantinedLabel], in_quarantine: int) -> dict[str, Any]:
    """A run's report of what it quarantined: how many labels, by agent, and how many
    labels are in quarantine in all."""
    return {
        "labels": len(quarantined),
        "by_agent": dict(sorted(Counter(q.agent for q in quarantined).items())),
        "in_quarantine": in_quarantine,
    }
