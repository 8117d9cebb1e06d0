"""Answers mined from agents' replies (#20 item 4): past conversations imported by the
real command, intents from the Discover tab's approved examples and agents' labels, the
real encoder, the proposals file the console and the nightly job read."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.config import load_config
from deskbot.bot.store import SqlConversationStore, create_store_engine
from deskbot.bot.store.models import AgentLabel, Conversation, TurnRecord
from deskbot.knowledge.sources.proposals import APPROVED, PROPOSALS_FILE, ProposalsFile
from deskbot.training.data.answers import AnswerMiner, propose, read_exchanges

ARRIVAL = "Cards arrive within 3 working days of ordering; track it under Cards in the app."
ARRIVAL_2 = "Your card arrives within 3 working days after you order it; track it in the app."
ARRIVAL_OTHER = "We can send a new card by express post for a fee of 5 euros."
GENERIC = "Let me check that for you."
RATE = "We convert at the interbank rate plus 0.5%, shown before you confirm."
RATE_2 = "Our exchange rate is the interbank rate plus 0.5%, shown before you confirm."

# (id, customer, agent replies, intent)
CHATS = [
    ("a1", "my card hasn't arrived", [GENERIC, ARRIVAL], "card_arrival"),
    (
        "a2",
        "when will my new card come",
        [ARRIVAL_2 + " Mail me at jo@example.com"],
        "card_arrival",
    ),
    ("a3", "still waiting for the card", [ARRIVAL], "card_arrival"),
    ("a4", "card not delivered yet, can you hurry", [ARRIVAL_OTHER], "card_arrival"),
    ("r1", "what exchange rate do you use", [GENERIC], "exchange_rate"),
    ("r2", "is your currency rate fair", [RATE], "exchange_rate"),
    ("r3", "how do you convert euros", [RATE_2], "exchange_rate"),
]


def _jsonl() -> str:
    lines = []
    for cid, customer, replies, _ in CHATS:
        turns = [{"role": "customer", "text": customer}]
        turns += [{"role": "agent", "text": r} for r in replies]
        lines.append(json.dumps({"id": cid, "turns": turns}))
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Path:
    """A project with the chats imported and every opening approved in the Discover tab."""
    root = tmp_path / "bot"
    (root / "data" / "intents").mkdir(parents=True)
    (root / "deskbot.yaml").write_text(
        f"name: t\ndatabase:\n  url: {database_url}\n", encoding="utf-8"
    )
    chats = tmp_path / "chats.jsonl"
    chats.write_text(_jsonl(), encoding="utf-8")
    run = CliRunner().invoke(
        load_plugins(), ["import", "conversations", str(chats), "-c", str(root)]
    )
    assert run.exit_code == 0, run.output
    engine = create_store_engine(load_config(root).database.url)
    with Session(engine) as s:
        ids = {c.external_id: c.id for c in s.exec(select(Conversation)).all()}
    engine.dispose()
    with (root / "data" / "intents" / "discovered.csv").open("w", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["text", "category", "source", "ref"])
        for cid, customer, _, intent in CHATS:
            w.writerow([customer, intent, "discovery", ids[cid]])
    return root


def _exchanges(root: Path) -> Any:
    cfg = load_config(root)
    engine = create_store_engine(cfg.database.url)
    try:
        return read_exchanges(engine, cfg.intents.discovered_data)
    finally:
        engine.dispose()


def test_each_opening_is_paired_with_the_agents_whole_reply(project: Path) -> None:
    got = {(e.intent, e.question): e.reply for e in _exchanges(project)}
    assert len(got) == len(CHATS)
    # two agent messages in a row are one reply
    assert got[("card_arrival", "my card hasn't arrived")] == f"{GENERIC} {ARRIVAL}"
    assert got[("exchange_rate", "what exchange rate do you use")] == GENERIC
    assert got[("exchange_rate", "is your currency rate fair")] == RATE


def test_the_typical_reply_is_proposed_with_its_variants_redacted(
    project: Path, embedder: Any
) -> None:
    ex = _exchanges(project)
    mined = {m.intent: m for m in AnswerMiner(embedder).mine(ex)}
    arrival = mined["card_arrival"]
    assert arrival.answer in (ARRIVAL, ARRIVAL_2 + " Mail me at <EMAIL>")
    # a1 (its "Let me check" left out), a2 and a3 agree
    assert arrival.support == 3 and arrival.replies == 4
    assert [v["text"] for v in arrival.variants] == [ARRIVAL_OTHER]
    assert "jo@example.com" not in json.dumps([m.__dict__ for m in mined.values()])
    # "Let me check" answered both intents: it says nothing of either, so r1 drops out
    rate = mined["exchange_rate"]
    assert rate.replies == 2 and rate.answer in (RATE, RATE_2) and rate.support == 2
    # with agreement demanded of more replies than agree, no proposal
    assert [m.intent for m in AnswerMiner(embedder, min_support=3).mine(ex)] == ["card_arrival"]
    assert [m.intent for m in AnswerMiner(embedder, min_support=4).mine(ex)] == []


def test_agents_labels_name_intents_too(project: Path) -> None:
    cfg = load_config(project)
    cfg.intents.discovered_data.unlink()
    store = SqlConversationStore(create_store_engine(cfg.database.url))
    with Session(store.engine) as s:
        turn = s.exec(
            select(TurnRecord).where(TurnRecord.text == "is your currency rate fair")
        ).one()
        s.add(AgentLabel(turn_id=turn.id, agent="alice", intent="exchange_rate"))
        s.commit()
    [only] = _exchanges(project)
    store.engine.dispose()
    assert (only.intent, only.reply) == ("exchange_rate", RATE)


def test_the_command_proposes_refreshes_and_keeps_reviewed_ones(project: Path) -> None:
    cli = load_plugins()
    run = CliRunner().invoke(cli, ["discover", "answers", "-c", str(project), "--json"])
    assert run.exit_code == 0, run.output
    out = json.loads(run.output.strip().splitlines()[-1])
    assert (out["proposed"], out["added"]) == (2, 2)
    path = load_config(project).knowledge.index_dir.parent / PROPOSALS_FILE
    entries = {e["id"]: e for e in yaml.safe_load(path.read_text())["entries"]}
    assert set(entries) == {"mined-card_arrival", "mined-exchange_rate"}
    assert entries["mined-card_arrival"]["status"] == "pending"
    assert entries["mined-card_arrival"]["source"] == "mined"

    ProposalsFile(path).decide("mined-card_arrival", APPROVED, answer="Three days.", by="alice")
    again = CliRunner().invoke(cli, ["discover", "answers", "-c", str(project), "--json"])
    out = json.loads(again.output.strip().splitlines()[-1])
    assert (out["added"], out["updated"], out["kept"]) == (0, 1, 1)
    entries = {e["id"]: e for e in yaml.safe_load(path.read_text())["entries"]}
    assert entries["mined-card_arrival"]["answer"] == "Three days."  # the reviewed one stays


def test_nothing_to_mine_is_one_clear_line(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    (root / "deskbot.yaml").write_text("name: t\n", encoding="utf-8")
    run = CliRunner().invoke(load_plugins(), ["discover", "answers", "-c", str(root)])
    assert run.exit_code == 2
    assert "no labelled customer message" in run.output
    assert not (root / "var" / "indexes" / PROPOSALS_FILE).exists()


def test_propose_writes_nothing_for_nothing(tmp_path: Path) -> None:
    proposals = ProposalsFile(tmp_path / PROPOSALS_FILE)
    assert propose([], proposals) == {"added": 0, "updated": 0, "kept": 0}
    assert proposals.read() == []
