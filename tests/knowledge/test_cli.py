from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from deskbot.bot.cli import app


def test_ingest_named_index_with_documents_and_examples_then_search(tmp_path: Path) -> None:
    runner = CliRunner()
    project = tmp_path / "bot"
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.md").write_text(
        "# Travel\n\n## Lost luggage insurance\n\nPremium accounts include luggage insurance.\n",
        encoding="utf-8",
    )
    (docs / "broken.html").write_bytes(b"\x00\x00binary")
    examples = tmp_path / "examples.csv"
    examples.write_text("text,category\nwhere on earth is my card,card_arrival\n", encoding="utf-8")
    faq = project / "data" / "faq.yaml"
    result = runner.invoke(
        app,
        [
            "ingest",
            str(faq),
            str(docs),
            "-c",
            str(project),
            "--index",
            "everything",
            "--examples",
            str(examples),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "78 passages, 79 vectors" in result.stdout and "1 skipped" in result.stdout
    assert f"skipped {docs / 'broken.html'}: a binary file" in result.stderr
    assert (project / "var" / "indexes" / "everything" / "CURRENT").is_file()
    assert not (project / "var" / "indexes" / "faq").exists()

    result = runner.invoke(
        app,
        ["search", "suitcase insurance", "-c", str(project), "--index", "everything", "--json"],
    )
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert hits[0]["id"] == "travel:travel-lost-luggage-insurance" and hits[0]["line"] == 5
    assert hits[0]["answerable"] is (hits[0]["score"] >= 0.35)
    result = runner.invoke(
        app, ["search", "tell me a joke", "-c", str(project), "--index", "everything", "-k", "1"]
    )
    assert result.exit_code == 0 and "* under min_score" in result.stdout

    strict = runner.invoke(app, ["ingest", str(docs), "-c", str(project), "--strict"])
    assert strict.exit_code == 2 and "broken.html: a binary file" in strict.stderr
    bad_name = runner.invoke(app, ["search", "x", "-c", str(project), "--index", "../x"])
    assert bad_name.exit_code == 2 and "a plain name" in bad_name.stderr
