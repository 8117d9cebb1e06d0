from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deskbot.bot.cli import app, load_plugins
from tests.conftest import BANKING_TRAIN

load_plugins()

INTENTS = 8
PER_INTENT = 25


@pytest.fixture(scope="module")
def banking_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 BANKING77 train messages of 8 intents, as `text,category`."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    with BANKING_TRAIN.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by_intent[row["category"]].append(row["text"])
    path = tmp_path_factory.mktemp("discover") / "sample.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        for intent in sorted(by_intent)[:: 77 // INTENTS][:INTENTS]:
            for text in by_intent[intent][:PER_INTENT]:
                w.writerow([text, intent])
    return path


def test_scores_a_labelled_csv_as_json(banking_sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "candidates"
    cmd = ["discover", "intents", "--data", str(banking_sample), "--k", str(INTENTS)]
    result = CliRunner().invoke(app, [*cmd, "--steps", "4", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(doc) == {"n", "k", "nmi", "ari", "acc", "outliers", "seconds"}
    assert doc["n"] == INTENTS * PER_INTENT
    assert doc["k"] <= INTENTS  # a cluster of only outliers would be gone
    # Eight distinct banking intents: even a barely adapted encoder separates most.
    assert 0.6 < doc["nmi"] <= 1 and 0.4 < doc["acc"] <= 1 and 0.3 < doc["ari"] <= 1
    assert 0 <= doc["outliers"] < doc["n"] * 0.1
    written = json.loads((out / "candidates.json").read_text(encoding="utf-8"))
    assert written["messages"] == doc["n"]
    sizes = [c["size"] for c in written["candidates"]]
    assert sizes == sorted(sizes, reverse=True)
    assert sum(sizes) + len(written["outliers"]) == doc["n"]
    first = written["candidates"][0]
    assert len(first["representatives"]) == 5
    assert set(first["representatives"]) <= set(first["member_texts"])
    assert first["name"] and 0 < first["cohesion"] <= 1
    assert all(i.startswith("line:") for i in first["member_ids"])


def test_estimates_k_when_not_given(banking_sample: Path) -> None:
    cmd = ["discover", "intents", "--data", str(banking_sample), "--steps", "0", "--json"]
    result = CliRunner().invoke(app, cmd)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert 4 <= doc["k"] <= 16  # eight intents; the grid starts at 10 by default
    assert doc["nmi"] > 0.6


def test_a_bad_csv_is_refused_with_its_line_and_nothing_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\nmy card,card\nno category here\n", encoding="utf-8")
    out = tmp_path / "out"
    cmd = ["discover", "intents", "--data", str(bad), "--json", "--out", str(out)]
    result = CliRunner().invoke(app, cmd)
    assert result.exit_code == 2
    assert f"{bad}:3: 1 columns, the header has 2" in result.output
    assert not out.exists()


@pytest.mark.parametrize("k", ["1", "many"])
def test_a_bad_k_is_refused(banking_sample: Path, k: str) -> None:
    result = CliRunner().invoke(
        app, ["discover", "intents", "--data", str(banking_sample), "--k", k]
    )
    assert result.exit_code == 2
    assert "--k" in result.output
