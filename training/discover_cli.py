"""`deskbot discover intents`: candidate intents from unlabelled messages."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from deskbot.bot.cli_common import DEFAULT_CONFIG, fail, load, reported
from deskbot.bot.core.errors import DataError, StoreError

discover_app = typer.Typer(help="Discover intents in unlabelled messages.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(discover_app, name="discover")


def _parse_k(value: str) -> int | None:
    if value.strip().lower() == "auto":
        return None
    try:
        k = int(value)
    except ValueError:
        raise fail(f"--k {value!r}: pass 'auto' or a whole number of intents (2 or more)") from None
    if k < 2:
        raise fail(f"--k {k}: at least 2 intents are needed")
    return k


@discover_app.command("intents")
def discover_intents(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="DESKBOT_CONFIG", help="The project whose store to read."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="A CSV with a 'text' column (a 'category' column only scores)."
        ),
    ] = None,
    k: Annotated[str, typer.Option("--k", help="Number of intents, or 'auto'.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the candidates (JSON) to this folder.")
    ] = None,
    steps: Annotated[
        int, typer.Option(help="Steps adapting the encoder to the messages (0: frozen).")
    ] = 200,
    source: Annotated[
        str | None,
        typer.Option(help="Only conversations from this source (e.g. 'imported'); -c only."),
    ] = None,
    all_turns: Annotated[
        bool,
        typer.Option(
            "--all-turns", help="Every customer message, not each conversation's opening."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the adaptation and the clustering.")] = 0,
) -> None:
    """Cluster customers' messages into candidate intents: a name, size, five
    representative messages and a cohesion score each; outliers left out."""
    from deskbot.training.discovery.adapt import AdaptArgs
    from deskbot.training.discovery.clustering import ClusterArgs
    from deskbot.training.discovery.discover import DiscoveryArgs, IntentDiscoverer
    from deskbot.training.discovery.sources import read_csv

    n_intents = _parse_k(k)
    if data is not None and config is not None:
        raise fail("pass either --data CSV or -c PROJECT, not both")
    if data is not None and (source is not None or all_turns):
        raise fail("--source and --all-turns read a project's store (-c), not --data")
    if steps < 0:
        raise fail(f"--steps {steps}: pass 0 or more")
    started = time.perf_counter()
    with reported(DataError):
        messages = (
            read_csv(data)
            if data is not None
            else _store_messages(config or DEFAULT_CONFIG, source=source, all_turns=all_turns)
        )
    if n_intents is not None and n_intents > len(messages):
        raise fail(f"--k {n_intents}: more intents than the {len(messages)} messages")
    args = DiscoveryArgs(
        k=n_intents, adapt=AdaptArgs(steps=steps, seed=seed), cluster=ClusterArgs(seed=seed)
    )
    with _bars(enabled=True) as progress:
        result = IntentDiscoverer(args).discover(messages, progress=progress)
    seconds = round(time.perf_counter() - started, 1)
    if out is not None:
        result.write(out)
    scores = result.scores()
    if as_json:
        doc: dict[str, Any] = {"n": len(messages), "k": result.k}
        if scores is not None:
            doc.update(nmi=round(scores.nmi, 4), ari=round(scores.ari, 4), acc=round(scores.acc, 4))
        doc.update(outliers=result.outliers, seconds=seconds)
        if scores is None:
            doc["candidates"] = [
                {"name": c.name, "size": c.size, "cohesion": c.cohesion} for c in result.candidates
            ]
        typer.echo(json.dumps(doc))
        return
    typer.echo(
        f"{result.k} candidate intents in {len(messages)} messages "
        f"({result.outliers} outliers, {seconds} s)"
    )
    if scores is not None:
        typer.echo(
            f"against the categories: NMI {scores.nmi:.1%}, ARI {scores.ari:.1%}, "
            f"accuracy {scores.acc:.1%}"
        )
    for c in result.candidates:
        typer.echo(f"{c.size:6d}  {c.cohesion:.2f}  {c.name}: {c.representatives[0]}")
    if out is not None:
        typer.echo(f"candidates written to {out}")


def _store_messages(config: Path, *, source: str | None, all_turns: bool) -> Any:
    from deskbot.bot.store import create_store_engine, migrate
    from deskbot.training.discovery.sources import read_store

    cfg = load(config)
    engine = create_store_engine(cfg.database.url)
    try:
        with reported(StoreError, DataError):
            migrate(engine)
            messages = read_store(engine, source=source, opening_only=not all_turns)
    finally:
        engine.dispose()
    if len(messages) < 2:
        raise fail(
            f"{cfg.database.url}: {len(messages)} customer message(s) to cluster; "
            "import past conversations first (deskbot import conversations)"
        )
    return messages


class _bars:
    """One tqdm bar per stage of the discovery, on stderr."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.stage = ""

    def __enter__(self) -> Any:
        return self.update if self.enabled else None

    def update(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        if stage != self.stage:
            if self.bar is not None:
                self.bar.close()
            self.bar, self.stage = tqdm(total=total, desc=stage, unit="step"), stage
        self.bar.n = done
        self.bar.refresh()

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
