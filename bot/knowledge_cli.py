"""The knowledge index's commands: `deskbot ingest` and `deskbot search` (registered
by the root, `deskbot.bot.cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deskbot.bot.cli_common import DEFAULT_CONFIG, ConfigOption, fail, load, reported
from deskbot.bot.core.config import BotConfig
from deskbot.bot.core.errors import DeskbotError
from deskbot.knowledge.errors import KnowledgeError
from deskbot.knowledge.passage import Passage

if TYPE_CHECKING:
    from deskbot.knowledge.indexing.ingest import IngestReport

Sources = Annotated[
    list[Path] | None,
    typer.Argument(
        help="FAQ files (.yaml .csv .json .jsonl), documents (.md .html .txt) or folders "
        "(default: knowledge.sources)."
    ),
]
Examples = Annotated[
    list[Path] | None,
    typer.Option(
        "--examples",
        help="CSV of intent-labelled utterances (text,category), e.g. the intents' TRAIN "
        "data: each becomes an alternative question of its intent's FAQ entry.",
    ),
]


def ingest(
    paths: Sources = None,
    config: ConfigOption = DEFAULT_CONFIG,
    strict: Annotated[
        bool, typer.Option(help="Fail on the first bad row or file instead of skipping it.")
    ] = False,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="Write the index NAME beside knowledge.index_dir instead of that one.",
        ),
    ] = None,
    examples: Examples = None,
    examples_per_intent: Annotated[
        int | None, typer.Option(min=1, help="At most this many --examples per intent.")
    ] = None,
    embedding: Annotated[
        str,
        typer.Option(
            help="What is embedded per passage: question, question+answer, question+sentences (a document passage also gets a vector per sentence)."
        ),
    ] = "question",
    index_type: Annotated[
        str, typer.Option(help="auto (exact when small, HNSW when large), flat or hnsw.")
    ] = "auto",
    max_chars: Annotated[
        int, typer.Option(min=100, help="Documents are split into passages of at most this.")
    ] = 1000,
) -> None:
    """Embed knowledge files into a new version of the index (only what changed is re-embedded)."""
    from deskbot.knowledge.embedding.embedder import build_embedder
    from deskbot.knowledge.indexing.ingest import ingest as run_ingest

    cfg = load(config)
    sources = list(paths or cfg.knowledge.index_sources())
    if not sources:
        raise fail("no FAQ files: pass them or list them in knowledge.sources")
    index_dir = _index_dir(cfg, index)
    with reported(ValueError, DeskbotError, KnowledgeError):
        report = run_ingest(
            sources,
            index_dir,
            build_embedder(cfg.knowledge.embedder, runtime=cfg.limits.inference_runtime),
            strict=strict,
            examples=examples or cfg.knowledge.examples,
            examples_per_intent=examples_per_intent,
            embedding=embedding,
            index_type=index_type,
            max_chars=max_chars,
        )
    for problem in report.problems:
        typer.secho(f"skipped {problem}", fg=typer.colors.YELLOW, err=True)
    typer.echo(_report_line(report))


def _report_line(report: IngestReport) -> str:
    m = report.manifest
    return (
        f"index {m.version}: {m.count} passages, {report.vectors} vectors ({report.embedded} "
        f"embedded, {report.reused} reused, {report.removed} passages removed, "
        f"{len(report.problems)} skipped), {m.index_type}, {report.seconds:.1f}s"
    )


def search(
    query: Annotated[str, typer.Argument(help="What a customer might ask.")],
    config: ConfigOption = DEFAULT_CONFIG,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 5,
    intent: Annotated[str | None, typer.Option(help="Prefer passages of this intent.")] = None,
    index: Annotated[
        str | None, typer.Option("--index", help="Search the index NAME (see ingest --index).")
    ] = None,
    lexical_weight: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Weight of BM25 in the ranking.")
    ] = None,
    main_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Weight of a passage's main vector against its best one (several vectors "
            "a passage: alternatives, question+sentences); 0: the best alone. "
            "Default: knowledge.main_weight.",
        ),
    ] = None,
    min_score: Annotated[float | None, typer.Option(help="Default: knowledge.min_score.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hit.")] = False,
) -> None:
    """Print the passages closest to QUERY, with their scores (* = under min_score)."""
    from deskbot.knowledge.embedding.embedder import build_embedder
    from deskbot.knowledge.retrieval.retriever import DEFAULT_LEXICAL_WEIGHT, FaissRetriever

    cfg = load(config)
    threshold = cfg.knowledge.min_score if min_score is None else min_score
    with reported(ValueError, DeskbotError, KnowledgeError):
        retriever = FaissRetriever(
            _index_dir(cfg, index),
            build_embedder(cfg.knowledge.embedder, runtime=cfg.limits.inference_runtime),
            lexical_weight=DEFAULT_LEXICAL_WEIGHT if lexical_weight is None else lexical_weight,
            main_weight=cfg.knowledge.main_weight if main_weight is None else main_weight,
            min_score=threshold,
            distinct_sections=cfg.knowledge.distinct_sections,
        )
        hits = retriever.retrieve(query, top_k=top_k, intent=intent)
    for rank, p in enumerate(hits, start=1):
        typer.echo(json.dumps(_hit_json(rank, p)) if as_json else _hit_line(rank, p))
    if not as_json and any(not p.answerable for p in hits):
        typer.echo(f"* under min_score {threshold}: the bot would not answer from it")


def _hit_json(rank: int, p: Passage) -> dict[str, object]:
    return {
        "rank": rank,
        "id": p.id,
        "score": round(p.score, 4),
        "rank_score": round(p.rank_score, 4),
        "lexical_score": round(p.lexical_score, 4),
        "answerable": p.answerable,
        "question": p.question,
        "title": p.title,
        "intent": p.intent,
        "source": p.source,
        "line": p.line,
        "url": p.url,
    }


def _hit_line(rank: int, p: Passage) -> str:
    where = f"{Path(p.source).name}:{p.line}" if p.line else Path(p.source).name
    mark = " " if p.answerable else "*"
    return f"{rank}. {p.score:.3f}{mark} [{p.id}] {p.question or p.title}  ({p.intent or '-'}; {where})"


def _index_dir(cfg: BotConfig, index: str | None) -> Path:
    """knowledge.index_dir, or the index NAME (--index) beside it."""
    if index is None:
        return cfg.knowledge.index_dir
    if not index or any(c in index for c in "/\\") or index[0] == ".":
        raise fail(f"--index {index!r}: a plain name, e.g. --index docs")
    return cfg.knowledge.index_dir.parent / index
