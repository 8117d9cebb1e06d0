"""Every rebuild of the FAQ index builds the same thing: the nightly job's rebuild keeps
the intent examples `deskbot ingest` put in, and `deskbot ingest` keeps the answers
agents approved. Real embedder, real index, the real CLI."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.config import load_config
from deskbot.knowledge.indexing.index import load_version
from deskbot.training.data.faq_proposals import APPROVED, FaqLoop
from tests.conftest import DEMO_FAQ

EXAMPLES = "text,category\n" + "".join(
    f"{t},{c}\n"
    for t, c in [
        ("my new card still isn't here", "card_arrival"),
        ("when will my card be delivered", "card_arrival"),
        ("which rate do you use to convert currency", "exchange_rate"),
        ("is the exchange rate fair", "exchange_rate"),
    ]
)


def index_questions(index_dir: Path) -> tuple[set[str], int]:
    """The live version's entry ids and its vector count (questions + examples)."""
    loaded = load_version(index_dir)
    return {p.id for p in loaded.passages}, len(loaded.owners)


def ingest(root: Path) -> None:
    result = CliRunner().invoke(load_plugins(), ["ingest", "-c", str(root)])
    assert result.exit_code == 0, result.output


def test_every_rebuild_keeps_examples_and_approved_answers(tmp_path: Path) -> None:
    root = tmp_path / "bot"
    (root / "data").mkdir(parents=True)
    (root / "data" / "faq.yaml").write_bytes(DEMO_FAQ.read_bytes())
    (root / "data" / "examples.csv").write_text(EXAMPLES, encoding="utf-8")
    (root / "deskbot.yaml").write_text(
        "name: t\nknowledge:\n  sources: [data/faq.yaml]\n  examples: [data/examples.csv]\n",
        encoding="utf-8",
    )
    cfg = load_config(root)
    ingest(root)
    ids, vectors = index_questions(cfg.knowledge.index_dir)
    faq_only = len(ids)
    assert vectors >= faq_only + 4  # each example is one more phrasing

    # the nightly job ingests an answer an agent wrote and a reviewer approved
    loop = FaqLoop.from_config(cfg)
    entry = {
        "id": "proposed-abc123",
        "question": "can I pay my rent with a virtual card",
        "answer": "Yes: a virtual card works wherever card payments are accepted online.",
        "intent": "virtual_card_not_working",
        "status": APPROVED,
    }
    loop.proposals_file.parent.mkdir(parents=True, exist_ok=True)
    loop.proposals_file.write_text(yaml.safe_dump({"entries": [entry]}), encoding="utf-8")
    assert loop.ingest_approved() == 1
    ids_after, vectors_after = index_questions(cfg.knowledge.index_dir)
    assert "proposed-abc123" in ids_after
    assert vectors_after == vectors + 1  # the examples are still there

    # an operator edits the FAQ and re-ingests by hand: the approved answer stays
    ingest(root)
    ids_manual, vectors_manual = index_questions(cfg.knowledge.index_dir)
    assert "proposed-abc123" in ids_manual
    assert vectors_manual == vectors_after
