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


def test_reads_each_conversations_opening_from_a_projects_store(tmp_path: Path) -> None:
    from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate

    project = tmp_path / "shop"
    (project / "var").mkdir(parents=True)
    (project / "deskbot.yaml").write_text(
        'name: "shop"\ndatabase:\n  url: sqlite:///var/deskbot.db\n', encoding="utf-8"
    )
    engine = create_store_engine(f"sqlite:///{project / 'var' / 'deskbot.db'}")
    migrate(engine)
    store = SqlConversationStore(engine)
    openings = {
        "sizes": ["what shoe sizes do you have", "do you sell size 46", "is size 36 available"],
        "refund": ["I want my money back", "how do I get a refund", "refund my order please"],
    }
    for texts in openings.values():
        for text in texts * 2:
            conv, _ = store.create_conversation()
            store.append_turn(conv.id, "user", text)
            store.append_turn(conv.id, "bot", "Let me check.")
            store.append_turn(conv.id, "user", "ok thanks")  # after the reply: not opening
    engine.dispose()
    out = tmp_path / "found"
    cmd = ["discover", "intents", "-c", str(project), "--k", "2", "--steps", "2"]
    result = CliRunner().invoke(app, [*cmd, "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert doc["n"] == 12 and doc["k"] == 2 and "nmi" not in doc
    written = json.loads((out / "candidates.json").read_text(encoding="utf-8"))
    groups = {frozenset(c["member_texts"]) for c in written["candidates"]}
    assert groups == {frozenset(openings["sizes"]), frozenset(openings["refund"])}
    assert sum(c["size"] for c in written["candidates"]) == 12
    assert all("ok thanks" not in g for g in groups)


def test_an_empty_store_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "empty"
    (project / "var").mkdir(parents=True)
    (project / "deskbot.yaml").write_text(
        'name: "empty"\ndatabase:\n  url: sqlite:///var/deskbot.db\n', encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["discover", "intents", "-c", str(project), "--json"])
    assert result.exit_code == 2
    assert "0 customer message(s) to cluster" in result.output
