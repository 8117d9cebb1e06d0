"""The `deskbot` command line.

`bot` owns the root command. The `training` and `ui` layers add their commands as
plug-ins (entry-point group `deskbot.commands`), since `bot` may not import them;
third-party packages can add commands the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from deskbot.bot import __version__
from deskbot.bot.core.config import ACTIONS_TOKEN_ENV, DEFAULT_CONFIG_NAME, BotConfig, load_config
from deskbot.bot.core.errors import DeskbotError
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
        list[Path] | None,
        typer.Argument(
            help="FAQ files (.yaml .csv .json .jsonl), documents (.md .html .txt) or folders "
            "(default: knowledge.sources)."
        ),
    ] = None,
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
    examples: Annotated[
        list[Path] | None,
        typer.Option(
            "--examples",
            help="CSV of intent-labelled utterances (text,category), e.g. the intents' TRAIN "
            "data: each becomes an alternative question of its intent's FAQ entry.",
        ),
    ] = None,
    examples_per_intent: Annotated[
        int | None, typer.Option(min=1, help="At most this many --examples per intent.")
    ] = None,
    embedding: Annotated[
        str, typer.Option(help="What is embedded per FAQ entry: question, question+answer.")
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
    if index is not None and (not index or any(c in index for c in "/\\") or index[0] == "."):
        raise fail(f"--index {index!r}: a plain name, e.g. --index docs")
    index_dir = cfg.knowledge.index_dir if index is None else cfg.knowledge.index_dir.parent / index
    try:
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
    except ValueError as exc:
        raise fail(str(exc)) from None
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    for problem in report.problems:
        typer.secho(f"skipped {problem}", fg=typer.colors.YELLOW, err=True)
    m = report.manifest
    typer.echo(
        f"index {m.version}: {m.count} passages, {report.vectors} vectors ({report.embedded} "
        f"embedded, {report.reused} reused, {report.removed} passages removed, "
        f"{len(report.problems)} skipped), {m.index_type}, {report.seconds:.1f}s"
    )


@app.command()
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
    min_score: Annotated[float | None, typer.Option(help="Default: knowledge.min_score.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hit.")] = False,
) -> None:
    """Print the passages closest to QUERY, with their scores (* = under min_score)."""
    from deskbot.knowledge.embedding.embedder import build_embedder
    from deskbot.knowledge.retrieval.retriever import DEFAULT_LEXICAL_WEIGHT, FaissRetriever

    cfg = load(config)
    threshold = cfg.knowledge.min_score if min_score is None else min_score
    if index is not None and (not index or any(c in index for c in "/\\") or index[0] == "."):
        raise fail(f"--index {index!r}: a plain name, e.g. --index docs")
    index_dir = cfg.knowledge.index_dir if index is None else cfg.knowledge.index_dir.parent / index
    try:
        retriever = FaissRetriever(
            index_dir,
            build_embedder(cfg.knowledge.embedder, runtime=cfg.limits.inference_runtime),
            lexical_weight=DEFAULT_LEXICAL_WEIGHT if lexical_weight is None else lexical_weight,
            min_score=threshold,
        )
        hits = retriever.retrieve(query, top_k=top_k, intent=intent)
    except ValueError as exc:
        raise fail(str(exc)) from None
    except (DeskbotError, KnowledgeError) as exc:
        raise fail(str(exc)) from None
    for rank, p in enumerate(hits, start=1):
        if as_json:
            typer.echo(
                json.dumps(
                    {
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
                )
            )
            continue
        where = f"{Path(p.source).name}:{p.line}" if p.line else Path(p.source).name
        mark = " " if p.answerable else "*"
        typer.echo(
            f"{rank}. {p.score:.3f}{mark} [{p.id}] {p.question or p.title}  "
            f"({p.intent or '-'}; {where})"
        )
    if not as_json and any(not p.answerable for p in hits):
        typer.echo(f"* under min_score {threshold}: the bot would not answer from it")


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
    from deskbot.bot.server.container import build_bot

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
    from deskbot.bot.server.container import build_store

    cfg = load(config)
    try:
        build_store(cfg)
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    typer.echo("database is at the newest schema")


@db_app.command("prune")
def db_prune(
    config: ConfigOption = DEFAULT_CONFIG,
    days: Annotated[
        float | None,
        typer.Option(min=0.001, help="Retention period in days (default: privacy.retention_days)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Delete conversations idle for longer than the retention period, with their turns,
    labels, handoffs and dialogue state (run it daily, e.g. before `deskbot retrain`)."""
    from datetime import timedelta

    from deskbot.bot.privacy.erasure import Eraser
    from deskbot.bot.server.container import build_store

    cfg = load(config)
    try:
        eraser = Eraser(build_store(cfg), cfg, hooks=[])
        report = eraser.prune(older_than=timedelta(days=days) if days is not None else None)
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    period = days if days is not None else cfg.privacy.retention_days
    typer.echo(
        f"pruned {report.conversations} conversations idle for more than {period:g} days "
        f"({report.rows.get('turns', 0)} turns, {report.rows.get('agent_labels', 0)} labels)"
    )


@app.command()
def forget(
    customer: Annotated[
        str | None,
        typer.Option("--customer", help="The customer id (as sent with POST /api/sessions)."),
    ] = None,
    conversation: Annotated[
        list[str] | None,
        typer.Option(
            "--conversation", help="A conversation id (repeatable), e.g. anonymous chats."
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Erase a customer's data everywhere (GDPR): conversations, turns, feedback, handoffs,
    agents' labels, dialogue state, and the training rows derived from them."""
    from deskbot.bot.privacy.erasure import Eraser
    from deskbot.bot.server.container import build_store

    if customer is None and not conversation:
        raise fail("name the customer: --customer ID (or --conversation ID)")
    cfg = load(config)
    try:
        eraser = Eraser(build_store(cfg), cfg)
        scope = eraser.scope(customer_id=customer, conversation_ids=conversation or ())
        if scope.empty:
            raise fail("nothing stored for that customer or conversation", code=1)
        if not yes:
            typer.confirm(
                f"erase {len(scope.conversation_ids)} conversations ({len(scope.turn_ids)} "
                "messages) and everything derived from them? This cannot be undone",
                abort=True,
            )
        report = eraser.forget(
            customer_id=customer, conversation_ids=conversation or (), requested_by="cli"
        )
    except DeskbotError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    rows = ", ".join(f"{n} {name}" for name, n in sorted(report.rows.items()))
    derived = ", ".join(f"{n} {name}" for name, n in sorted(report.derived.items()))
    typer.echo(f"erased {rows}; derived: {derived or 'none'}")


actions_app = typer.Typer(
    help="The rasa-sdk action server of custom actions.", no_args_is_help=True
)
app.add_typer(actions_app, name="actions")


@actions_app.command("serve")
def actions_serve(
    config: ConfigOption = DEFAULT_CONFIG,
    port: Annotated[int | None, typer.Option(help="Default: the port of actions.url.")] = None,
    host: Annotated[str | None, typer.Option(help="Default: the host of actions.url.")] = None,
) -> None:
    """Run the rasa-sdk action server with the project's actions module (actions.module);
    with DESKBOT_ACTIONS_TOKEN set it refuses calls without that token."""
    from urllib.parse import urlsplit

    cfg = load(config)
    url = urlsplit(cfg.actions.url or "http://127.0.0.1:5055/webhook")
    listen_port = port or url.port or 5055
    listen_host = host or url.hostname or "127.0.0.1"
    env = {**os.environ, "SANIC_HOST": listen_host}
    if cfg.actions.token:
        env[ACTIONS_TOKEN_ENV] = cfg.actions.token
    # The project folder first on the path, so `--actions actions` finds actions/actions.py.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(cfg.root), os.environ.get("PYTHONPATH", "")) if p
    )
    cmd = [
        sys.executable,
        "-m",
        "deskbot.bot.actions.server",  # rasa-sdk's server with the token check
        "--actions",
        cfg.actions.module,
        "--port",
        str(listen_port),
    ]
    typer.echo(f"action server for {cfg.name} on http://{listen_host}:{listen_port}/webhook")
    # The server gets a process group of its own (Sanic may run several processes), and
    # a signal to this command stops that whole group, with SIGKILL after a grace period:
    # nothing is left running, or holding the port, when `make demo` or a supervisor
    # stops the command.
    from deskbot.bot.actions.server import PARENT_ENV

    # If this command is SIGKILLed, the server stops itself (`exit_with_parent`).
    env[PARENT_ENV] = str(os.getpid())
    proc = subprocess.Popen(cmd, cwd=cfg.root, env=env, start_new_session=True)
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        # Only signal here: the main thread is inside proc.wait(), which holds the lock a
        # second wait in this handler would need (it sat out both 5 s timeouts, so every
        # stop took 10 s). The main thread's wait returns when the group is gone.
        if stopping.is_set():
            return
        stopping.set()
        signal_group(proc.pid, signal.SIGTERM)
        escalate = threading.Timer(STOP_GRACE_S, signal_group, (proc.pid, signal.SIGKILL))
        escalate.daemon = True
        escalate.start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    code = proc.wait()
    if stopping.is_set():
        raise typer.Exit(0)
    if code:
        raise fail(f"the action server exited with status {code}", code)


STOP_GRACE_S = 5.0


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


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
