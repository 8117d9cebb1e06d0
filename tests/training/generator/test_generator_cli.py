"""`deskbot train generator`: one clear error line for bad input, nothing written then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deskbot.bot.cli import app, load_plugins
from deskbot.bot.generation.adapters import read_adapter_manifest
from deskbot.training.generator.chat_jsonl import write_examples
from tests.training.generator.conftest import tiny_examples


@pytest.fixture(autouse=True)
def _no_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No deskbot.yaml where the command runs: --data and --out are all it has."""
    load_plugins()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DESKBOT_CONFIG", raising=False)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["train", "generator", *args])
    return result.exit_code, result.output


def test_a_bad_line_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    good = tiny_examples()[0][0].to_json()
    no_reply = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    data.write_text(good + "\n" + no_reply + "\n", encoding="utf-8")
    code, output = _run("--data", str(data), "--out", str(tmp_path / "v1"))
    assert code == 2
    assert f"error: {data}:2: the last message must be the assistant's reply" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]

    data.write_text(good + "\n{not json\n", encoding="utf-8")
    code, output = _run("--data", str(data), "--out", str(tmp_path / "v1"))
    assert code == 2 and f"error: {data}:2: not JSON" in output
    bad_role = {"messages": [{"role": "tool", "content": "x"}]}
    data.write_text(json.dumps(bad_role) + "\n", encoding="utf-8")
    code, output = _run("--data", str(data), "--out", str(tmp_path / "v1"))
    assert code == 2 and f"{data}:1: messages[0].role must be one of system" in output
    assert not (tmp_path / "v1").exists()


def test_conflicting_options_are_refused(tmp_path: Path) -> None:
    code, output = _run("--data", "x.jsonl", "--export-only", "y.jsonl")
    assert code == 2 and "--export-only writes a new export: drop --data" in output
    code, output = _run("--data", "x.jsonl", "--out", "v", "--promote")
    assert code == 2 and "--promote needs the registry of a config" in output
    code, output = _run("--data", str(tmp_path / "missing.jsonl"), "--out", "v")
    assert code == 2 and "missing.jsonl: no such file" in output


def test_trains_an_adapter_from_a_jsonl_file(tmp_path: Path) -> None:
    train, heldout = tiny_examples(2)
    data = tmp_path / "data.jsonl"
    write_examples([*train, *heldout], data)
    code, output = _run(
        "--data", str(data), "--out", str(tmp_path / "v1"), "--batch-size", "2",
        "--max-length", "64", "--max-steps", "1", "--threads", "1", "--bf16",
    )  # fmt: skip
    assert code == 0, output
    assert "training on 2 examples (1 held out)" in output
    manifest = read_adapter_manifest(tmp_path / "v1")
    assert manifest.training["steps"] == 1 and manifest.training["max_length"] == 64
    assert manifest.training["bf16"] is True
    assert manifest.data["file"] == str(data)
    assert f"adapter v1: held-out loss {manifest.metrics['heldout_loss_before']:.3f} ->" in output
