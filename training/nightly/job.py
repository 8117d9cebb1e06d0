"""The nightly job: logged turns in, a better live model out (or the same one, and why).

One run, under a lock (`RetrainLock`):

1. export the store's examples (`deskbot.training.data.export`: agents first, PII redacted,
   the test set never included);
2. split off the validation stream (`deskbot.training.nightly.validation`): a fixed,
   hash-chosen share of the examples, never trained on, whose newest `gate_window` the
   gate decides on; fewer than `gate_min_examples`: the night is not promoted;
3. find what the live model has not learnt yet: new examples and changed labels; new
   intents wait until agents gave them `min_new_intent_examples`;
4. fine-tune *from the live model* on the new examples plus what it already knew, up to
   `replay_max` examples of it (a night costs minutes on a CPU; the new version's
   neighbour bank holds everything replayed, so replaying only a sample would shrink it);
5. score the candidate and the live model on the same validation window, and on the test
   set (`intents.test_data`), which is reported only, never decided on;
6. promote only if the gate passes (`gate`): accuracy not lower (the lower bound of a
   paired bootstrap of the gain, `accuracy_gain`), no intent's F1 down by
   more than its allowed drop (`f1_margins`: the configured margin, wider for intents
   with few held-out examples), out-of-scope recall not lower, and the new agent labels
   agree with the live model about as often as the validation window's agent labels do
   (`deskbot.training.nightly.audit`; a figure of the live model alone: it chooses no
   model);
7. if a rejected night's labels failed that audit, quarantine the suspicious ones
   (`deskbot.training.nightly.quarantine`): later nights train without them until reviewed;
8. write a report (JSON, Markdown and HTML with the confusion matrix, per-intent
   changes and allowed drops, and the quarantined labels by agent).

A run killed at any point leaves the live model as it was: the candidate is trained in
`<registry>/.retrain/candidates/` and only a complete, accepted model is moved into
`versions/` before the LIVE pointer is switched; the next run deletes what a killed one
left. The same inputs (live version, examples, settings) give the same decision without
training again.

Example:
    >>> job = RetrainJob(store=store, registry=registry, base_data=train, test_data=test)  # doctest: +SKIP
    >>> job.run().decision                                                                # doctest: +SKIP
    'promoted'
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deskbot.bot.core.errors import DataError
from deskbot.bot.nlu.registry import ModelRegistry, read_manifest
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.audit import MODEL_PROMOTED, NIGHTLY, AuditEntry
from deskbot.knowledge.files.fsutil import append_jsonl, read_jsonl
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.data.export import (
    Example,
    ExportSettings,
    export_examples,
    heldout_keys,
    text_key,
)
from deskbot.training.data.pii import PiiRedactor
from deskbot.training.nightly.audit import audit_labels
from deskbot.training.nightly.gate import GateResult, f1_margins, gate
from deskbot.training.nightly.lock import WORK_DIR, RetrainBusy, RetrainLock
from deskbot.training.nightly.night import (
    NightPlan,
    night_dataset,
    plan_night,
    read_known,
    run_fingerprint,
    summarize,
    write_known,
)
from deskbot.training.nightly.quarantine import (
    LabelQuarantine,
    QuarantinedLabel,
    quarantine_summary,
    suspects,
)
from deskbot.training.nightly.reports import (
    NOTHING_NEW,
    PROMOTED,
    REJECTED,
    RetrainOutcome,
    Row,
    intent_changes,
    public_metrics,
    write_report,
)
from deskbot.training.nightly.scoring import evaluations
from deskbot.training.nightly.settings import RetrainSettings
from deskbot.training.nightly.validation import accuracy_gain, assert_disjoint, split_stream

if TYPE_CHECKING:
    from deskbot.training.intents.evaluation import Evaluation
    from deskbot.training.intents.trainer import TrainResult

__all__ = [
    "NOTHING_NEW",
    "PROMOTED",
    "REJECTED",
    "WORK_DIR",
    "GateResult",
    "NightPlan",
    "RetrainBusy",
    "RetrainJob",
    "RetrainLock",
    "RetrainOutcome",
    "RetrainSettings",
    "f1_margins",
    "gate",
]

logger = logging.getLogger(__name__)

HELDOUT_NOTICE = (
    "RetrainJob(heldout=...) is the test data (intents.test_data): it is now kept out of "
    "training and scored and reported only, never decided on; the gate decides on the "
    "validation stream. Pass it as test_data= to drop this notice"
)


@dataclass
class _Run:
    """One run's state, as its steps fill it in."""

    run_id: str
    fingerprint: str
    live: str
    live_dir: Path
    plan: NightPlan
    summary: Row
    started: float
    validation: IntentDataset
    window: list[Example]
    timings: dict[str, float] = field(default_factory=dict)


class RetrainJob:
    """One bot's nightly retraining.

    Args:
        store: the conversation store to learn from.
        registry: the intent model registry (it must have a live model).
        base_data: the data the first model was trained on (`intents.train_data`).
        test_data: the test set (`intents.test_data`): never trained on, scored and
            reported every night, never decided on.
        heldout: the old name of `test_data` (the gate decided on it): still accepted,
            with a notice in the log and the report.
        settings: training and gate settings.
        base_training: `TrainingArgs` fields from the config's `training` section.
        reports_dir: where reports go (default: `<registry>/.retrain/reports`).
        progress: show progress bars.
    """

    def __init__(
        self,
        *,
        store: SqlConversationStore,
        registry: ModelRegistry,
        base_data: IntentDataset,
        test_data: IntentDataset | None = None,
        heldout: IntentDataset | None = None,
        settings: RetrainSettings | None = None,
        base_training: dict[str, Any] | None = None,
        reports_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        self.store = store
        self.registry = registry
        self.base_data = base_data
        if test_data is None and heldout is None:
            raise DataError("RetrainJob needs test_data (intents.test_data)")
        if test_data is not None and heldout is not None and test_data.sha256 != heldout.sha256:
            raise DataError("RetrainJob: heldout is the old name of test_data: pass one")
        self.test_data: IntentDataset = test_data or heldout  # type: ignore[assignment]
        self.settings = settings or RetrainSettings()
        self.notices = [*self.settings.notices, *([HELDOUT_NOTICE] if heldout is not None else [])]
        self.base_training = dict(base_training or {})
        self.work = registry.root / WORK_DIR
        self.reports_dir = Path(reports_dir) if reports_dir else self.work / "reports"
        self.progress = progress
        self.redactor = PiiRedactor()
        self.quarantine = LabelQuarantine(self.work / "quarantine.json")

    # -- bookkeeping ------------------------------------------------------------------------

    def _known_file(self, version: str) -> Path:
        return self.work / "known" / f"{version}.tsv"

    def known_examples(self, version: str) -> dict[str, str]:
        """text_key -> label of everything `version` was trained on (base data if unrecorded)."""
        known = read_known(self._known_file(version))
        if known is not None:
            return known
        return {
            text_key(t): y for t, y in zip(self.base_data.texts, self.base_data.labels, strict=True)
        }

    def _write_known(self, version: str, known: dict[str, str]) -> None:
        write_known(self._known_file(version), known)

    def runs(self) -> list[Row]:
        return read_jsonl(self.work / "runs.jsonl")

    def _record(self, outcome: RetrainOutcome, fingerprint: str) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        record = {"at": time.time(), "fingerprint": fingerprint, **outcome.to_dict()}
        append_jsonl(self.work / "runs.jsonl", record)

    def clean_leftovers(self) -> list[str]:
        """Delete what killed runs left: half-trained candidates and partial model folders."""
        removed = []
        cands = self.work / "candidates"
        if cands.is_dir():
            for p in cands.iterdir():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        if self.registry.versions_dir.is_dir():
            for p in self.registry.versions_dir.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        if removed:
            logger.warning("removed %d leftovers of interrupted runs", len(removed))
        return removed

    # -- the run ----------------------------------------------------------------------------

    def run(self, *, since: datetime | None = None) -> RetrainOutcome:
        """Export, train, evaluate, gate, report; see the module docstring.

        Raises:
            RetrainBusy: another run holds the lock.
            ArtifactError: the registry has no live model.
        """
        with RetrainLock(self.work / "lock", engine=self.store.engine):
            self.clean_leftovers()
            return self._run_locked(since)

    def _run_locked(self, since: datetime | None) -> RetrainOutcome:
        s = self.settings
        started = time.perf_counter()
        for notice in self.notices:
            logger.warning("%s", notice)
        live_dir = self.registry.live_dir()
        live_manifest = read_manifest(live_dir)
        live = live_manifest.version
        t = time.perf_counter()
        test_keys = heldout_keys(self.test_data, self.redactor)
        exported = export_examples(
            self.store,
            heldout=test_keys,
            since=since,
            settings=ExportSettings(s.min_confidence, s.resolved_statuses),
            redactor=self.redactor,
            exclude_labels=self.quarantine.label_ids(),
        )
        export_s = time.perf_counter() - t
        known = self.known_examples(live)
        stream = split_stream(exported, known, s)
        validation = stream.dataset()
        assert_disjoint(validation, test_keys)
        plan = plan_night(
            stream.train, known, set(live_manifest.labels), set(self.base_data.intents), s
        )
        fingerprint = run_fingerprint(
            live,
            plan,
            settings=self.settings.fingerprint(),
            training=self.base_training,
            validation=validation.sha256,
            test=self.test_data.sha256,
        )
        run = _Run(
            run_id=time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + fingerprint[:6],
            fingerprint=fingerprint,
            live=live,
            live_dir=live_dir,
            plan=plan,
            summary={
                **summarize(exported, plan),
                "validation": stream.summary(),
                "newest_label": max(
                    (i for e in exported.examples for i, _ in e.labels), default=None
                ),
            },
            started=started,
            validation=validation,
            window=stream.window,
            timings={"export_s": export_s},
        )
        repeated = self._repeat_of(run)
        if repeated is not None:
            return repeated
        if len(plan.new) < s.min_new_examples:
            return self._nothing_new(run)
        if len(validation) < s.gate_min_examples:
            return self._too_few_to_gate(run)
        night = night_dataset(plan, stream.train, known, self.base_data, s, fingerprint)
        run.summary["night_examples"] = len(night)
        run.summary["replayed"] = len(night) - len(plan.new)
        return self._judge(run, self._train(run, night))

    def _newest_label_before(self) -> int | None:
        """The newest agent label id the previous run exported (None: no earlier run)."""
        for earlier in reversed(self.runs()):
            newest = earlier.get("metrics", {}).get("data", {}).get("newest_label")
            if newest is not None:
                return int(newest)
        return None

    def _repeat_of(self, run: _Run) -> RetrainOutcome | None:
        """The earlier run with the same fingerprint, if any: its decision stands."""
        for earlier in reversed(self.runs()):
            if earlier.get("fingerprint") == run.fingerprint:
                logger.info("run %s repeats run %s: same decision", run.run_id, earlier["run_id"])
                report_dir = earlier.get("report_dir")
                return RetrainOutcome(
                    decision=earlier["decision"],
                    run_id=earlier["run_id"],
                    live_before=run.live,
                    live_after=self.registry.live_version(),
                    candidate=earlier.get("candidate"),
                    reasons=list(earlier.get("reasons", [])),
                    report_dir=Path(report_dir) if report_dir else None,
                    metrics=dict(earlier.get("metrics", {})),
                    repeated=True,
                    notices=list(self.notices),
                )
        return None

    def _nothing_new(self, run: _Run) -> RetrainOutcome:
        n_new, needed = len(run.plan.new), self.settings.min_new_examples
        return self._untrained(run, NOTHING_NEW, f"{n_new} new examples (at least {needed} needed)")

    def _too_few_to_gate(self, run: _Run) -> RetrainOutcome:
        """Not enough validation examples to judge a candidate: nothing trained, live stays."""
        n, needed = len(run.validation), self.settings.gate_min_examples
        reason = (
            f"the validation stream holds {n} examples, the gate needs at least {needed} "
            f"(gate_min_examples): not promoted, nothing trained; the "
            f"{len(run.plan.new)} new examples wait for a night with enough"
        )
        logger.info("run %s: %s", run.run_id, reason)
        return self._untrained(run, REJECTED, reason)

    def _untrained(self, run: _Run, decision: str, reason: str) -> RetrainOutcome:
        outcome = RetrainOutcome(
            decision,
            run.run_id,
            run.live,
            run.live,
            reasons=[reason],
            metrics={"data": run.summary},
            notices=list(self.notices),
        )
        outcome.report_dir = self._write_report(outcome)
        self._record(outcome, run.fingerprint)
        return outcome

    def _train(self, run: _Run, night: IntentDataset) -> TrainResult:
        """Fine-tune from the live model on the night's data, into the candidates folder."""
        from deskbot.training.intents.trainer import IntentTrainer, TrainingArgs

        s = self.settings
        args = TrainingArgs.from_dict({**self.base_training, **s.train_args, "epochs": s.epochs})
        cand_root = self.work / "candidates" / run.run_id
        cand_root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        result = IntentTrainer(args).train(
            night,
            cand_root / run.run_id,
            version=run.run_id,
            init_model=run.live_dir,
            progress=self.progress,
            extra_manifest={"retrain": {"run_id": run.run_id, "from": run.live, **run.summary}},
        )
        run.timings["train_s"] = time.perf_counter() - t
        return result

    def _judge(self, run: _Run, result: TrainResult) -> RetrainOutcome:
        """Score both models, gate, quarantine what a failed audit flags, report, promote."""
        from deskbot.training.intents.evaluation import per_intent

        s = self.settings
        t = time.perf_counter()
        sets = (run.validation, self.test_data)
        live_ev, live_test = evaluations(run.live_dir, sets, self.work / "evals", run.live)
        cand_ev, cand_test = evaluations(result.path, sets)
        run.timings["evaluate_s"] = time.perf_counter() - t
        # An empty window (gate_min_examples 0, tests only) has no per-intent figures.
        live_pi, cand_pi = (per_intent(ev) if ev.gold else {} for ev in (live_ev, cand_ev))
        margins = f1_margins(cand_ev.gold, live_ev.predicted, cand_ev.predicted, s)
        gain = accuracy_gain(cand_ev.gold, live_ev.predicted, cand_ev.predicted, s)
        t = time.perf_counter()
        # The audit's reference is the validation window's agent labels, never the test
        # set (why it is per intent and like for like: `deskbot.training.nightly.audit`).
        audit, audit_predictions = audit_labels(
            run.plan.new, run.live_dir, run.window, s, before_label=self._newest_label_before()
        )
        run.timings["audit_s"] = time.perf_counter() - t
        verdict = gate(live_ev.metrics, cand_ev.metrics, live_pi, cand_pi, s, audit, margins, gain)
        quarantined: list[QuarantinedLabel] = []
        if not verdict.passed:
            quarantined = suspects(run.plan.new, audit, audit_predictions, run_id=run.run_id)
            self.quarantine.add(quarantined)
        run.timings["total_s"] = time.perf_counter() - run.started
        outcome = RetrainOutcome(
            PROMOTED if verdict.passed else REJECTED,
            run.run_id,
            run.live,
            run.run_id if verdict.passed else run.live,
            run.run_id,
            verdict.reasons,
            metrics=self._metrics(run, (live_ev, cand_ev, live_test, cand_test), verdict, audit),
            notices=list(self.notices),
        )
        outcome.metrics["quarantined"] = quarantine_summary(
            quarantined, len(self.quarantine.label_ids())
        )
        if quarantined:
            by_agent = outcome.metrics["quarantined"]["by_agent"]
            outcome.reasons.append(
                f"{len(quarantined)} agent labels quarantined for review ("
                + ", ".join(f"{a}: {n}" for a, n in by_agent.items())
                + "); later runs train without them until released"
            )
        if verdict.passed:
            self._promote(run, result.path)
        else:
            logger.info(
                "run %s: rejected %s: %s", run.run_id, run.run_id, "; ".join(verdict.reasons)
            )
        # After the switch: the report says where the night left the live pointer.
        changes = intent_changes(live_pi, cand_pi, margins)
        outcome.report_dir = self._write_report(outcome, (cand_ev, cand_test), changes, quarantined)
        shutil.rmtree(self.work / "candidates" / run.run_id, ignore_errors=True)
        self._record(outcome, run.fingerprint)
        return outcome

    def _metrics(
        self,
        run: _Run,
        evs: tuple[Evaluation, Evaluation, Evaluation, Evaluation],
        verdict: GateResult,
        audit: Row,
    ) -> Row:
        """`live` and `candidate`: on the validation window (what the gate decided on);
        `test`: both on the test set, reported only."""
        live_ev, cand_ev, live_test, cand_test = evs
        return {
            "live": public_metrics(live_ev.metrics),
            "candidate": public_metrics(cand_ev.metrics),
            "test": {
                "live": public_metrics(live_test.metrics),
                "candidate": public_metrics(cand_test.metrics),
                "decided_on": False,
            },
            "checks": verdict.checks,
            "audit": audit,
            "data": run.summary,
            "timings": {k: round(v, 2) for k, v in run.timings.items()},
        }

    def _promote(self, run: _Run, model_dir: Path) -> None:
        """Move the accepted candidate into `versions/`, then switch LIVE to it."""
        version = run.run_id
        target = self.registry.versions_dir / version
        self.registry.versions_dir.mkdir(parents=True, exist_ok=True)
        os.replace(model_dir, target)
        self._write_known(version, run.plan.known_after)
        self.registry.set_live(version, reason=f"retrain {run.run_id}")
        logger.info("run %s: promoted %s (was %s)", run.run_id, version, run.live)
        # After the switch (a file): a row that cannot be written fails the run loudly.
        self.store.record_audit(
            AuditEntry(NIGHTLY, MODEL_PROMOTED, "model", version, detail=f"was {run.live}")
        )

    def _write_report(
        self,
        outcome: RetrainOutcome,
        cand_evs: tuple[Evaluation, Evaluation] | None = None,
        changes: list[Row] | None = None,
        quarantined: list[QuarantinedLabel] | None = None,
    ) -> Path:
        """The run's report; with the candidate's evaluations, its full evaluation reports
        on the validation window (`candidate/`) and on the test set (`candidate-test/`)."""
        out = self.reports_dir / outcome.run_id
        out.mkdir(parents=True, exist_ok=True)
        if cand_evs is not None:
            from deskbot.training.intents.evaluation import write_report as write_evaluation

            for ev, name in zip(cand_evs, ("candidate", "candidate-test"), strict=True):
                if ev.gold:
                    write_evaluation(ev, out / name)
        return write_report(out, outcome, changes or [], quarantined)
