"""The generator's night: train a LoRA adapter when enough new examples exist, gate it,
promote it or not, and report both versions' replies side by side.

One run, under the nightly lock of the adapter registry (`RetrainLock`):

1. export the project's examples (`training.generator.project`: the FAQ, agents'
   replies in handoffs and imported conversations, labels' corrected answers), split
   by conversation into train and held out;
2. count the training examples the live adapter was not trained on (their keys are
   kept per version in `.nightly/known-<version>.json`); fewer than
   `min_new_examples`: nothing to do ("nothing-new");
3. train a candidate from the base model on the training examples (up to
   `max_examples`, a seeded sample); a candidate already rejected on the same examples
   and settings against the same live adapter is not trained again ("repeat");
4. score the live generator (the live adapter, or the base model when none is live)
   and the candidate on the same held-out cases, never trained on
   (`training.generator.scoring`: whole replies judged by the served guard);
5. gate (`generator_gate`): no more refused sentences, and more replies sent or better
   answers at a paired bootstrap bound; promote (LIVE, audited as `system:nightly`,
   serving servers follow it without a restart) or reject (the candidate is deleted);
6. write `report.json` and `report.html` (the checks, both versions' figures, a sample
   of held-out cases with both replies) and append the run to `runs.jsonl`.

The job scores and trains with the local `transformers` backend: the base model must
be a model here (`generator.model`), as `deskbot train generator` needs it to be.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deskbot.bot.core.errors import DataError
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.adapters import AdapterRegistry
from deskbot.bot.store.audit import MODEL_PROMOTED, NIGHTLY, AuditEntry
from deskbot.knowledge.files.fsutil import append_jsonl, atomic_write_text, read_jsonl
from deskbot.training.generator.scoring import CaseScore, HeldOutCase, score_cases, summarize
from deskbot.training.nightly.generator_gate import (
    GeneratorGateSettings,
    gate_generator,
    side_by_side,
)
from deskbot.training.nightly.lock import RetrainLock
from deskbot.training.nightly.reports import render

if TYPE_CHECKING:
    from deskbot.bot.core.config import BotConfig
    from deskbot.bot.generation.guard import GroundingGuard
    from deskbot.bot.generation.local import TransformersGenerator
    from deskbot.bot.store import SqlConversationStore
    from deskbot.training.generator.chat_jsonl import ChatExample

logger = logging.getLogger(__name__)

__all__ = ["GeneratorNight", "GeneratorNightOutcome", "GeneratorNightSettings", "held_out_cases"]

NIGHT_DIR = ".nightly"
_ROLES = {"user": "user", "assistant": "bot"}


@dataclass(frozen=True)
class GeneratorNightSettings:
    """The `generator:` section of `retrain.yaml`. Every field has a default.

    Attributes:
        enabled: train the generator at night; None: when `generator.backend` is
            "transformers" (a model here to train and to score).
        min_new_examples: fewer training examples the live adapter has not seen: no run.
        max_examples: train on at most this many examples (a seeded sample).
        max_cases: score both versions on at most this many held-out cases.
        train_args: `GeneratorTrainingArgs` fields for the night.
        examples: `ExampleSettings` fields over the project's (e.g. `heldout_fraction`,
            `faq_per_entry`); the prompt's settings always come from the config.
        gate: `GeneratorGateSettings` fields.
        seed: for the samples.
    """

    enabled: bool | None = None
    min_new_examples: int = 20
    max_examples: int = 2000
    max_cases: int = 60
    train_args: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_new_examples < 1 or self.max_examples < 1 or self.max_cases < 1:
            raise DataError(
                "retrain settings generator: min_new_examples, max_examples and max_cases "
                "must be at least 1"
            )
        prompt = set(self.examples) & {"top_k", "history_turns", "max_history_tokens", "bot_name"}
        if prompt:
            raise DataError(
                f"retrain settings generator.examples: {sorted(prompt)} come from deskbot.yaml "
                "(the served prompt's settings), not from the night's"
            )
        GeneratorGateSettings(**self.gate)  # a bad gate setting fails on reading

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> GeneratorNightSettings:
        raw = raw or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise DataError(
                f"unknown retrain setting(s) generator.{sorted(unknown)}; known: {sorted(known)}"
            )
        try:
            return cls(**raw)
        except TypeError as exc:
            raise DataError(f"retrain settings generator: {exc}") from exc

    def runs_for(self, backend: str) -> bool:
        return self.enabled if self.enabled is not None else backend == "transformers"


@dataclass
class GeneratorNightOutcome:
    """What a night did with the generator: decision, versions, figures, report."""

    run_id: str
    decision: str  # "off", "nothing-new", "repeat", "promoted", "rejected"
    live_before: str | None
    live_after: str | None
    candidate: str | None = None
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    report_dir: Path | None = None
    # What decides a run: the live adapter, the training examples, the settings. A
    # candidate rejected on the same is not trained again.
    fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["report_dir"] = str(self.report_dir) if self.report_dir else None
        return d


def held_out_cases(
    examples: Sequence[ChatExample], passages: dict[str, Passage], *, limit: int, seed: int
) -> list[HeldOutCase]:
    """The held-out examples as cases the generators compose for (a seeded sample of at
    most `limit`); an example whose passages are no longer in the index is left out."""
    cases = []
    for e in examples:
        ids = list(e.meta.get("passage_ids") or [])
        if not ids or any(i not in passages for i in ids):
            continue
        history = tuple(
            Turn(_ROLES[m["role"]], m["content"])  # type: ignore[arg-type]
            for m in e.prompt[1:]
            if m["role"] in _ROLES
        )
        if not history or history[-1].role != "user":
            continue
        cases.append(
            HeldOutCase(
                id=f"{e.meta.get('source')}:{e.group}:{e.key[:8]}",
                history=history,
                passages=tuple(passages[i] for i in ids),
                reference=e.reply,
                gold_passage=e.meta.get("cited"),
            )
        )
    if len(cases) > limit:
        cases = sorted(random.Random(seed).sample(cases, limit), key=lambda c: c.id)
    return cases


class GeneratorNight:
    """One night of the generator (see the module docstring).

    Args:
        config: the bot's config (its generator, knowledge and store).
        settings: the `generator:` section of `retrain.yaml`.
        store: the conversation store (examples, the audit log).
        reports_dir: reports go into `<reports_dir>/<run_id>/`.
        exclude_labels: agent labels in quarantine.
        progress: show progress bars.
    """

    def __init__(
        self,
        config: BotConfig,
        settings: GeneratorNightSettings,
        store: SqlConversationStore,
        reports_dir: Path,
        *,
        exclude_labels: tuple[int, ...] = (),
        progress: bool = False,
    ) -> None:
        self.config, self.settings, self.store = config, settings, store
        self.registry = AdapterRegistry(config.generator.adapters)
        self.work = self.registry.root / NIGHT_DIR
        self.reports_dir = reports_dir
        self.exclude_labels = exclude_labels
        self.progress = progress

    def run(self) -> GeneratorNightOutcome:
        run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        live = self.registry.live_version()
        if not self.settings.runs_for(self.config.generator.backend):
            return GeneratorNightOutcome(
                run_id, "off", live, live,
                reasons=[f"generator.backend is {self.config.generator.backend!r}: not trained "
                         "at night (retrain.yaml generator.enabled: true to train anyway)"],
            )  # fmt: skip
        with RetrainLock(self.work / "lock", engine=self.store.engine, key=0x64657367):
            outcome = self._run_locked(run_id, live)
        append_jsonl(self.work / "runs.jsonl", outcome.to_dict())
        return outcome

    def runs(self) -> list[dict[str, Any]]:
        return read_jsonl(self.work / "runs.jsonl")

    # - the steps -

    def _run_locked(self, run_id: str, live: str | None) -> GeneratorNightOutcome:
        from deskbot.training.generator.project import export_project_examples, project_settings

        export = export_project_examples(
            self.config, settings=project_settings(self.config, **self.settings.examples),
            store=self.store, exclude_labels=self.exclude_labels, progress=self.progress,
        )  # fmt: skip
        known = self._known(live)
        new = [e for e in export.train if e.key not in known]
        data = {**export.summary(), "new": len(new)}
        if len(new) < self.settings.min_new_examples:
            return GeneratorNightOutcome(
                run_id, "nothing-new", live, live, metrics={"data": data},
                reasons=[f"{len(new)} new training examples (at least "
                         f"{self.settings.min_new_examples} train a candidate)"],
            )  # fmt: skip
        fingerprint = self._fingerprint(live, export.train)
        earlier = self._rejected_before(fingerprint)
        if earlier is not None:
            return GeneratorNightOutcome(
                run_id, "repeat", live, live, metrics={"data": data}, fingerprint=fingerprint,
                reasons=[f"run {earlier} rejected a candidate trained on the same examples "
                         "with the same settings against the same live adapter"],
            )  # fmt: skip
        candidate = self.work / f"candidate-{run_id}"
        trained = self._train(export.train, export.heldout, candidate)
        cases = held_out_cases(
            export.heldout, self._index_passages(), limit=self.settings.max_cases,
            seed=self.settings.seed,
        )  # fmt: skip
        live_scores, cand_scores = self._score(live, candidate, cases)
        gate = gate_generator(live_scores, cand_scores, GeneratorGateSettings(**self.settings.gate))
        metrics = {
            "data": data,
            "training": trained,
            "live": summarize(live_scores),
            "candidate": summarize(cand_scores),
            "checks": gate.checks,
            "side_by_side": side_by_side(live_scores, cand_scores),
        }
        if gate.passed:
            self._promote(run_id, candidate, live, {e.key for e in export.train})
            outcome = GeneratorNightOutcome(run_id, "promoted", live, run_id, run_id, [], metrics)
        else:
            shutil.rmtree(candidate, ignore_errors=True)
            outcome = GeneratorNightOutcome(
                run_id, "rejected", live, live, run_id, gate.reasons, metrics,
                fingerprint=fingerprint,
            )  # fmt: skip
        outcome.report_dir = self._write_report(outcome)
        return outcome

    def _train(
        self, train: Sequence[ChatExample], heldout: Sequence[ChatExample], out: Path
    ) -> dict[str, Any]:
        from deskbot.training.generator.args import GeneratorTrainingArgs
        from deskbot.training.generator.trainer import GeneratorTrainer

        raw = {
            "base_model": self.config.generator.model,
            "max_examples": self.settings.max_examples,
            "seed": self.settings.seed,
            **self.settings.train_args,
        }
        trainer = GeneratorTrainer(
            GeneratorTrainingArgs.from_dict(raw),
            progress=self.progress,
            cache_dir=self.config.generator.cache_dir,
        )
        result = trainer.train(
            train, heldout, out, version=out.name.removeprefix("candidate-"),
            work_dir=self.work / "checkpoint", data_info={"file": "nightly export"},
        )  # fmt: skip
        return {"steps": result.steps, "seconds": round(result.seconds, 1),
                "metrics": result.manifest.metrics}  # fmt: skip

    def _score(
        self, live: str | None, candidate: Path, cases: Sequence[HeldOutCase]
    ) -> tuple[list[CaseScore], list[CaseScore]]:
        guard = self._guard()
        live_dir = self.registry.version_dir(live) if live is not None else None
        scores = []
        for name, adapter in (("live", live_dir), ("candidate", candidate)):
            generator = self._generator(adapter)
            started = time.perf_counter()
            scores.append(score_cases(generator, guard, cases))
            logger.info("generator night: %s scored in %.0fs", name, time.perf_counter() - started)
        return scores[0], scores[1]

    def _generator(self, adapter: Path | None) -> TransformersGenerator:
        from deskbot.bot.generation.local import TransformersGenerator

        g = self.config.generator
        return TransformersGenerator(
            g.model, device=g.device, cache_dir=g.cache_dir, adapter=adapter,
            max_new_tokens=g.max_new_tokens, max_history_tokens=g.max_history_tokens,
            bot_name=self.config.name,
        )  # fmt: skip

    def _guard(self) -> GroundingGuard:
        """The served guard: the same rules, thresholds and claim verifier."""
        from deskbot.bot.generation.responder import build_guard
        from deskbot.knowledge.embedding.embedder import build_embedder

        cfg = self.config
        embedder = build_embedder(cfg.knowledge.embedder, runtime=cfg.limits.inference_runtime)
        return build_guard(cfg.generator, embedder=embedder)

    def _index_passages(self) -> dict[str, Passage]:
        """The live index's passages by id: what the held-out cases were retrieved from."""
        from deskbot.knowledge.indexing.index import load_version
        from deskbot.knowledge.retrieval.retriever import found_passage

        index = load_version(self.config.knowledge.index_dir)
        return {p.id: found_passage(p, 1.0) for p in index.passages}

    def _fingerprint(self, live: str | None, train: Sequence[ChatExample]) -> str:
        from deskbot.training.generator.trainer import data_hash

        settings = dataclasses.asdict(self.settings)
        settings.pop("min_new_examples")  # when a run trains, not what it trains
        key = json.dumps([live, data_hash(train), settings], sort_keys=True, default=str)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def _rejected_before(self, fingerprint: str) -> str | None:
        """The run that rejected a candidate with this fingerprint, if one did."""
        for run in self.runs():
            if run.get("fingerprint") == fingerprint and run.get("decision") == "rejected":
                return str(run["run_id"])
        return None

    def _known(self, version: str | None) -> set[str]:
        if version is None:
            return set()
        path = self.work / f"known-{version}.json"
        try:
            return set(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return set()

    def _promote(self, version: str, candidate: Path, live: str | None, keys: set[str]) -> None:
        """Move the candidate into `versions/`, record what it learnt, switch LIVE."""
        target = self.registry.versions_dir / version
        self.registry.versions_dir.mkdir(parents=True, exist_ok=True)
        candidate.rename(target)
        atomic_write_text(self.work / f"known-{version}.json", json.dumps(sorted(keys)))
        self.registry.set_live(version, reason=f"nightly {version}")
        self.store.record_audit(
            AuditEntry(NIGHTLY, MODEL_PROMOTED, "generator_adapter", version, detail=f"was {live}")
        )

    def _write_report(self, outcome: GeneratorNightOutcome) -> Path:
        out = self.reports_dir / outcome.run_id
        out.mkdir(parents=True, exist_ok=True)
        report = outcome.to_dict() | {"report_dir": str(out)}
        (out / "report.json").write_text(json.dumps(report, indent=2, default=str), "utf-8")
        html = render("generator_report.html.j2", o=outcome, m=outcome.metrics)
        (out / "report.html").write_text(html, encoding="utf-8")
        return out
