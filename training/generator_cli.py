"""`deskbot train generator`: LoRA fine-tuning of the reply generator (added to `train`).

    deskbot train generator [-c PROJECT] [--data FILE] [--export-only FILE] [--out DIR]
                            [--promote] [--epochs N] [--max-examples N] [--max-steps N]
                            [--threads N] [--batch-size N] [--max-length N] [--lora-layers N]
                            [--bf16] [--resume]

Without `--data` the examples are exported from the project now (its store, FAQ index
and intents file: `training.generator.examples`); `--export-only FILE` writes them as
chat-format JSONL and trains nothing. A bad `--data` file is refused whole, at its first
bad line (`error: FILE:LINE: what to fix`), before anything is written. The version
goes into the adapter registry (`generator.adapters`) unless `--out` names a folder;
`--resume` goes on from the last checkpoint of the run that was stopped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from deskbot.bot.cli_common import DEFAULT_CONFIG, ConfigOption, audited, fail, load
from deskbot.bot.core.config import BotConfig
from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.generation.adapters import AdapterRegistry
from deskbot.bot.store.audit import MODEL_PROMOTED
from deskbot.knowledge.errors import KnowledgeError

# The registry's work folder: checkpoints of the run in progress (`--resume`).
WORK_DIR = ".work"


def register(train_app: typer.Typer) -> None:
    """Add `generator` to the `deskbot train` group."""
    train_app.command("generator")(train_generator)


def train_generator(
    config: ConfigOption = DEFAULT_CONFIG,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="A chat-format JSONL export (default: export now)."),
    ] = None,
    export_only: Annotated[
        Path | None,
        typer.Option("--export-only", help="Write the export to this JSONL file; train nothing."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the adapter here (default: a new registry version)."),
    ] = None,
    promote: Annotated[bool, typer.Option(help="Make the new version live.")] = False,
    epochs: Annotated[int | None, typer.Option(help="Passes over the examples.")] = None,
    max_examples: Annotated[
        int | None, typer.Option(help="Train on at most this many examples.")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for training.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples a forward pass.")] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Tokens an example may have (its reply is kept).")
    ] = None,
    lora_layers: Annotated[
        int | None,
        typer.Option(help="LoRA on the model's last N layers only (0: every layer)."),
    ] = None,
    bf16: Annotated[
        bool, typer.Option(help="bfloat16 matrix products on the CPU (AVX512-BF16, AMX).")
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Go on from the stopped run's last checkpoint.")
    ] = False,
) -> None:
    """Fine-tune the generator (LoRA) on the FAQ's and agents' answers."""
    from deskbot.training.generator.args import GeneratorTrainingArgs
    from deskbot.training.generator.chat_jsonl import read_examples, write_examples

    if export_only is not None and data is not None:
        raise fail("--export-only writes a new export: drop --data")
    if promote and out is not None:
        raise fail("--promote needs the registry of a config (drop --out)")
    cfg = load(config) if (data is None or out is None or config.exists()) else None
    try:
        raw: dict[str, Any] = {"base_model": cfg.generator.model} if cfg is not None else {}
        overrides = {
            "batch_size": batch_size,
            "max_length": max_length,
            "epochs": epochs,
            "max_examples": max_examples,
            "max_steps": max_steps,
            "num_threads": threads,
            "lora_layers": lora_layers,
        }
        raw.update({k: v for k, v in overrides.items() if v is not None})
        raw["bf16"] = bf16
        args = GeneratorTrainingArgs.from_dict(raw)
        examples = read_examples(data) if data is not None else _export(cfg)
        if export_only is not None:
            n = write_examples(examples, export_only)
            typer.echo(f"wrote {n} examples to {export_only}")
            return
        _train(cfg, args, examples, out, promote=promote, resume=resume, data=data)
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None


def _export(cfg: BotConfig | None) -> list[Any]:
    from deskbot.training.generator.project import export_project_examples

    assert cfg is not None  # loaded whenever --data is not given
    export = export_project_examples(cfg)
    s = export.summary()
    typer.echo(
        f"exported {s['examples']} examples ({s['train']} train, {s['heldout']} held out): "
        + ", ".join(f"{k} {v}" for k, v in s["by_source"].items())
        + (f"; left out: {s['left_out']}" if s["left_out"] else "")
    )
    return list(export.examples)


def _train(
    cfg: BotConfig | None,
    args: Any,
    examples: list[Any],
    out: Path | None,
    *,
    promote: bool,
    resume: bool,
    data: Path | None,
) -> None:
    from deskbot.bot.core.errors import DataError
    from deskbot.training.generator.chat_jsonl import HELDOUT, TRAIN
    from deskbot.training.generator.trainer import GeneratorTrainer

    train = [e for e in examples if e.split == TRAIN]
    heldout = [e for e in examples if e.split == HELDOUT]
    if not train:
        raise DataError("no training examples (every example is held out)")
    registry = AdapterRegistry(cfg.generator.adapters) if cfg and out is None else None
    if out is None:
        assert registry is not None
        out = registry.versions_dir / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        work = registry.root / WORK_DIR
    else:
        work = out.parent / f".work-{out.name}"
    typer.echo(f"training on {len(train)} examples ({len(heldout)} held out) -> {out}")
    info = {"file": str(data)} if data is not None else {"file": "export"}
    cache = cfg.generator.cache_dir if cfg else None
    result = GeneratorTrainer(args, cache_dir=cache).train(
        train, heldout, out, work_dir=work, resume=resume, data_info=info
    )
    m = result.manifest.metrics
    typer.echo(
        f"adapter {result.manifest.version}: held-out loss {_f(m['heldout_loss_before'])} -> "
        f"{_f(m['heldout_loss'])}, token accuracy {_f(m['heldout_token_accuracy_before'])} -> "
        f"{_f(m['heldout_token_accuracy'])}; {result.steps} steps, {result.seconds / 60:.1f} min"
    )
    if promote:
        _promote(cfg, registry, result.manifest.version)


def _promote(cfg: BotConfig | None, registry: AdapterRegistry | None, version: str) -> None:
    from deskbot.bot.server.container import build_store

    assert cfg is not None and registry is not None  # --promote refuses --out
    previous = registry.live_version()
    registry.set_live(version, reason="train --promote")
    audited(
        build_store(cfg),
        MODEL_PROMOTED,
        object_type="generator_adapter",
        object_id=version,
        detail=f"train generator --promote, was {previous}",
    )
    typer.echo(f"{version} is live")


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
