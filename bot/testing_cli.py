"""`deskbot test conversations`: run conversation test files against the bot.

    deskbot test conversations tests/conversations/ -c .            # in this process
    deskbot test conversations cases.yml --url http://127.0.0.1:8000  # a running server
    deskbot test conversations cases.yml --junit report.xml --json

In process, the project's bot is built as `deskbot serve` builds it (its live model,
index, store and action server), on a store of its own in a temporary folder unless
`--keep-store`: the test conversations never mix with customers'. Exit status 1 when any
case fails, 2 when a file cannot be run (`FILE:LINE: what to fix`).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deskbot.bot.cli_common import DEFAULT_CONFIG, ConfigOption, fail, load, reported

if TYPE_CHECKING:
    from deskbot.bot.testing.cases import ConversationCase
    from deskbot.bot.testing.runner import CaseResult, InProcessDriver

__all__ = ["test_app"]

test_app = typer.Typer(help="Test the bot: whole conversations.", no_args_is_help=True)


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml")))
        elif path.is_file():
            found.append(path)
        else:
            raise fail(f"{path}: no such file or folder")
    if not found:
        raise fail("no .yml or .yaml test files in " + ", ".join(map(str, paths)))
    return found


@test_app.command("conversations")
def conversations(
    paths: Annotated[list[Path], typer.Argument(help="Test files, or folders of them.")],
    config: ConfigOption = DEFAULT_CONFIG,
    url: Annotated[
        str | None, typer.Option(help="Test a running server over its HTTP API instead.")
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    keep_store: Annotated[
        bool, typer.Option(help="Write the test conversations to the project's own store.")
    ] = False,
) -> None:
    """Run conversation test cases (`test_cases:` YAML, see `deskbot.bot.testing.cases`)."""
    from deskbot.bot.testing.report import junit_xml, summary
    from deskbot.bot.testing.runner import HttpDriver, run_cases

    cases = _load_all(paths, over_http=url is not None)

    def show(result: CaseResult) -> None:
        if not as_json:
            typer.echo(("." if result.passed else "F"), nl=False)

    started = time.perf_counter()
    if url:
        http = HttpDriver(url)
        try:
            results = run_cases(cases, http, on_case=show)
        finally:
            http.close()
    else:
        results = _in_process(
            config, keep_store, lambda driver: run_cases(cases, driver, on_case=show)
        )
    seconds = time.perf_counter() - started
    if junit is not None:
        junit_xml(results, junit, seconds)
    report = summary(results, seconds)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        _print(results, report)
    if report["failed"]:
        raise typer.Exit(1)


def _load_all(paths: list[Path], *, over_http: bool) -> list[ConversationCase]:
    from deskbot.bot.testing.cases import CaseFileError, load_cases
    from deskbot.bot.testing.runner import http_problems

    cases = []
    for file in _files(paths):
        try:
            cases.extend(load_cases(file))
        except CaseFileError as exc:
            raise fail(str(exc), 2) from None
    problems = http_problems(cases) if over_http else []
    if problems:
        raise fail("\n".join(problems), 2)
    return cases


def _print(results: list[CaseResult], report: dict[str, Any]) -> None:
    from deskbot.bot.testing.report import failure_text

    typer.echo("")
    for result in results:
        if not result.passed:
            typer.echo(failure_text(result) + "\n")
    typer.echo(
        f"{report['passed']} passed, {report['failed']} failed, "
        f"{report['cases']} cases, {report['steps']} steps in {report['seconds']:.1f} s"
    )


def _in_process(
    config: Path, keep_store: bool, run: Callable[[InProcessDriver], list[CaseResult]]
) -> list[CaseResult]:
    """`run` on the project's bot, built as `deskbot serve` builds it."""
    from deskbot.bot.core.errors import DeskbotError
    from deskbot.bot.server.container import build_bot
    from deskbot.bot.testing.runner import InProcessDriver
    from deskbot.knowledge.errors import KnowledgeError

    cfg = load(config)
    with tempfile.TemporaryDirectory(prefix="deskbot-test-") as tmp:
        if not keep_store:
            database = dataclasses.replace(cfg.database, url=f"sqlite:///{Path(tmp) / 'test.db'}")
            cfg = dataclasses.replace(cfg, database=database)
        with reported(DeskbotError, KnowledgeError):
            bot = build_bot(cfg)
        try:
            bot.warm_up()
            return run(InProcessDriver(bot))
        finally:
            bot.close()
