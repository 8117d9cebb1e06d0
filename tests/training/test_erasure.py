"""GDPR erasure end to end: a customer whose labelled messages went through a real
nightly retraining and a reviewed FAQ proposal is forgotten with `deskbot forget`, and
then no table and no file of the project holds anything of theirs (SQLite and
PostgreSQL). Another customer's data is untouched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.config import BotConfig, load_config
from deskbot.bot.nlu.classifier import TransformerIntentClassifier
from deskbot.bot.nlu.registry import KNN_FILE, ModelRegistry
from deskbot.bot.server.container import build_store
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.audit import NIGHTLY
from deskbot.training.data.datasets import IntentDataset, load_intents
from deskbot.training.data.export import text_key
from deskbot.training.data.faq_proposals import FaqLoop
from deskbot.training.erasure import SAME_TEXT_COSINE, redacted_texts
from deskbot.training.nightly.job import PROMOTED, WORK_DIR
from deskbot.training.nightly.quarantine import LabelQuarantine, QuarantinedLabel
from tests.bot.actions.action_server import make_project
from tests.bot.privacy.test_erasure import dump_all_tables
from tests.conftest import BANKING_TEST, TEST_INTENTS
from tests.training.conftest import labelled, nightly_job, tiny_night, unseen_rows
from tests.training.nightly.sides import TRAIN, side_of

# No label audit: the point is what the night writes, not its quality.
NIGHT = tiny_night(audit_margin=None)


def log_customer(
    store: SqlConversationStore, customer: str, rows: list[tuple[str, str]]
) -> list[int]:
    """The customer's messages, the bot's replies and an agent's label on each; the
    first label also carries the right answer (an FAQ proposal). Returns bot turn ids."""
    bot_turns = []
    for i, (text, intent) in enumerate(rows):
        answer = f"Here is how it works for {customer}." if i == 0 else None
        *_, bot = labelled(
            store,
            text,
            intent,
            customer_id=customer,
            channel="api",
            answer_wrong=answer is not None,
            correct_answer=answer,
        )
        bot_turns.append(bot)
    return bot_turns


def files_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def bank_hits(registry: ModelRegistry, texts: list[str]) -> dict[str, int]:
    """Per model version: rows of its neighbour bank that are one of `texts`."""
    import torch
    from safetensors.torch import load_file

    hits = {}
    for version in registry.versions():
        clf = TransformerIntentClassifier(registry.versions_dir / version, runtime="torch")
        emb = torch.nn.functional.normalize(clf.embed(texts), dim=-1)
        banks = load_file(str(registry.versions_dir / version / KNN_FILE))
        hits[version] = sum(
            int(((rows.float() @ emb.T).max(dim=1).values >= SAME_TEXT_COSINE).sum())
            for name, rows in banks.items()
            if name.endswith("embeddings")
        )
    return hits


@pytest.fixture
def project(
    tmp_path: Path,
    database_url: str,
    trained_model_dir: Path,
    faq_index_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Path, BotConfig]:
    root = make_project(tmp_path / "bot", trained_model_dir, faq_index_dir)
    config_file = root / "deskbot.yaml"
    # The index of the session's fixture holds the FAQ alone; rebuilds keep it so.
    raw = config_file.read_text(encoding="utf-8")
    config_file.write_text(re.sub(r"\n  examples: .*\n", "\n  examples: []\n", raw), "utf-8")
    monkeypatch.setenv("DESKBOT_DATABASE_URL", database_url)
    return root, load_config(root)


@pytest.mark.slow
def test_forget_leaves_nothing_of_the_customer_in_any_table_or_file(
    project: tuple[Path, BotConfig], small_intents: IntentDataset
) -> None:
    root, cfg = project
    store = build_store(cfg)
    keep = set(TEST_INTENTS)
    pool = unseen_rows(small_intents)
    # Marked so that a byte search of the whole project finds any copy; one has PII. All
    # on the training side of the validation split: the night learns every one of them.
    marked = [(f"{t} xqz{{}}{i}", y) for i, (t, y) in enumerate(pool)]
    emailed = [(f"{t.format('gone')} write to me at zoe.xqzgone@example.com", y) for t, y in marked]
    first = next(r for r in emailed if side_of(r[0]) == TRAIN)
    others = ((t.format("gone"), y) for t, y in marked)
    gone = [first, *[r for r in others if side_of(r[0]) == TRAIN and r[0] not in first[0]][:5]]
    kept = [(t.format("kept"), y) for t, y in marked if side_of(t.format("kept")) == TRAIN][:6]
    gone_bot_turns = log_customer(store, "cust-gone", gone)
    kept_bot_turns = log_customer(store, "cust-kept", kept)

    # The nightly job learns from both customers ...
    registry = ModelRegistry(cfg.intents.registry)
    test = load_intents(BANKING_TEST)
    heldout = test.without_intents(set(test.intents) - keep, as_oos=False).few_shot(3, seed=0)
    reports = root / "var" / "reports" / "retrain"
    outcome = nightly_job(store, registry, small_intents, heldout, NIGHT, reports).run()
    assert outcome.decision == PROMOTED
    # ... and the agents' answers become FAQ entries, reviewed and indexed.
    loop = FaqLoop.from_config(cfg)
    assert loop.propose(store) == 2
    entries = loop.read()
    for e in entries:
        e["status"] = "approved"
    loop._write(entries)
    assert loop.record_decisions(store, NIGHTLY) == 2  # the audit log names the proposals
    assert loop.ingest_approved() == 2
    gone_red = redacted_texts(tuple(t for t, _ in gone))
    kept_red = redacted_texts(tuple(t for t, _ in kept))
    gone_keys = {text_key(t) for t in gone_red}
    before = files_under(root)
    assert any(b"xqzgone" in data for data in before.values())  # the copies the test must see go
    known = (registry.root / WORK_DIR / "known" / f"{outcome.candidate}.tsv").read_text()
    assert all(k in known for k in gone_keys)
    assert sum(bank_hits(registry, gone_red).values()) >= 1
    kept_in_bank = bank_hits(registry, kept_red)
    gone_proposal = next(e["id"] for e in entries if "cust-gone" in e["answer"])
    assert gone_proposal in dump_all_tables(store)  # its decision's audit row

    # A reviewer had quarantined one label of each customer.
    quarantine = LabelQuarantine(registry.root / WORK_DIR / "quarantine.json")
    held = [store.labels_for([t])[0] for t in (gone_bot_turns[1], kept_bot_turns[1])]
    quarantine.add(
        QuarantinedLabel(
            int(x.id or 0), x.agent, x.intent or "", x.turn_id, None, None, "review", 0.0
        )
        for x in held
    )
    forget = ["forget", "--customer", "cust-gone", "-c", str(root), "--yes", "--json"]
    # An erasure that fails half-way (here: the FAQ file it must re-index is broken, after
    # the neighbour banks and the approved answers were scrubbed) ...
    faq_file = root / "data" / "faq.yaml"
    good_faq = faq_file.read_bytes()
    faq_file.write_text("entries: [half-edited", encoding="utf-8")
    failed = CliRunner().invoke(load_plugins(), forget)
    assert failed.exit_code != 0, failed.output
    assert "xqzgone" in dump_all_tables(store)  # the store is erased last
    # ... is finished by running it again: it finds everything that is left.
    faq_file.write_bytes(good_faq)
    result = CliRunner().invoke(load_plugins(), forget)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"]["conversations"] == 6 and report["rows"]["agent_labels"] == 6
    derived = report["derived"]
    assert derived["training.known_examples"] >= 6
    assert derived["training.faq_proposals"] == 1
    assert derived["training.quarantined_labels"] == 1
    assert quarantine.label_ids() == {held[1].id}  # the other customer's stays

    # Nothing of the customer in any table ...
    dump = dump_all_tables(store)
    for needle in ("xqzgone", "cust-gone", gone_proposal, *gone_red, *(t for t, _ in gone)):
        assert needle not in dump, needle  # the audit log's rows included
    assert all(t in dump for t, _ in kept)
    # ... in any file of the project (raw text, redacted text, keys, PII) ...
    after = files_under(root)
    for path, data in after.items():
        for needle in ("xqzgone", "cust-gone", *gone_keys, gone_proposal):
            assert needle.encode() not in data, (path, needle)
    # ... or in any neighbour bank; the other customer's rows and files are all there.
    assert set(bank_hits(registry, gone_red).values()) == {0}
    assert bank_hits(registry, kept_red) == kept_in_bank
    assert any(b"xqzkept" in data for data in after.values())
    known_after = (registry.root / WORK_DIR / "known" / f"{outcome.candidate}.tsv").read_text()
    assert all(text_key(t) in known_after for t in kept_red)
    (left,) = loop.read()
    assert "cust-kept" in left["answer"]
    approved = yaml.safe_load(loop.approved_file.read_text(encoding="utf-8"))["entries"]
    assert [e["id"] for e in approved] == [left["id"]]
    # The live model and the rebuilt index still serve.
    live = TransformerIntentClassifier(registry.live_dir())
    assert live.predict([kept[0][0]])[0].ranking
    from deskbot.knowledge.indexing.index import load_version

    passages = {p.id for p in load_version(cfg.knowledge.index_dir).passages}
    assert left["id"] in passages and gone_proposal not in passages
