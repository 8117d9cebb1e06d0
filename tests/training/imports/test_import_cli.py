"""`deskbot import conversations` as a team runs it: a project, export files, a summary
(text or --json), bad rows as FILE:LINE on stderr, exit status 0, 1 or 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from tests.training.imports.conftest import DATA, write


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "deskbot.yaml").write_text(
        f"name: Shop\ndatabase:\n  url: {database_url}\n", encoding="utf-8"
    )
    return folder


def run(*args: str) -> tuple[int, str, str]:
    out = CliRunner().invoke(load_plugins(), ["import", "conversations", *args])
    return out.exit_code, out.stdout, out.stderr


def test_import_prints_a_summary_and_a_second_run_finds_duplicates(project: Path) -> None:
    files = [str(DATA / "zendesk_tickets.jsonl"), str(DATA / "rasa_tracker.json")]
    code, out, _ = run(*files, "-c", str(project))
    assert code == 0 and out.startswith("imported 4 conversations (9 turns)")
    code, out, _ = run(*files, "-c", str(project), "--json")
    summary = json.loads(out)
    assert code == 0
    assert (summary["conversations"], summary["duplicates"]) == (0, 4)
    assert [f["format"] for f in summary["files"]] == ["zendesk", "rasa"]


def test_bad_rows_go_to_stderr_as_file_and_line(project: Path, tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "c.jsonl",
        '{"id": "a", "turns": [{"role": "customer", "text": "hi"}]}\n{"id": "b"}\n',
    )
    code, out, err = run(str(bad), "-c", str(project))
    assert code == 1 and "imported 1 conversations" in out
    assert f"error: {bad}:2: 'turns' must be a non-empty list" in err
    code, out, err = run(str(bad), "-c", str(project), "--strict", "--format", "jsonl")
    assert code == 2 and f"error: {bad}:2:" in err and "--strict" in err


def test_an_unknown_format_name_is_refused_up_front(project: Path) -> None:
    code, _, err = run(str(DATA / "conversations.csv"), "-c", str(project), "--format", "xls")
    assert code == 2 and "--format 'xls': use one of auto, jsonl, csv" in err
