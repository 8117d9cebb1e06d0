"""The nightly job: logged turns in, a better live model out (or the same one, and why).

One run, under a lock (`RetrainLock`):

1. export the store's examples (`deskbot.training.data.export`: agents first, PII redacted,
   the held-out set never included);
2. find what the live model has not learnt yet: new examples and changed labels; new
   intents wait until agents gave them `min_new_intent_examples`;
3. fine-tune *from the live model* on the new examples plus what it already knew, up to
   `replay_max` examples of it (a night costs minutes on a CPU; the new version's
   neighbour bank holds everything replayed, so replaying only a sample would shrink it);
4. score the candidate and the live model on the same held-out set;
5. promote only if the gate passes (`gate`): accuracy not lower, no intent's F1 down by
   more than its allowed drop (`f1_margins`: the configured margin, wider for intents
   with few held-out examples), out-of-scope recall not lower, and the new labels agree
   with the live model about as often as its held-out accuracy says they should;
6. if a rejected night's labels failed that audit, quarantine the suspicious ones
   (`deskbot.training.nightly.quarantine`): later nights train without them until reviewed;
7. write a report (JSON, Markdown and HTML with the confusion matrix, per-intent
   changes and allowed drops, and the quarantined labels by agent).

A run killed at any point leaves the live model as it was: the candidate is trained in
`<registry>/.retrain/candidates/` and only a complete, accepted model is moved into
`versions/` before the LIVE pointer is switched; the next run deletes what a killed one
left. The same inputs (live version, examples, settings) give the same decision without
training again.

Example:
    >>> job = RetrainJob(store=store, registry=registry, base_data=train, heldout=test)  # doctest: +SKIP
    >>> job.run().decision                                                                # doctest: +SKIP
    'promoted'
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import html
import json
import logging
import math
import os
import random
import shutil
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import yaml

from deskbot.bot.core.errors import DataError, DeskbotError
from deskbot.bot.core.types import OUT_OF_SCOPE
from deskbot.bot.nlu.registry import ModelRegistry, read_manifest
from deskbot.bot.store import SqlConversationStore
from deskbot.training.data.datasets import OOS_LABEL, IntentDataset
from deskbot.training.data.export import (
    AGENT,
    ExportResult,
    ExportSettings,
    export_examples,
    heldout_keys,
    text_key,
)
from deskbot.training.data.pii import PiiRedactor
from deskbot.training.nightly.quarantine import LabelQuarantine, QuarantinedLabel, suspects

logger = logging.getLogger(__name__)

PROMOTED = "promoted"
REJECTED = "rejected"
NOTHING_NEW = "nothing-new"
WORK_DIR = ".retrain"


class RetrainBusy(DeskbotError):
    """Another retraining run holds the lock."""


@dataclass
class RetrainSettings:
    """How the nightly job trains and what its gate demands. Every field has a default.

    Attributes:
        epochs: fine-tuning epochs over the night's data (new + replayed).
        replay_ratio: replayed known examples per new example; None replays everything
            known (up to `replay_max`). The model's neighbour bank is built from what it
            is trained on, so a partial replay also leaves out of the new version's bank
            what the live model's bank held. Out-of-scope (`oos`) examples are always
            all replayed: they are the out-of-scope detector's bank.
        replay_min_per_intent: known examples of every intent replayed at least.
        replay_max: at most this many replayed examples.
        max_new: at most this many new examples per night (agents' first); the rest
            wait for the next night.
        min_new_examples: fewer new examples than this: no training ("nothing-new").
        min_new_intent_examples: a new intent is learnt once it has this many examples.
        min_confidence: confirmed predictions need this calibrated confidence.
        resolved_statuses: conversation statuses that confirm its turns.
        accuracy_tolerance: the candidate's accuracy may be lower by at most this.
        f1_margin: the smallest F1 drop of one intent that fails the gate (a floor: the
            allowed drop of an intent with few held-out examples is larger, see
            `f1_margins`).
        f1_alpha: the chance that an honest night fails the per-intent F1 check through
            held-out sampling noise alone (family-wise over all gated intents); None
            gates every intent at `f1_margin` exactly.
        f1_bootstrap: paired bootstrap resamples of the held-out set used to measure
            each intent's F1 noise.
        f1_min_support: intents with fewer held-out examples are not F1-gated.
        oos_tolerance: out-of-scope recall may be lower by at most this.
        audit_margin: reject the night when the live model agrees with the new agent
            labels less often than its held-out accuracy minus this (and 3 standard
            errors); None turns the audit off. It catches mislabelled or poisoned
            batches; turn it off if agents label only the bot's mistakes.
        audit_min_examples: the audit needs this many new agent labels.
        train_args: `TrainingArgs` fields for the night (over the config's `training`).
        seed: for the replay sample.
    """

    epochs: int = 2
    replay_ratio: float | None = None
    replay_min_per_intent: int = 2
    replay_max: int = 5000
    max_new: int = 20000
    min_new_examples: int = 1
    min_new_intent_examples: int = 10
    min_confidence: float = 0.8
    resolved_statuses: tuple[str, ...] = ("resolved",)
    accuracy_tolerance: float = 0.0
    f1_margin: float = 0.1
    f1_alpha: float | None = 0.05
    f1_bootstrap: int = 1000
    f1_min_support: int = 10
    oos_tolerance: float = 0.0
    audit_margin: float | None = 0.1
    audit_min_examples: int = 50
    train_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1, got {self.epochs}")
        if (
            (self.replay_ratio is not None and self.replay_ratio < 0)
            or self.replay_max < 0
            or self.replay_min_per_intent < 0
        ):
            problems.append("replay_ratio, replay_max and replay_min_per_intent must be >= 0")
        if self.max_new < 1 or self.min_new_examples < 1 or self.min_new_intent_examples < 2:
            problems.append(
                "max_new and min_new_examples must be >= 1, min_new_intent_examples >= 2"
            )
        for name in ("accuracy_tolerance", "f1_margin", "oos_tolerance"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be within 0..1, got {getattr(self, name)}")
        if self.f1_alpha is not None and not 0 < self.f1_alpha < 1:
            problems.append(f"f1_alpha must be within (0, 1) or null, got {self.f1_alpha}")
        if self.f1_bootstrap < 100:
            problems.append(f"f1_bootstrap must be at least 100, got {self.f1_bootstrap}")
        if problems:
            raise DataError("bad retrain settings: " + "; ".join(problems))
        self.resolved_statuses = tuple(self.resolved_statuses)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RetrainSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise DataError(f"unknown retrain setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**raw)

    @classmethod
    def from_file(cls, path: str | Path) -> RetrainSettings:
        """Read settings from a YAML mapping (e.g. `retrain.yaml` beside `deskbot.yaml`)."""
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"{path}: cannot read retrain settings ({exc})") from exc
        if not isinstance(raw, dict):
            raise DataError(f"{path}: expected a mapping of retrain settings")
        return cls.from_dict(raw)


class RetrainLock:
    """Two runs never train at once.

    An exclusive `flock` on a file in the registry (the kernel releases it when the
    holder dies, however it dies: a stale lock cannot outlive its process); the file
    holds the holder's pid and host for the error message. On PostgreSQL a session
    advisory lock is taken too, so jobs on different machines sharing the database
    exclude each other as well.
    """

    def __init__(self, path: str | Path, *, engine: Any = None, key: int = 0x6465736B) -> None:
        self.path = Path(path)
        self.engine = engine
        self.key = key
        self._fh: Any = None
        self._conn: Any = None

    def __enter__(self) -> RetrainLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # held open for the whole run
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RetrainBusy(
                f"another retrain run holds {self.path} ({holder}); wait for it to finish"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n")
        fh.flush()
        self._fh = fh
        if self.engine is not None and self.engine.dialect.name == "postgresql":
            from sqlalchemy import text

            conn = self.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            if not got:
                conn.close()
                self._release_file()
                raise RetrainBusy(
                    "another retrain run holds the database's advisory lock; wait for it"
                )
            self._conn = conn
        return self

    def _release_file(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            from sqlalchemy import text

            with contextlib.suppress(Exception):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.close()
            self._conn = None
        self._release_file()


# -- the gate -------------------------------------------------------------------------------


@dataclass
class GateResult:
    passed: bool
    checks: list[dict[str, Any]]

    @property
    def reasons(self) -> list[str]:
        return [c["detail"] for c in self.checks if not c["passed"]]


def f1_margins(
    gold: Sequence[str],
    live_predicted: Sequence[str],
    candidate_predicted: Sequence[str],
    settings: RetrainSettings,
) -> dict[str, dict[str, float]]:
    """How far each gated intent's F1 may drop, from both models' held-out predictions.

    A fixed margin treats an intent with 40 held-out examples like one with 400, yet the
    F1 of a 40-example intent moves by 0.1 when three or four predictions change, and
    with 77 intents an honest night "drops" some intent by that much most of the time.
    So the allowed drop of intent i is

        max(f1_margin, z * se_i)

    - `se_i` is the standard error of (live F1 - candidate F1) of intent i, from a paired
      bootstrap: `f1_bootstrap` resamples of the held-out rows, both models scored on the
      same resampled rows. Pairing matters: what the two models predict alike cancels
      out, only the messages whose prediction changed make noise, so a real drop on a
      well-supported intent is still caught at the configured margin.
    - `z` is the one-sided normal quantile at `f1_alpha / k`, k the number of gated
      intents (Bonferroni): two equally good models fail the per-intent check through
      held-out sampling noise alone with probability at most about `f1_alpha`.
    - `f1_margin` stays the floor: a drop must be material (above the configured margin)
      *and* more than the held-out set's size can explain (above z * se_i) to fail.

    With `f1_alpha` None every intent gets `f1_margin`. The resampling is seeded with
    `settings.seed`: the same predictions give the same margins (runs are repeatable).

    Returns:
        intent -> {"allowed": the allowed drop, "se": se_i, "z": z, "support": held-out
        examples} for every intent with at least `f1_min_support` held-out examples.
    """
    s = settings
    g = [OOS_LABEL if x in (OUT_OF_SCOPE, OOS_LABEL) else x for x in gold]
    a = [OOS_LABEL if x in (OUT_OF_SCOPE, OOS_LABEL) else x for x in live_predicted]
    b = [OOS_LABEL if x in (OUT_OF_SCOPE, OOS_LABEL) else x for x in candidate_predicted]
    if not len(g) == len(a) == len(b):
        raise DataError("f1_margins: gold and both predictions must have the same length")
    labels = sorted(set(g) | set(a) | set(b))
    index = {y: i for i, y in enumerate(labels)}
    n, n_labels = len(g), len(labels)
    gi = np.array([index[y] for y in g], dtype=np.int64)
    support = np.bincount(gi, minlength=n_labels)
    gated = [
        y for y in labels if y != OOS_LABEL and support[index[y]] >= s.f1_min_support and n > 1
    ]
    if s.f1_alpha is None or not gated:
        return {
            y: {"allowed": s.f1_margin, "se": 0.0, "z": 0.0, "support": int(support[index[y]])}
            for y in gated
        }
    ai = np.array([index[y] for y in a], dtype=np.int64)
    bi = np.array([index[y] for y in b], dtype=np.int64)
    rng = np.random.default_rng(s.seed)
    diffs = []
    for start in range(0, s.f1_bootstrap, 100):  # chunks keep memory at ~100 x n
        reps = min(100, s.f1_bootstrap - start)
        rows = rng.integers(0, n, size=(reps, n))
        offset = (np.arange(reps, dtype=np.int64) * n_labels)[:, None]
        g_rs = gi[rows] + offset
        diffs.append(
            _f1_by_resample(g_rs, ai[rows] + offset, reps, n_labels)
            - _f1_by_resample(g_rs, bi[rows] + offset, reps, n_labels)
        )
    se = np.concatenate(diffs).std(axis=0, ddof=1)
    z = NormalDist().inv_cdf(1 - s.f1_alpha / len(gated))
    return {
        y: {
            "allowed": max(s.f1_margin, z * float(se[index[y]])),
            "se": float(se[index[y]]),
            "z": z,
            "support": int(support[index[y]]),
        }
        for y in gated
    }


def _f1_by_resample(gold: Any, pred: Any, reps: int, n_labels: int) -> Any:
    """F1 of every label in every resample; labels are offset by resample * n_labels."""
    size = reps * n_labels
    tp = np.bincount(gold[gold == pred], minlength=size)
    denom = np.bincount(gold.ravel(), minlength=size) + np.bincount(pred.ravel(), minlength=size)
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(size), where=denom > 0)
    return f1.reshape(reps, n_labels)


def gate(
    live: dict[str, Any],
    candidate: dict[str, Any],
    live_per_intent: dict[str, dict[str, float]],
    candidate_per_intent: dict[str, dict[str, float]],
    settings: RetrainSettings,
    audit: dict[str, Any] | None = None,
    margins: dict[str, dict[str, float]] | None = None,
) -> GateResult:
    """Decide whether `candidate` may replace `live`; both scored on the same held-out set.

    `margins` (from `f1_margins`) gives each intent's allowed F1 drop; without it every
    intent gets `settings.f1_margin`.
    """
    checks: list[dict[str, Any]] = []
    la, ca = live["accuracy"], candidate["accuracy"]
    checks.append(
        {
            "name": "accuracy",
            "passed": ca >= la - settings.accuracy_tolerance - 1e-12,
            "detail": f"accuracy {ca:.4f} vs live {la:.4f} (tolerance {settings.accuracy_tolerance})",
        }
    )
    drops = []
    allowed_drops: dict[str, float] = {}
    for intent, m in live_per_intent.items():
        if intent == OOS_LABEL or m["support"] < settings.f1_min_support:
            continue
        allowed = (margins or {}).get(intent, {}).get("allowed", settings.f1_margin)
        allowed_drops[intent] = round(allowed, 4)
        new_f1 = candidate_per_intent.get(intent, {"f1": 0.0})["f1"]
        if m["f1"] - new_f1 > allowed + 1e-12:
            drops.append(f"{intent} {m['f1']:.3f}->{new_f1:.3f} (allowed drop {allowed:.3f})")
    widest = max(allowed_drops.values(), default=settings.f1_margin)
    scope = (
        f"the allowed drop ({settings.f1_margin} up to {widest:.3f} by held-out support)"
        if widest > settings.f1_margin + 1e-9
        else f"{settings.f1_margin}"
    )
    checks.append(
        {
            "name": "per_intent_f1",
            "passed": not drops,
            "detail": (
                f"F1 down by more than {scope}: {', '.join(drops)}"
                if drops
                else f"no intent's F1 down by more than {scope}"
            ),
            "allowed_drops": allowed_drops,
        }
    )
    lo, co = live.get("oos_recall"), candidate.get("oos_recall")
    if lo is not None and co is not None:
        checks.append(
            {
                "name": "oos_recall",
                "passed": co >= lo - settings.oos_tolerance - 1e-12,
                "detail": f"out-of-scope recall {co:.4f} vs live {lo:.4f}",
            }
        )
    if audit is not None and audit.get("checked"):
        checks.append(
            {
                "name": "label_audit",
                "passed": audit["agreement"] >= audit["floor"],
                "detail": (
                    f"the live model agrees with {audit['agreement']:.3f} of {audit['n']} new "
                    f"agent labels; expected about {audit['expected']:.3f} (floor {audit['floor']:.3f})"
                ),
            }
        )
    return GateResult(all(c["passed"] for c in checks), checks)


# -- the job --------------------------------------------------------------------------------


@dataclass
class RetrainOutcome:
    """What a run decided, with the candidate's and the live model's figures."""

    decision: str
    run_id: str
    live_before: str | None
    live_after: str | None
    candidate: str | None = None
    reasons: list[str] = field(default_factory=list)
    report_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    repeated: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["report_dir"] = str(self.report_dir) if self.report_dir else None
        return d


class RetrainJob:
    """One bot's nightly retraining.

    Args:
        store: the conversation store to learn from.
        registry: the intent model registry (it must have a live model).
        base_data: the data the first model was trained on (`intents.train_data`).
        heldout: the evaluation set (`intents.test_data`): never trained on.
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
        heldout: IntentDataset,
        settings: RetrainSettings | None = None,
        base_training: dict[str, Any] | None = None,
        reports_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        self.store = store
        self.registry = registry
        self.base_data = base_data
        self.heldout = heldout
        self.settings = settings or RetrainSettings()
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
        path = self._known_file(version)
        if path.is_file():
            out = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                k, _, y = line.partition("\t")
                out[k] = y
            return out
        return {
            text_key(t): y for t, y in zip(self.base_data.texts, self.base_data.labels, strict=True)
        }

    def _write_known(self, version: str, known: dict[str, str]) -> None:
        path = self._known_file(version)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}\t{y}\n" for k, y in sorted(known.items())), encoding="utf-8")
        os.replace(tmp, path)

    def runs(self) -> list[dict[str, Any]]:
        try:
            lines = (self.work / "runs.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(x) for x in lines if x.strip()]

    def _record(self, outcome: RetrainOutcome, fingerprint: str) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        with open(self.work / "runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(
                json.dumps({"at": time.time(), "fingerprint": fingerprint, **outcome.to_dict()})
                + "\n"
            )

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
        live_dir = self.registry.live_dir()
        live_manifest = read_manifest(live_dir)
        live = live_manifest.version
        timings: dict[str, float] = {}

        t = time.perf_counter()
        exported = export_examples(
            self.store,
            heldout=heldout_keys(self.heldout, self.redactor),
            since=since,
            settings=ExportSettings(s.min_confidence, s.resolved_statuses),
            redactor=self.redactor,
            exclude_labels=self.quarantine.label_ids(),
        )
        timings["export_s"] = time.perf_counter() - t
        known = self.known_examples(live)
        plan = self._plan(exported, known, set(live_manifest.labels))
        fingerprint = hashlib.sha256(
            json.dumps(
                {
                    "live": live,
                    "new": sorted((e.key, e.intent) for e in plan["new"]),
                    "settings": dataclasses.asdict(s),
                    "training": self.base_training,
                    "heldout": self.heldout.sha256,
                },
                sort_keys=True,
                default=str,
            ).encode()
        ).hexdigest()
        run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + fingerprint[:6]
        summary = {
            "export": exported.summary(),
            "new_examples": len(plan["new"]),
            "new_from_agents": sum(e.source == AGENT for e in plan["new"]),
            "relabelled": plan["relabelled"],
            "new_intents_added": plan["added_intents"],
            "new_intents_held_back": plan["held_back"],
            "deferred_to_next_night": plan["deferred"],
        }

        for earlier in reversed(self.runs()):
            if earlier.get("fingerprint") == fingerprint:
                logger.info("run %s repeats run %s: same decision", run_id, earlier["run_id"])
                return RetrainOutcome(
                    decision=earlier["decision"],
                    run_id=earlier["run_id"],
                    live_before=live,
                    live_after=self.registry.live_version(),
                    candidate=earlier.get("candidate"),
                    reasons=list(earlier.get("reasons", [])),
                    report_dir=Path(earlier["report_dir"]) if earlier.get("report_dir") else None,
                    metrics=dict(earlier.get("metrics", {})),
                    repeated=True,
                )

        if len(plan["new"]) < s.min_new_examples:
            outcome = RetrainOutcome(
                NOTHING_NEW,
                run_id,
                live,
                live,
                reasons=[f"{len(plan['new'])} new examples (at least {s.min_new_examples} needed)"],
                metrics={"data": summary},
            )
            outcome.report_dir = self._write_report(outcome, None, None, None)
            self._record(outcome, fingerprint)
            return outcome

        night = self._night_dataset(plan, exported, known, fingerprint)
        summary["night_examples"] = len(night)
        summary["replayed"] = len(night) - len(plan["new"])

        from deskbot.training.intents.trainer import IntentTrainer, TrainingArgs

        raw_args = {**self.base_training, **s.train_args, "epochs": s.epochs}
        args = TrainingArgs.from_dict(raw_args)
        version = run_id
        cand_root = self.work / "candidates" / run_id
        cand_root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        result = IntentTrainer(args).train(
            night,
            cand_root / version,
            version=version,
            init_model=live_dir,
            progress=self.progress,
            extra_manifest={"retrain": {"run_id": run_id, "from": live, **summary}},
        )
        timings["train_s"] = time.perf_counter() - t

        t = time.perf_counter()
        live_ev = self._evaluate_cached(live_dir, live)
        cand_ev = self._evaluate(result.path)
        timings["evaluate_s"] = time.perf_counter() - t
        from deskbot.training.intents.evaluation import per_intent

        live_pi, cand_pi = per_intent(live_ev), per_intent(cand_ev)
        margins = f1_margins(cand_ev.gold, live_ev.predicted, cand_ev.predicted, s)
        t = time.perf_counter()
        audit, audit_predictions = self._audit(plan["new"], live_dir, live_ev.metrics)
        timings["audit_s"] = time.perf_counter() - t
        verdict = gate(live_ev.metrics, cand_ev.metrics, live_pi, cand_pi, s, audit, margins)
        decision = PROMOTED if verdict.passed else REJECTED
        quarantined: list[QuarantinedLabel] = []
        if not verdict.passed:
            quarantined = suspects(plan["new"], audit, audit_predictions, run_id=run_id)
            self.quarantine.add(quarantined)
        timings["total_s"] = time.perf_counter() - started
        held_by_agent = dict(sorted(Counter(q.agent for q in quarantined).items()))
        metrics = {
            "live": _public(live_ev.metrics),
            "candidate": _public(cand_ev.metrics),
            "checks": verdict.checks,
            "audit": audit,
            "quarantined": {
                "labels": len(quarantined),
                "by_agent": held_by_agent,
                "in_quarantine": len(self.quarantine.label_ids()),
            },
            "data": summary,
            "timings": {k: round(v, 2) for k, v in timings.items()},
        }
        outcome = RetrainOutcome(
            decision, run_id, live, live, version, verdict.reasons, metrics=metrics
        )
        if quarantined:
            outcome.reasons.append(
                f"{len(quarantined)} agent labels quarantined for review ("
                + ", ".join(f"{a}: {n}" for a, n in held_by_agent.items())
                + "); later runs train without them until released"
            )
        outcome.report_dir = self._write_report(
            outcome, cand_ev, live_pi, cand_pi, margins, quarantined
        )
        if verdict.passed:
            target = self.registry.versions_dir / version
            self.registry.versions_dir.mkdir(parents=True, exist_ok=True)
            os.replace(result.path, target)
            self._write_known(version, plan["known_after"])
            self.registry.set_live(version, reason=f"retrain {run_id}")
            outcome.live_after = version
            logger.info("run %s: promoted %s (was %s)", run_id, version, live)
        else:
            logger.info("run %s: rejected %s: %s", run_id, version, "; ".join(verdict.reasons))
        shutil.rmtree(cand_root, ignore_errors=True)
        self._record(outcome, fingerprint)
        return outcome

    def _plan(
        self, exported: ExportResult, known: dict[str, str], live_labels: set[str]
    ) -> dict[str, Any]:
        s = self.settings
        base_intents = set(self.base_data.intents)
        fresh = [e for e in exported.examples if known.get(e.key) != e.intent]
        relabelled = sum(1 for e in fresh if e.key in known)
        counts = Counter(e.intent for e in fresh)
        new_intents = {
            y for y in counts if y != OOS_LABEL and y not in live_labels and y not in base_intents
        }
        held_back = {
            y: counts[y] for y in sorted(new_intents) if counts[y] < s.min_new_intent_examples
        }
        fresh = [e for e in fresh if e.intent not in held_back]
        deferred = max(0, len(fresh) - s.max_new)
        new = fresh[: s.max_new]  # agents' examples come first
        known_after = dict(known)
        known_after.update({e.key: e.intent for e in new})
        return {
            "new": new,
            "relabelled": relabelled,
            "added_intents": sorted(new_intents - set(held_back)),
            "held_back": held_back,
            "deferred": deferred,
            "known_after": known_after,
        }

    def _night_dataset(
        self,
        plan: dict[str, Any],
        exported: ExportResult,
        known: dict[str, str],
        fingerprint: str,
    ) -> IntentDataset:
        """The new examples and a replayed, stratified sample of what the live model knew."""
        s = self.settings
        new_keys = {e.key for e in plan["new"]}
        pool: dict[str, tuple[str, str]] = {}
        for t, y in zip(self.base_data.texts, self.base_data.labels, strict=True):
            k = text_key(t)
            if known.get(k, y) == y and k not in new_keys:
                pool[k] = (t, y)
        for e in exported.examples:
            if known.get(e.key) == e.intent and e.key not in new_keys:
                pool[e.key] = (e.text, e.intent)
        by_label: dict[str, list[tuple[str, str]]] = {}
        for k in sorted(pool):
            by_label.setdefault(pool[k][1], []).append(pool[k])
        rng = random.Random(f"{s.seed}-{fingerprint}")
        total = sum(len(v) for v in by_label.values())
        wanted = total if s.replay_ratio is None else round(s.replay_ratio * len(plan["new"]))
        target = min(s.replay_max, wanted)
        replay: list[tuple[str, str]] = []
        for label in sorted(by_label):
            items = by_label[label]
            share = round(target * len(items) / total) if total else 0
            # Out-of-scope examples are the detector's bank, not a class to learn: a
            # sample would forget the topics agents marked on earlier nights.
            n = (
                len(items)
                if label == OOS_LABEL
                else min(len(items), max(s.replay_min_per_intent, share))
            )
            replay.extend(rng.sample(items, n))
        texts = [e.text for e in plan["new"]] + [t for t, _ in replay]
        labels = [e.intent for e in plan["new"]] + [y for _, y in replay]
        digest = hashlib.sha256(
            "\n".join(f"{t}\t{y}" for t, y in zip(texts, labels, strict=True)).encode()
        ).hexdigest()
        return IntentDataset(tuple(texts), tuple(labels), "retrain night", digest)

    def _evaluate(self, model_dir: Path) -> Any:
        from deskbot.bot.nlu.classifier import TransformerIntentClassifier
        from deskbot.training.intents.evaluation import evaluate

        return evaluate(TransformerIntentClassifier(model_dir), self.heldout)

    def _evaluate_cached(self, model_dir: Path, version: str) -> Any:
        """The live model's predictions on the held-out set change only with the model."""
        from deskbot.training.intents.evaluation import Evaluation

        path = self.work / "evals" / f"{version}-{self.heldout.sha256[:16]}.json"
        if path.is_file():
            raw = json.loads(path.read_text(encoding="utf-8"))
            return Evaluation(**raw)
        ev = self._evaluate(model_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(ev)), encoding="utf-8")
        return ev

    def _audit(
        self, new: list[Any], live_dir: Path, live_metrics: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """How often the live model agrees with the new agent labels of intents it knows.

        On correct labels of messages like the held-out set's, that rate is about the
        live model's held-out accuracy; shuffled or careless labels pull it far below.
        The same test runs for each agent on their own labels (`agents`: n, agreement,
        floor, flagged), so one careless or malicious agent stands out among good ones.

        Returns:
            the audit, and text key -> the live model's best intent for each audited text.
        """
        s = self.settings
        labels = set(read_manifest(live_dir).labels)
        rows = [e for e in new if e.source == AGENT and e.intent in labels]
        if s.audit_margin is None or len(rows) < s.audit_min_examples:
            return {"checked": False, "n": len(rows)}, {}
        from deskbot.bot.nlu.classifier import TransformerIntentClassifier

        clf = TransformerIntentClassifier(live_dir)
        # Agreement on the best in-scope intent (the ranking ignores the OOS threshold).
        preds = clf.predict([e.text for e in rows])
        best = {e.key: p.ranking[0][0] for p, e in zip(preds, rows, strict=True) if p.ranking}
        agrees = [best.get(e.key) == e.intent for e in rows]
        expected = float(live_metrics.get("in_scope_accuracy") or live_metrics["accuracy"])
        margin = float(s.audit_margin)

        def floor(n: int) -> float:
            return expected - max(margin, 3 * math.sqrt(expected * (1 - expected) / n))

        by_agent: dict[str, list[bool]] = {}
        for e, ok in zip(rows, agrees, strict=True):
            for agent in e.agents:
                by_agent.setdefault(agent, []).append(ok)
        agents = {}
        for agent in sorted(by_agent):
            oks = by_agent[agent]
            rate = sum(oks) / len(oks)
            agents[agent] = {
                "n": len(oks),
                "agreement": rate,
                "floor": floor(len(oks)),
                "flagged": rate < floor(len(oks)),
            }
        audit = {
            "checked": True,
            "n": len(rows),
            "agreement": sum(agrees) / len(rows),
            "expected": expected,
            "floor": floor(len(rows)),
            "agents": agents,
        }
        return audit, best

    # -- the report -------------------------------------------------------------------------

    def _write_report(
        self,
        outcome: RetrainOutcome,
        cand_ev: Any,
        live_pi: dict[str, dict[str, float]] | None,
        cand_pi: dict[str, dict[str, float]] | None,
        margins: dict[str, dict[str, float]] | None = None,
        quarantined: list[QuarantinedLabel] | None = None,
    ) -> Path:
        out = self.reports_dir / outcome.run_id
        out.mkdir(parents=True, exist_ok=True)
        changes: list[dict[str, Any]] = []
        if cand_ev is not None and live_pi is not None and cand_pi is not None:
            from deskbot.training.intents.evaluation import write_report

            write_report(cand_ev, out / "candidate")
            for intent in sorted(set(live_pi) | set(cand_pi)):
                before = live_pi.get(intent, {}).get("f1")
                after = cand_pi.get(intent, {}).get("f1")
                margin = (margins or {}).get(intent, {})
                changes.append(
                    {
                        "intent": intent,
                        "live_f1": before,
                        "candidate_f1": after,
                        "delta": None if before is None or after is None else after - before,
                        "support": (cand_pi.get(intent) or live_pi.get(intent) or {}).get(
                            "support", 0
                        ),
                        "allowed_drop": margin.get("allowed"),
                        "drop_se": margin.get("se"),
                    }
                )
            changes.sort(key=lambda c: c["delta"] if c["delta"] is not None else 0.0)
        held = [dataclasses.asdict(q) for q in quarantined or []]
        report = {
            **outcome.to_dict(),
            "report_dir": str(out),
            "per_intent_changes": changes,
            "quarantined_labels": held,
        }
        (out / "report.json").write_text(
            json.dumps(report, indent=2, default=str), encoding="utf-8"
        )
        md = _markdown(outcome, changes, held)
        (out / "report.md").write_text(md, encoding="utf-8")
        (out / "report.html").write_text(_html(outcome, changes, held), encoding="utf-8")
        return out


def _public(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str) or v is None}


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else ("–" if x is None else str(x))


def _markdown(
    outcome: RetrainOutcome, changes: list[dict[str, Any]], held: list[dict[str, Any]]
) -> str:
    m = outcome.metrics
    lines = [
        f"# Retraining run {outcome.run_id}: {outcome.decision}",
        "",
        f"- live before: `{outcome.live_before}`; live after: `{outcome.live_after}`",
        f"- candidate: `{outcome.candidate}`",
    ]
    lines += [f"- reason: {r}" for r in outcome.reasons]
    if "live" in m:
        lines += ["", "| metric | live | candidate |", "|---|---|---|"]
        for key in (
            "accuracy",
            "macro_f1",
            "in_scope_accuracy",
            "oos_recall",
            "oos_precision",
            "n",
        ):
            lines.append(
                f"| {key} | {_fmt(m['live'].get(key))} | {_fmt(m['candidate'].get(key))} |"
            )
        lines += ["", "## Gate", ""]
        lines += [
            f"- {'PASS' if c['passed'] else 'FAIL'} {c['name']}: {c['detail']}" for c in m["checks"]
        ]
        lines += ["", "![confusion matrix](candidate/confusion_matrix.png)", ""]
    lines += ["", "## Data", "", "```json", json.dumps(m.get("data", {}), indent=2), "```"]
    if held:
        lines += ["", "## Labels quarantined for review", ""]
        lines += [
            "These agent labels are left out of training from now on. Agents: please check "
            "them in the console; correct a wrong one by labelling the turn again, then "
            "`deskbot quarantine release` what was right.",
            "",
            "| label | agent | customer turn | agent's intent | live model predicts |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {q['label_id']} | {q['agent']} | {q['turn_id']} | {q['intent']} | "
            f"{q['live_prediction'] or '–'} |"
            for q in held
        ]
    if changes:
        lines += [
            "",
            "## Per-intent F1 (largest drops first)",
            "",
            "| intent | live | candidate | change | allowed drop | support |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['intent']} | {_fmt(c['live_f1'])} | {_fmt(c['candidate_f1'])} | {_fmt(c['delta'])} "
            f"| {_fmt(c.get('allowed_drop'))} | {c['support']} |"
            for c in changes
        ]
    return "\n".join(lines) + "\n"


def _html(
    outcome: RetrainOutcome, changes: list[dict[str, Any]], held: list[dict[str, Any]]
) -> str:
    m = outcome.metrics
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Retraining {e(outcome.run_id)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        ".fail{color:#b00}.pass{color:#070}</style></head><body>",
        f"<h1>Retraining run {e(outcome.run_id)}: {e(outcome.decision)}</h1>",
        f"<p>live before <code>{e(str(outcome.live_before))}</code>, after "
        f"<code>{e(str(outcome.live_after))}</code>; candidate <code>{e(str(outcome.candidate))}</code></p>",
    ]
    if "live" in m:
        parts.append("<table><tr><th>metric</th><th>live</th><th>candidate</th></tr>")
        for key in ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "n"):
            parts.append(
                f"<tr><td>{key}</td><td>{_fmt(m['live'].get(key))}</td><td>{_fmt(m['candidate'].get(key))}</td></tr>"
            )
        parts.append("</table><h2>Gate</h2><ul>")
        for c in m["checks"]:
            cls = "pass" if c["passed"] else "fail"
            parts.append(
                f"<li class='{cls}'>{'PASS' if c['passed'] else 'FAIL'} {e(c['name'])}: {e(c['detail'])}</li>"
            )
        parts.append(
            "</ul><img src='candidate/confusion_matrix.png' alt='confusion matrix' width='100%'>"
        )
    else:
        parts += [f"<p>{e(r)}</p>" for r in outcome.reasons]
    parts.append(f"<h2>Data</h2><pre>{e(json.dumps(m.get('data', {}), indent=2))}</pre>")
    if held:
        parts.append(
            "<h2>Labels quarantined for review</h2><p>Left out of training from now on. "
            "Agents: correct a wrong label by labelling the turn again, then "
            "<code>deskbot quarantine release</code> what was right.</p><table><tr>"
            "<th>label</th><th>agent</th><th>customer turn</th><th>agent's intent</th>"
            "<th>live model predicts</th></tr>"
        )
        for q in held:
            parts.append(
                f"<tr><td>{q['label_id']}</td><td>{e(q['agent'])}</td><td>{q['turn_id']}</td>"
                f"<td>{e(q['intent'])}</td><td>{e(str(q['live_prediction'] or '–'))}</td></tr>"
            )
        parts.append("</table>")
    if changes:
        parts.append(
            "<h2>Per-intent F1</h2><table><tr><th>intent</th><th>live</th><th>candidate</th>"
            "<th>change</th><th>allowed drop</th><th>support</th></tr>"
        )
        for c in changes:
            parts.append(
                f"<tr><td>{e(c['intent'])}</td><td>{_fmt(c['live_f1'])}</td><td>{_fmt(c['candidate_f1'])}</td>"
                f"<td>{_fmt(c['delta'])}</td><td>{_fmt(c.get('allowed_drop'))}</td><td>{c['support']}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
