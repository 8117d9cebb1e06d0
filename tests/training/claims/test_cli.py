"""`deskbot train verifier`: a project's FAQ in, a live verifier version out."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.generation.verifier import ClaimVerifier, find_verifier_dir
from tests.conftest import DEMO_FAQ


def project(tmp_path: Path, entries: int) -> Path:
    faq = yaml.safe_load(DEMO_FAQ.read_text(encoding="utf-8"))
    faq["entries"] = faq["entries"][:entries]
    (tmp_path / "faq.yaml").write_text(yaml.safe_dump(faq), encoding="utf-8")
    config = tmp_path / "deskbot.yaml"
    config.write_text("name: Test Bank\nknowledge:\n  sources: [faq.yaml]\n", encoding="utf-8")
    return config


def test_train_verifier_writes_a_live_version(tmp_path: Path) -> None:
    config = project(tmp_path, 10)
    result = CliRunner().invoke(
        load_plugins(), ["train", "verifier", "-c", str(config), "--epochs", "40"]
    )
    assert result.exit_code == 0, result.output
    assert "live under" in result.output
    found = find_verifier_dir(tmp_path / "var" / "models" / "verifier")
    assert found is not None
    manifest = json.loads((found / "deskbot-verifier.json").read_text())
    assert 0 < manifest["min_support"] <= 1 and 0 < manifest["max_contradiction"] <= 1
    assert manifest["trained_on"]["dev_entries"]
    verifier = ClaimVerifier(found)
    assert verifier.version == found.name


def test_too_small_a_faq_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    config = project(tmp_path, 3)
    result = CliRunner().invoke(load_plugins(), ["train", "verifier", "-c", str(config)])
    assert result.exit_code != 0
    assert "at least 8 FAQ entries" in result.output
    assert not (tmp_path / "var" / "models" / "verifier").exists()
