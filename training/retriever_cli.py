"""`deskbot train retriever`: adapt the FAQ's encoder to the project's customers.

    deskbot train retriever [-c PROJECT] [--out DIR] [--steps N] [--threads N] [--seed N]
                            [--base MODEL]

Pairs each intent-labelled utterance (`intents.train_data`, `knowledge.examples`, the
entries' alternative questions) with the FAQ entry of its intent and fine-tunes the
encoder on them (`training.retriever.trainer`). The model is written as a new version
folder under var/models/retriever/versions/ (or `--out`); point `knowledge.embedder`
at it and run `deskbot ingest`, since the index's vectors come from the encoder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from deskbot.bot.cli_common import DEFAULT_CONFIG, ConfigOption, fail, load
from deskbot.bot.core.errors import DeskbotError
from deskbot.knowledge.errors import KnowledgeError

# Where the versions go, under the project's folder.
REGISTRY = Path("var/models/retriever")


def register(train_app: typer.Typer) -> None:
    """Add `retriever` to the `deskbot train` group."""
    train_app.command("retriever")(train_retriever)


def train_retriever(
    config: ConfigOption = DEFAULT_CONFIG,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the model here (default: a new version folder)."),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps (default 140).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for training.")] = None,
    seed: Annotated[int | None, typer.Option(help="Batches and initialisation.")] = None,
    base: Annotated[
        str | None,
        typer.Option(help="The encoder to start from (default: knowledge.embedder)."),
    ] = None,
) -> None:
    """Fine-tune the FAQ's encoder on the project's labelled utterances and its FAQ."""
    from deskbot.knowledge.sources.loading import faq_entries, read_examples
    from deskbot.training.retriever.trainer import RetrieverArgs, RetrieverTrainer

    cfg = load(config)
    try:
        entries = faq_entries(cfg.knowledge.sources)
        if not entries:
            raise fail(f"{config}: knowledge.sources holds no FAQ file to train the retriever on")
        examples: dict[str, list[str]] = {}
        labelled = [*cfg.knowledge.examples]
        if cfg.intents.train_data is not None and cfg.intents.train_data.is_file():
            labelled.append(cfg.intents.train_data)
        for path in dict.fromkeys(p.resolve() for p in labelled):
            found, _problems = read_examples(path)  # unusable rows are skipped, as ingest does
            for intent, texts in found.items():
                examples.setdefault(intent, []).extend(texts)
        overrides = {
            k: v
            for k, v in {"steps": steps, "threads": threads, "seed": seed}.items()
            if v is not None
        }
        args = RetrieverArgs(base=base or cfg.knowledge.embedder, **overrides)
        version = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = out or cfg.root / REGISTRY / "versions" / version
        typer.echo(f"adapting {args.base} to {len(entries)} FAQ entries -> {target}")
        result = RetrieverTrainer(args, progress=typer.echo).train(
            entries, examples, target, version=version
        )
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    dev = result.manifest["metrics"]["dev"]
    typer.echo(
        f"retriever {version}: held-out utterances finding their entry first "
        f"{dev['before']['top1']:.3f} -> {dev['after']['top1']:.3f}; "
        f"{result.seconds / 60:.1f} min"
    )
    shown = target.resolve()
    if shown.is_relative_to(cfg.root.resolve()):
        shown = shown.relative_to(cfg.root.resolve())
    typer.echo(f"to use it: set knowledge.embedder: {shown} and run deskbot ingest")
