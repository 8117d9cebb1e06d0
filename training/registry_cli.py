"""`deskbot retrain`, `deskbot models list|show|promote|rollback`, `deskbot quarantine ...`.

`deskbot models` works on either kind of model version (`--kind`): the intent models
(`intents.registry`, the default) or the generator's LoRA adapters (`generator.adapters`).
Promotions and rollbacks are audited alike; the row's object_type says the kind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deskbot.bot.cli import DEFAULT_CONFIG, fail, load
from deskbot.bot.cli_common import audited
from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.core.registry import VersionRegistry
from deskbot.bot.generation.adapter_serving import check_base
from deskbot.bot.generation.adapters import AdapterRegistry, read_adapter_manifest
from deskbot.bot.nlu.registry import ModelRegistry, read_manifest
from deskbot.bot.store.audit import MODEL_PROMOTED, MODEL_ROLLED_BACK, NIGHTLY
from deskbot.knowledge.errors import KnowledgeError

models_app = typer.Typer(help="Model versions and the live pointer.", no_args_is_help=True)
quarantine_app = typer.Typer(
    help="Agent labels kept out of training until reviewed.", no_args_is_help=True
)

if TYPE_CHECKING:
    from deskbot.bot.core.config import BotConfig
    from deskbot.training.nightly.generator_night import GeneratorNight, GeneratorNightSettings
    from deskbot.training.nightly.job import RetrainJob, RetrainOutcome

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", envvar="DESKBOT_CONFIG", help="The bot's config.")
]
RETRAIN_SETTINGS = "retrain.yaml"


class Kind(StrEnum):
    """The kinds of model versions: intent classifiers, the generator's LoRA adapters."""

    intents = "intents"
    generator = "generator"


KindOpt = Annotated[
    Kind,
    typer.Option("--kind", help="intents: the intent models; generator: the LoRA adapters."),
]
# The audit log's object_type of each kind's promotions and rollbacks.
AUDIT_OBJECT = {Kind.intents: "model", Kind.generator: "generator_adapter"}


def _registry(config: Path) -> ModelRegistry:
    return ModelRegistry(load(config).intents.registry)


def _kind_registry(cfg: BotConfig, kind: Kind) -> VersionRegistry:
    if kind is Kind.generator:
        return AdapterRegistry(cfg.generator.adapters)
    return ModelRegistry(cfg.intents.registry)


def _runs_by_version(registry: VersionRegistry) -> dict[str, dict[str, Any]]:
    from deskbot.knowledge.files.fsutil import read_jsonl
    from deskbot.training.nightly.job import WORK_DIR

    return {
        run["candidate"]: run
        for run in read_jsonl(registry.root / WORK_DIR / "runs.jsonl")
        if run.get("candidate") and run.get("decision") == "promoted"
    }


def _created(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def _rows(
    registry: VersionRegistry, describe: Callable[[str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """A row per version: `describe(version)`, or the error that made it unreadable."""
    live = registry.live_version()
    rows: list[dict[str, Any]] = []
    for version in registry.versions():
        try:
            row = describe(version)
        except DeskbotError as exc:
            row = {"error": str(exc)}
        rows.append({"version": version, "live": version == live, **row})
    return rows


def _intent_rows(registry: VersionRegistry) -> list[dict[str, Any]]:
    runs = _runs_by_version(registry)

    def describe(version: str) -> dict[str, Any]:
        m = read_manifest(registry.versions_dir / version)
        test = runs.get(version, {}).get("metrics", {}).get("candidate", {})
        return {
            "created": _created(m.created_at),
            "labels": len(m.labels),
            "valid_accuracy": m.metrics.get("valid_accuracy"),
            "heldout_accuracy": test.get("accuracy"),
            "data": m.data,
            "from": m.base_model,
        }

    return _rows(registry, describe)


def _adapter_rows(registry: VersionRegistry) -> list[dict[str, Any]]:
    def describe(version: str) -> dict[str, Any]:
        m = read_adapter_manifest(registry.versions_dir / version)
        return {
            "created": _created(m.created_at),
            "base_model": m.base_model,
            "rank": m.lora.get("r"),
            "metrics": m.metrics,
            "data": m.data,
        }

    return _rows(registry, describe)


def _intent_line(r: dict[str, Any]) -> str:
    line = f"{'*' if r['live'] else ' '} {r['version']}  {r['created']}  {r['labels']} intents"
    line += f"  valid {r['valid_accuracy']:.4f}" if r["valid_accuracy"] is not None else ""
    heldout = r["heldout_accuracy"]
    line += f"  held-out {heldout:.4f}" if isinstance(heldout, float) else ""
    data = ", ".join(f"{k}={str(v)[:12]}" for k, v in sorted(r["data"].items()))
    return f"{line}  data {data}"


def _adapter_line(r: dict[str, Any]) -> str:
    line = f"{'*' if r['live'] else ' '} {r['version']}  {r['created']}  base {r['base_model']}"
    line += f"  rank {r['rank']}"
    for name, value in sorted(r["metrics"].items()):
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        line += f"  {name} {shown}"
    return line


@models_app.command("list")
def models_list(
    config: ConfigOpt = DEFAULT_CONFIG,
    kind: KindOpt = Kind.intents,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Every version of a kind: when it was made, its figures, its data; * marks LIVE."""
    generator = kind is Kind.generator
    registry = _kind_registry(load(config), kind)
    rows = _adapter_rows(registry) if generator else _intent_rows(registry)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo(
            f"no {'adapter' if generator else 'model'} versions yet: `{registry.train_hint}`"
        )
    for r in rows:
        if "error" in r:
            typer.echo(f"  {r['version']}  BROKEN: {r['error']}")
            continue
        typer.echo(_adapter_line(r) if generator else _intent_line(r))


@models_app.command("show")
def models_show(
    version: Annotated[
        str | None, typer.Argument(help="A version (default: the live one).")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    kind: KindOpt = Kind.intents,
) -> None:
    """Print a version's manifest (intents: labels, calibration; generator: base model,
    LoRA settings; both: metrics, data, training)."""
    registry = _kind_registry(load(config), kind)
    read = read_adapter_manifest if kind is Kind.generator else read_manifest
    try:
        version = version or registry.live_version()
        if version is None:
            raise fail(f"{registry.root}: no live model; name a version")
        m = read(registry.version_dir(version))
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    data = json.loads(m.to_json())
    data["live"] = version == registry.live_version()
    run = _runs_by_version(registry).get(version)
    if run:
        data["retrain_report"] = run.get("report_dir")
        data["heldout"] = run.get("metrics", {}).get("candidate")
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def _check_adapter_base(cfg: BotConfig, registry: VersionRegistry, version: str) -> None:
    """A local generator refuses an adapter trained on another base: so does promote."""
    if cfg.generator.backend == "transformers":
        check_base(read_adapter_manifest(registry.version_dir(version)), cfg.generator.model)


def _move_live(
    config: Path,
    kind: Kind,
    action: str,
    going_to: Callable[[VersionRegistry], str | None],
    move: Callable[[VersionRegistry], str],
) -> tuple[str, str | None]:
    """Point LIVE of `kind` with `move` (which returns the version now live), once the
    version `going_to` names fits the generator and the audit log is reachable; audit
    it as `action`. Returns the version now live and the one live before."""
    from deskbot.bot.server.container import build_store

    cfg = load(config)
    registry = _kind_registry(cfg, kind)
    try:
        version = going_to(registry)
        if kind is Kind.generator and version is not None:
            _check_adapter_base(cfg, registry, version)
        store = build_store(cfg)  # before the change: the audit log must be reachable
        previous = registry.live_version()
        live = move(registry)
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    audited(store, action, object_type=AUDIT_OBJECT[kind], object_id=live, detail=f"was {previous}")
    return live, previous


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="The version to make live.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    kind: KindOpt = Kind.intents,
) -> None:
    """Make VERSION live (atomically; running servers pick it up without a restart)."""

    def promote(registry: VersionRegistry) -> str:
        registry.set_live(version, reason="promote (manual)")
        return version

    _, previous = _move_live(config, kind, MODEL_PROMOTED, lambda _: version, promote)
    typer.echo(f"{version} is live (was {previous})")


@models_app.command("rollback")
def models_rollback(
    to: Annotated[
        str | None, typer.Option("--to", help="A version (default: the previous live one).")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    kind: KindOpt = Kind.intents,
) -> None:
    """Make the previously live version (or --to VERSION) live again."""
    target, previous = _move_live(
        config,
        kind,
        MODEL_ROLLED_BACK,
        lambda registry: to or registry.rollback_target(),
        lambda registry: registry.rollback(to),
    )
    typer.echo(f"{target} is live again (was {previous})")


def retrain(
    config: ConfigOpt = DEFAULT_CONFIG,
    since: Annotated[
        datetime | None,
        typer.Option(help="Only labels and feedback from this time on (UTC, e.g. 2026-11-01)."),
    ] = None,
    settings_file: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            help=f"Retrain settings YAML (default: {RETRAIN_SETTINGS} beside the config, if any).",
        ),
    ] = None,
    reports: Annotated[
        Path | None,
        typer.Option("--reports", help="Where run reports go (default: var/reports/retrain)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome as one JSON object.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar while training.")] = False,
) -> None:
    """Learn from the logs: export, fine-tune from the live model, gate, promote, report.

    Exits 0 whether the candidate was promoted or rejected (see the report), 2 on an
    error, 3 when another run holds the lock.
    """
    from deskbot.training.data.faq_proposals import FaqLoop
    from deskbot.training.nightly.generator_night import GeneratorNightSettings
    from deskbot.training.nightly.job import RetrainBusy

    cfg = load(config)
    if cfg.intents.train_data is None or cfg.intents.test_data is None:
        raise fail("retrain needs intents.train_data and intents.test_data (the held-out set)")
    try:
        job = _retrain_job(cfg, settings_file, reports, progress)
        # Read before the intents' night: bad generator settings fail now, not hours later.
        generator_settings = GeneratorNightSettings.from_dict(job.settings.generator)
        started = time.perf_counter()
        outcome = job.run(
            since=since.replace(tzinfo=UTC) if since and since.tzinfo is None else since
        )
        faq = FaqLoop.from_config(cfg).run(job.store, actor=NIGHTLY)
        # Built after it: labels the intents' night quarantined stay out of its examples.
        generator = _generator_night(cfg, job, generator_settings, progress).run()
        if cfg.privacy.audit_retention_days is not None:
            job.store.prune_audit(cfg.privacy.audit_retention_days, actor=NIGHTLY)
    except RetrainBusy as exc:
        raise fail(str(exc), code=3) from None
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(
            json.dumps(
                {**outcome.to_dict(), "faq": faq, "generator": generator.to_dict()}, default=str
            )
        )
        return
    _print_outcome(outcome, faq, time.perf_counter() - started)
    typer.echo(
        f"generator: {generator.decision}; live adapter {generator.live_before} -> "
        f"{generator.live_after}"
        + "".join(f"\n  {reason}" for reason in generator.reasons)
        + (f"\nreport: {generator.report_dir / 'report.html'}" if generator.report_dir else "")
    )


def _generator_night(
    cfg: BotConfig, job: RetrainJob, settings: GeneratorNightSettings, progress: bool
) -> GeneratorNight:
    """The generator's part of the night, after the intents' (same store and settings file)."""
    from deskbot.training.nightly.generator_night import GeneratorNight

    return GeneratorNight(
        cfg,
        settings,
        job.store,
        job.reports_dir.parent / "generator",
        exclude_labels=tuple(job.quarantine.label_ids()),
        progress=progress,
    )


def _retrain_job(
    cfg: BotConfig, settings_file: Path | None, reports: Path | None, progress: bool
) -> RetrainJob:
    from deskbot.bot.server.container import build_store
    from deskbot.training.data.datasets import load_intents, load_project_intents
    from deskbot.training.nightly.job import RetrainJob, RetrainSettings

    assert cfg.intents.train_data is not None and cfg.intents.test_data is not None
    path = settings_file or (cfg.root / RETRAIN_SETTINGS)
    settings = RetrainSettings.from_file(path) if path.is_file() else RetrainSettings()
    if settings_file is not None and not settings_file.is_file():
        raise fail(f"{settings_file}: no such settings file")
    return RetrainJob(
        store=build_store(cfg),
        registry=ModelRegistry(cfg.intents.registry),
        base_data=load_project_intents(cfg.intents.train_data, cfg.intents.discovered_data),
        test_data=load_intents(cfg.intents.test_data),
        settings=settings,
        base_training=dict(cfg.training),
        reports_dir=reports or (cfg.root / "var" / "reports" / "retrain"),
        progress=progress,
    )


def _print_outcome(outcome: RetrainOutcome, faq: dict[str, Any], seconds: float) -> None:
    repeat = " (repeat of an earlier run)" if outcome.repeated else ""
    typer.echo(
        f"run {outcome.run_id}: {outcome.decision}{repeat}"
        f"; live {outcome.live_before} -> {outcome.live_after} ({seconds:.0f} s)"
    )
    for reason in outcome.reasons:
        typer.echo(f"  {reason}")
    for notice in outcome.notices:
        typer.echo(f"  notice: {notice}")
    if outcome.report_dir:
        typer.echo(f"report: {outcome.report_dir / 'report.html'}")
    typer.echo(
        f"FAQ: {faq['proposed']} new proposals for review in {faq['proposals_file']}, "
        f"{faq['ingested']} approved entries ingested"
    )


def _quarantine(config: Path) -> Any:
    from deskbot.training.nightly.job import WORK_DIR
    from deskbot.training.nightly.quarantine import LabelQuarantine

    return LabelQuarantine(_registry(config).root / WORK_DIR / "quarantine.json")


@quarantine_app.command("list")
def quarantine_list(
    config: ConfigOpt = DEFAULT_CONFIG,
    agent: Annotated[str | None, typer.Option(help="Only this agent's labels.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The quarantined labels: who gave them, on which turn, and why they are held."""
    try:
        q = _quarantine(config)
        entries = [e for e in q.entries() if agent is None or e.agent == agent]
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    if as_json:
        import dataclasses

        typer.echo(json.dumps([dataclasses.asdict(e) for e in entries]))
        return
    if not entries:
        typer.echo("no labels in quarantine")
        return
    for e in entries:
        typer.echo(
            f"label {e.label_id}  {e.agent}  turn {e.turn_id}  {e.intent}"
            f" (live model: {e.live_prediction or '-'})  run {e.run_id or 'by hand'}"
        )
    summary = q.summary()
    typer.echo(f"{len(entries)} of {summary['labels']} shown; by agent: {summary['by_agent']}")


@quarantine_app.command("release")
def quarantine_release(
    label_ids: Annotated[list[int] | None, typer.Argument(help="Label ids to release.")] = None,
    agent: Annotated[str | None, typer.Option(help="Release this agent's labels.")] = None,
    run: Annotated[str | None, typer.Option(help="Release what this run quarantined.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Release every label.")] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Return reviewed labels to training (the next `deskbot retrain` uses them)."""
    try:
        n = _quarantine(config).release(
            label_ids=label_ids or (), agent=agent, run_id=run, everything=everything
        )
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{n} labels released")


@quarantine_app.command("withdraw")
def quarantine_withdraw(
    agent: Annotated[str, typer.Argument(help="The agent whose labels to withdraw.")],
    since: Annotated[
        datetime | None, typer.Option(help="Only labels given from this time on (UTC).")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Keep every intent label AGENT gave (since --since) out of training until released."""
    from deskbot.bot.server.container import build_store
    from deskbot.training.nightly.quarantine import withdraw_agent

    try:
        n = withdraw_agent(
            build_store(load(config)),
            _quarantine(config),
            agent,
            since=since.replace(tzinfo=UTC) if since and since.tzinfo is None else since,
        )
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{n} labels of {agent} quarantined")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.add_typer(quarantine_app, name="quarantine")
    app.command("retrain")(retrain)
