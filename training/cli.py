"""Training commands, added to `deskbot` as a plug-in: `train intents`, `eval intents`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from deskbot.bot.cli import DEFAULT_CONFIG, fail, load
from deskbot.bot.cli_common import audited
from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.nlu.registry import ModelRegistry
from deskbot.bot.store.audit import MODEL_PROMOTED
from deskbot.knowledge.errors import KnowledgeError
from deskbot.knowledge.files.safe_yaml import load_yaml
from deskbot.training.registry_cli import ConfigOpt

train_app = typer.Typer(help="Train models.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    from deskbot.training import (
        answers_cli,
        discover_cli,
        generator_cli,
        import_cli,
        registry_cli,
        retriever_cli,
    )

    registry_cli.register(app)  # `deskbot retrain`, `deskbot models ...`
    import_cli.register(app)  # `deskbot import conversations`
    discover_cli.register(app)  # `deskbot discover intents`
    answers_cli.register(discover_cli.discover_app)  # `deskbot discover answers`
    generator_cli.register(train_app)  # `deskbot train generator`
    retriever_cli.register(train_app)  # `deskbot train retriever`


@train_app.command("intents")
def train_intents(
    data: Annotated[
        Path | None, typer.Option("--data", help="Training file (default: intents.train_data).")
    ] = None,
    valid: Annotated[
        Path | None, typer.Option("--valid", help="Validation file (default: a split of --data).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the model here (default: a new version in the registry)."
        ),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    args_file: Annotated[
        Path | None,
        typer.Option("--args", help="YAML file of training arguments (overrides the config's)."),
    ] = None,
    promote: Annotated[
        bool, typer.Option(help="Make the new version live in the registry.")
    ] = False,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps (smoke runs).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the number of epochs.")] = None,
) -> None:
    """Fine-tune the intent classifier and write a model version directory."""
    from deskbot.training.data.datasets import load_intents, load_project_intents
    from deskbot.training.intents.trainer import IntentTrainer, TrainingArgs

    cfg = load(config) if (data is None or out is None or config.exists()) else None
    raw_args = dict(cfg.training) if cfg else {}
    try:
        raw_args.update(_read_training_args(args_file) if args_file is not None else {})
        overrides = {"max_steps": max_steps, "epochs": epochs}
        raw_args.update({k: v for k, v in overrides.items() if v is not None})
        args = TrainingArgs.from_dict(raw_args)
        if data is not None or cfg is None:
            if data is None:
                raise fail("no training data: pass --data or set intents.train_data")
            dataset = load_intents(data)
        else:  # the project's intents file and the Discover tab's approved examples
            dataset = load_project_intents(cfg.intents.train_data, cfg.intents.discovered_data)
        valid_set = load_intents(valid) if valid else None
        registry = ModelRegistry(cfg.intents.registry) if cfg and out is None else None
        if out is None:
            assert registry is not None
            out = registry.versions_dir / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        typer.echo(f"training on {len(dataset)} examples, {len(dataset.intents)} intents -> {out}")
        result = IntentTrainer(args).train(dataset, out, valid=valid_set, version=out.name)
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    m = result.manifest
    typer.echo(
        f"model {m.version}: valid accuracy {m.metrics['valid_accuracy']:.4f}, temperature "
        f"{m.temperature:.3f}, oos threshold {m.oos_threshold:.3f}, {result.seconds / 60:.1f} min"
    )
    if promote:
        if registry is None:
            raise fail("--promote needs the registry of a config (drop --out)")
        from deskbot.bot.server.container import build_store

        assert cfg is not None  # a registry comes from a config
        previous = registry.live_version()
        registry.set_live(m.version, reason="train --promote")
        audited(
            build_store(cfg),
            MODEL_PROMOTED,
            object_type="model",
            object_id=m.version,
            detail=f"train --promote, was {previous}",
        )
        typer.echo(f"{m.version} is live")


@train_app.command("verifier")
def train_verifier(
    config: ConfigOpt = DEFAULT_CONFIG,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the version here (default: a new live version under generator.verifier).",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the number of epochs.")] = None,
) -> None:
    """Train the guard's claim verifier on passage/claim pairs made from the FAQ."""
    from deskbot.knowledge.files.fsutil import atomic_write_text
    from deskbot.knowledge.sources.loading import faq_entries
    from deskbot.training.claims.trainer import VerifierArgs, VerifierTrainer

    cfg = load(config)
    try:
        entries = faq_entries(cfg.knowledge.sources)
        if not entries:
            raise fail(f"{config}: knowledge.sources holds no FAQ file to make claims from")
        args = VerifierArgs() if epochs is None else VerifierArgs(epochs=epochs)
        version = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        registry = cfg.generator.verifier
        target = out or registry / "versions" / version
        typer.echo(f"training the claim verifier on {len(entries)} FAQ entries -> {target}")
        result = VerifierTrainer(args, progress=typer.echo).train(entries, target, version=version)
        if out is None:
            atomic_write_text(registry / "LIVE", version + "\n")
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    m = result.manifest
    dev = m.metrics["dev"]
    typer.echo(
        f"verifier {m.version}: min_support {m.min_support}, max_contradiction "
        f"{m.max_contradiction}; dev: {dev['supported_passed']:.3f} supported passed, "
        f"{dev['contradicted_rejected']:.3f} contradicted and {dev['unsupported_rejected']:.3f} "
        f"unsupported rejected; {result.seconds / 60:.1f} min"
        + ("" if out else f"; live under {registry}")
    )


def _read_training_args(path: Path) -> dict[str, Any]:
    """A YAML mapping of `TrainingArgs` fields (`--args`)."""
    try:
        loaded = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise fail(f"{path}: cannot read training arguments: {exc}") from None
    if not isinstance(loaded, dict):
        raise fail(f"{path}: expected a mapping of training arguments")
    return loaded


@eval_app.command("intents")
def eval_intents(
    model: Annotated[
        Path | None, typer.Option("--model", help="A model directory (default: the live one).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Labelled file (default: intents.test_data).")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the full report here.")
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="fp32, or int8 (quantised encoder, as limits.inference_precision serves it).",
        ),
    ] = "fp32",
) -> None:
    """Score a model on labelled data (accuracy, macro F1, out-of-scope recall and precision)."""
    from deskbot.bot.nlu.classifier import TransformerIntentClassifier
    from deskbot.training.data.datasets import load_intents
    from deskbot.training.intents.evaluation import evaluate, write_report

    cfg = load(config) if (model is None or data is None) else None
    try:
        model_dir = model or ModelRegistry(cfg.intents.registry).live_dir()  # type: ignore[union-attr]
        data_path = data or (cfg.intents.test_data if cfg else None)
        if data_path is None:
            raise fail("no test data: pass --data or set intents.test_data in the config")
        if precision not in ("fp32", "int8"):
            raise fail(f"--precision must be fp32 or int8, not {precision!r}")
        clf = TransformerIntentClassifier(model_dir, precision=precision)
        ev = evaluate(clf, load_intents(data_path))
        if report is not None:
            write_report(ev, report)
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(ev.metrics))
        return
    for key, value in ev.metrics.items():
        typer.echo(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")
    if report is not None:
        typer.echo(f"report written to {report}")
