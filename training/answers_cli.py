"""`deskbot discover answers`: FAQ answers mined from agents' replies (#20 item 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from deskbot.bot.cli_common import DEFAULT_CONFIG, fail, load, reported
from deskbot.bot.core.errors import DataError, StoreError
from deskbot.knowledge.errors import KnowledgeError


def register(discover_app: typer.Typer) -> None:
    """Add `answers` to the `deskbot discover` group."""
    discover_app.command("answers")(discover_answers)


def discover_answers(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", envvar="DESKBOT_CONFIG", help="The project."),
    ] = DEFAULT_CONFIG,
    similarity: Annotated[
        float, typer.Option(help="Least cosine similarity of replies grouped together.")
    ] = 0.75,
    min_support: Annotated[
        int, typer.Option(help="Fewest agreeing replies an intent needs for a proposal.")
    ] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Propose each labelled intent's most typical agent reply as its FAQ answer.

    Intents come from the Discover tab's approved examples and agents' labels; the
    replies from past conversations. Proposals go to faq-proposals.yaml for review in
    the console's FAQ proposals tab."""
    from deskbot.bot.store import create_store_engine, migrate
    from deskbot.knowledge.embedding.embedder import SentenceTransformerEmbedder
    from deskbot.knowledge.sources.proposals import PROPOSALS_FILE, ProposalsFile
    from deskbot.training.data.answers import (
        AnswerMiner,
        check_exchanges,
        propose,
        read_exchanges,
    )

    if not 0 < similarity < 1:
        raise fail(f"--similarity {similarity}: pass a number between 0 and 1")
    if min_support < 1:
        raise fail(f"--min-support {min_support}: pass 1 or more")
    cfg = load(config)
    engine = create_store_engine(cfg.database.url)
    try:
        with reported(StoreError, DataError):
            migrate(engine)
            exchanges = read_exchanges(engine, cfg.intents.discovered_data)
            check_exchanges(exchanges, cfg.database.url)
    finally:
        engine.dispose()
    miner = AnswerMiner(
        SentenceTransformerEmbedder(cfg.knowledge.embedder),
        similarity=similarity,
        min_support=min_support,
    )
    proposals = ProposalsFile(cfg.knowledge.index_dir.parent / PROPOSALS_FILE)
    with reported(KnowledgeError):
        mined = miner.mine(exchanges)
        counts = propose(mined, proposals)
    intents = len({e.intent for e in exchanges})
    if as_json:
        doc = {"exchanges": len(exchanges), "intents": intents, "proposed": len(mined), **counts}
        typer.echo(json.dumps({**doc, "proposals_file": str(proposals.path)}))
        return
    typer.echo(
        f"{len(exchanges)} replies to {intents} intents: {len(mined)} answers proposed "
        f"({counts['added']} new, {counts['updated']} refreshed, {counts['kept']} already "
        f"reviewed) in {proposals.path}"
    )
    for m in mined:
        typer.echo(f"{m.support:4d}/{m.replies:<4d} {m.intent}: {m.answer[:80]}")
