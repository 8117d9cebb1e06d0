"""The `deskbot` command line.

`bot` owns the root command. The `training` and `ui` layers add their commands as
plug-ins (entry-point group `deskbot.commands`), since `bot` may not import them;
third-party packages can add commands the same way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from deskbot.bot import __version__
from deskbot.bot.config import DEFAULT_CONFIG_NAME, BotConfig, load_config
from deskbot.bot.errors import DeskbotError
from deskbot.knowledge.errors import KnowledgeError

app = typer.Typer(
    name="deskbot",
    help="deskbot: customer-service chatbots that learn from their agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The conversation database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="DESKBOT_CONFIG",
        help="The bot's config file (or its folder).",
        show_default=True,
    ),
]
DEFAULT_CONFIG = Path(DEFAULT_CONFIG_NAME)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear error line and return the exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def load(config: Path) -> BotConfig:
    try:
        return load_config(config)
    except DeskbotError as exc:
        raise fail(str(exc)) from None


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "transformers", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    setup_logging(verbose)


@app.command()
def version() -> None:
    """Print deskbot's version."""
    typer.echo(__version__)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new bot project.")],
    force: Annotated[bool, typer.Option(help="Write into a folder that is not empty.")] = False,
) -> None:
    """Write a new bot project: config, example intents and FAQ, and an actions module."""
    if directory.exists() and any(directory.iterdir()) and not force:
        raise fail(f"{directory} is not empty; choose a new folder or pass --force")
    demo = resources.files("deskbot.bot.demo")
    tmp = directory.parent / f".{directory.name}.init-{uuid.uuid4().hex[:6]}"
    try:
        (tmp / "data" / "intents").mkdir(parents=True)
        (tmp / "actions").mkdir()
        files = {
            "deskbot.yaml": "deskbot.yaml",
            "faq.yaml": "data/faq.yaml",
            "data/banking77/train.csv": "data/intents/train.csv",
            "data/banking77/test.csv": "data/intents/test.csv",
            "data/banking77/LICENSE": "data/intents/LICENSE",
            "data/banking77/ATTRIBUTION.md": "data/intents/ATTRIBUTION.md",
            "actions.py": "actions/actions.py",
        }
        for src, dst in files.items():
            (tmp / dst).write_bytes(demo.joinpath(src).read_bytes())
        (tmp / "actions" / "__init__.py").write_text("", encoding="utf-8")
        directory.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():
            target = directory / item.name
            if target.exists():
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    typer.echo(f"bot project written to {directory}")
    typer.echo(
        f"next: deskbot train intents -c {directory} --promote && deskbot ingest -c {directory}"
    )


@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="FAQ files (default: knowledge.sources).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    strict: Annotated[
        bool, typer.Option(help="Fail on the first bad row instead of skipping it.")
    ] = False,
) -> None:
    """Embed FAQ files into a new version of the index (only what changed is re-embedded)."""
    from deskbot.knowledge.embedder import SentenceTransformerEmbedder
    from deskbot.knowledge.ingest import ingest as run_ingest

    cfg = load(config)
    sources = list(paths or cfg.knowledge.sources)
    if not sources:
        raise fail("no FAQ files: pass them or list them in knowledge.sources")
    try:
        report = run_ingest(
            sources,
            cfg.knowledge.index_dir,
            SentenceTransformerEmbedder(cfg.knowledge.embedder),
            strict=strict,
        )
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    for problem in report.problems:
        typer.secho(f"skipped {problem}", fg=typer.colors.YELLOW, err=True)
    m = report.manifest
    typer.echo(
        f"index {m.version}: {m.count} passages ({report.embedded} embedded, {report.reused} reused, "
        f"{report.removed} removed, {len(report.problems)} skipped), {m.index_type}"
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What a customer might ask.")],
    config: ConfigOption = DEFAULT_CONFIG,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 5,
    intent: Annotated[str | None, typer.Option(help="Prefer passages of this intent.")] = None,
) -> None:
    """Print the FAQ passages closest to QUERY, with their scores."""
    from deskbot.knowledge.embedder import SentenceTransformerEmbedder
    from deskbot.knowledge.retriever import FaissRetriever

    cfg = load(config)
    try:
        retriever = FaissRetriever(
            cfg.knowledge.index_dir, SentenceTransformerEmbedder(cfg.knowledge.embedder)
        )
        hits = retriever.retrieve(query, top_k=top_k, intent=intent)
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    for rank, p in enumerate(hits, start=1):
        typer.echo(
            f"{rank}. {p.score:.3f}  [{p.id}] {p.question}  ({p.intent or '-'}; {Path(p.source).name})"
        )


@app.command()
def chat(
    config: ConfigOption = DEFAULT_CONFIG,
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="Send this message and exit (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per reply.")] = False,
) -> None:
    """Talk to the bot in the terminal (every turn is stored like a web conversation)."""
    from deskbot.bot.app import build_bot

    cfg = load(config)
    try:
        bot = build_bot(cfg)
        bot.warm_up()
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    conv, _token = bot.store.create_conversation(channel="cli")
    interactive = not message
    if interactive:
        typer.echo(f"{cfg.name} (conversation {conv.id}); Ctrl-D to quit")
    lines = message if message else _stdin_lines()
    for line in lines:
        text = line.strip()
        if not text:
            continue
        reply = bot.pipeline.handle(conv.id, text)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "conversation": conv.id,
                        "text": reply.text,
                        "kind": reply.kind,
                        "intent": reply.intent.intent if reply.intent else None,
                        "confidence": reply.intent.confidence if reply.intent else None,
                        "citations": list(reply.citations),
                    }
                )
            )
        else:
            who = reply.intent.intent if reply.intent else "-"
            typer.echo(f"bot> {reply.text}")
            typer.secho(
                f"     ({reply.kind}; intent {who}; sources {', '.join(reply.citations) or '-'})",
                dim=True,
            )


def _stdin_lines() -> Any:
    while True:
        try:
            if sys.stdin.isatty():
                yield input("you> ")
            else:
                line = sys.stdin.readline()
                if not line:
                    return
                yield line
        except EOFError:
            return


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Apply the database migrations (run on every start as well)."""
    from deskbot.bot.app import build_store

    cfg = load(config)
    try:
        build_store(cfg)
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    typer.echo("database is at the newest schema")


_plugins_loaded = False


def load_plugins() -> typer.Typer:
    """Add the installed plug-ins' commands to `app` (once) and return it."""
    global _plugins_loaded
    if _plugins_loaded:
        return app
    _plugins_loaded = True
    for ep in metadata.entry_points(group="deskbot.commands"):
        try:
            register = ep.load()
        except ImportError as exc:  # a broken plug-in must not take the whole CLI down
            logging.getLogger(__name__).warning("command plug-in %s not loaded: %s", ep.name, exc)
            continue
        register(app)
    return app


def main() -> None:
    load_plugins()
    try:
        app()
    except (DeskbotError, KnowledgeError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
