"""GDPR erasure and retention on the real store (SQLite and PostgreSQL), the installed
erasure hooks, `deskbot forget` and `deskbot db prune`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import Session
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.config import BotConfig, ConfigError, config_from_dict, load_config
from deskbot.bot.privacy.erasure import Eraser, ErasureError, load_erasure_hooks
from deskbot.bot.store import (
    ConversationNote,
    SqlConversationStore,
    create_store_engine,
    migrate,
)


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Path:
    """A config file on the test database; the registry and index paths under tmp_path."""
    (tmp_path / "deskbot.yaml").write_text(
        f"name: Test\ndatabase:\n  url: {database_url}\nprivacy:\n  retention_days: 30\n",
        encoding="utf-8",
    )
    return tmp_path


@pytest.fixture
def config(project: Path) -> BotConfig:
    return load_config(project)


@pytest.fixture
def store(config: BotConfig) -> Iterator[SqlConversationStore]:
    engine = create_store_engine(config.database.url)
    migrate(engine)
    yield SqlConversationStore(engine)
    engine.dispose()


def customer_data(store: SqlConversationStore, customer: str | None, tag: str) -> list[str]:
    """Two conversations of `customer` with every kind of row; returns their texts."""
    texts = []
    for n in range(2):
        conv, _ = store.create_conversation(customer_id=customer, channel="api")
        said = f"{tag} my card number {n} never arrived, email {tag}{n}@example.com"
        store.append_turn(conv.id, "user", said, intent="card_arrival", confidence=0.9)
        bot = store.append_turn(conv.id, "bot", f"{tag} reply {n}", intent="card_arrival")
        store.set_feedback(int(bot.id or 0), -1)
        store.add_label(
            int(bot.id or 0), "ann", intent="card_arrival", answer_wrong=True,
            correct_answer=f"{tag} answer {n}",
        )  # fmt: skip
        handoff = store.open_handoff(conv.id, "customer_request", intent="card_arrival")
        store.claim_handoff(int(handoff.id or 0), "ann")
        store.append_turn(conv.id, "agent", f"{tag} agent says hi {n}", author="ann")
        store.save_dialogue_state(conv.id, {"slots": {"email": f"{tag}{n}@example.com"}})
        with Session(store.engine) as s:  # an agent's internal note on the conversation
            s.add(ConversationNote(conversation_id=conv.id, agent="ann", text=f"{tag} note {n}"))
            s.commit()
        texts += [
            said,
            f"{tag} note {n}",
            f"{tag} reply {n}",
            f"{tag} answer {n}",
            f"{tag} agent says hi {n}",
        ]
    return texts


def dump_all_tables(store: SqlConversationStore) -> str:
    """Every row of every table, as text: what an erasure test greps."""
    out = []
    with store.engine.connect() as conn:
        for table in sorted(inspect(store.engine).get_table_names()):
            for row in conn.execute(text(f'select * from "{table}"')):
                out.append(f"{table}: {tuple(row)!r}")
    return "\n".join(out)


def table_counts(store: SqlConversationStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t: int(conn.execute(text(f'select count(*) from "{t}"')).scalar_one())
            for t in inspect(store.engine).get_table_names()
        }


def test_forget_removes_every_row_of_the_customer_and_nothing_else(
    store: SqlConversationStore, config: BotConfig
) -> None:
    gone = customer_data(store, "cust-gone", "zebra")
    kept = customer_data(store, "cust-kept", "walrus")
    anon = customer_data(store, None, "ocelot")
    gone_convs = store.customer_conversation_ids("cust-gone")
    before = table_counts(store)

    eraser = Eraser(store, config)
    assert [name for name, _ in eraser.hooks] == ["training"]  # the installed hooks run
    report = eraser.forget(customer_id="cust-gone", requested_by="cli")

    assert report.rows == {
        "conversations": 2, "turns": 6, "agent_labels": 2, "handoffs": 2, "dialogue_states": 2,
        "satisfaction": 0, "conversation_notes": 2,
    }  # fmt: skip
    dump = dump_all_tables(store)
    for t in [*gone, "cust-gone", "zebra", *gone_convs]:
        assert t not in dump, t
    for t in [*kept, *anon, "cust-kept"]:
        assert t in dump, t
    after = table_counts(store)
    for table in ("conversations", "handoffs", "dialogue_states", "agent_labels"):
        assert after[table] == before[table] - 2, table
    assert after["turns"] == before["turns"] - 6
    (record,) = store.erasures()
    assert record.kind == "forget" and record.requested_by == "cli"
    assert record.counts["turns"] == 6
    # Idempotent: a second request finds nothing and changes nothing.
    assert eraser.forget(customer_id="cust-gone").conversations == 0
    assert table_counts(store) == after

    # An anonymous conversation is erased by its id.
    with store.engine.connect() as conn:
        query = text("select id from conversations where customer_id is null order by id")
        ids = [r[0] for r in conn.execute(query)]
    report = eraser.forget(conversation_ids=ids[:1])
    assert report.conversations == 1 and store.get_conversation(ids[0]) is None
    assert store.get_conversation(ids[1]) is not None
    with pytest.raises(ErasureError, match="name a customer"):
        eraser.forget()


def test_prune_deletes_conversations_idle_past_the_retention_period(
    store: SqlConversationStore, config: BotConfig, project: Path
) -> None:
    customer_data(store, "old", "mammoth")
    customer_data(store, "new", "rabbit")
    old = store.customer_conversation_ids("old")
    long_ago = datetime.now(UTC) - timedelta(days=31)
    with store.engine.begin() as conn:
        for cid in old:
            conn.execute(
                text("update conversations set updated_at = :t where id = :id"),
                {"t": long_ago, "id": cid},
            )
    # The CLI reads the period from privacy.retention_days (30).
    result = CliRunner().invoke(load_plugins(), ["db", "prune", "-c", str(project), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["conversations"] == 2 and report["rows"]["turns"] == 6
    assert report["rows"]["agent_labels"] == 2
    dump = dump_all_tables(store)
    assert "mammoth" not in dump and "rabbit" in dump
    assert [r.kind for r in store.erasures()] == ["prune"]
    assert store.erasures()[0].requested_by == "retention"
    # Nothing is older than 30 days now; a shorter period takes the rest, batch by batch.
    assert Eraser(store, config).prune().conversations == 0
    later = datetime.now(UTC) + timedelta(days=2)
    assert (
        Eraser(store, config)
        .prune(older_than=timedelta(days=1), now=later, batch=1)
        .rows["conversations"]
        == 2
    )
    assert table_counts(store)["turns"] == 0


def test_prune_needs_a_period_and_the_config_checks_it(tmp_path: Path) -> None:
    cfg = config_from_dict({}, root=tmp_path)
    engine = create_store_engine("sqlite://")
    migrate(engine)
    with pytest.raises(ErasureError, match="retention_days"):
        Eraser(SqlConversationStore(engine), cfg, hooks=[]).prune()
    with pytest.raises(ConfigError, match="retention_days must be positive"):
        config_from_dict({"privacy": {"retention_days": 0}}, root=tmp_path)
    with pytest.raises(ConfigError, match="DESKBOT_CUSTOMER_KEY"):
        config_from_dict({"privacy": {"customer_key": "abc"}}, root=tmp_path)
    cfg = config_from_dict({}, root=tmp_path, environ={"DESKBOT_CUSTOMER_KEY": "k" * 40})
    assert cfg.privacy.customer_key == "k" * 40 and "k" * 40 not in repr(cfg)


def test_cli_forget_asks_first_and_says_what_it_erased(
    store: SqlConversationStore, project: Path
) -> None:
    customer_data(store, "cust-cli", "narwhal")
    runner = CliRunner()
    no = runner.invoke(
        load_plugins(), ["forget", "--customer", "cust-cli", "-c", str(project)], input="n\n"
    )
    assert no.exit_code != 0 and len(store.customer_conversation_ids("cust-cli")) == 2
    yes = runner.invoke(
        load_plugins(), ["forget", "--customer", "cust-cli", "-c", str(project)], input="y\n"
    )
    assert yes.exit_code == 0, yes.output
    assert "2 conversations" in yes.output and "6 turns" in yes.output
    assert store.customer_conversation_ids("cust-cli") == []
    again = runner.invoke(
        load_plugins(), ["forget", "--customer", "cust-cli", "-c", str(project), "-y"]
    )
    assert again.exit_code == 1 and "nothing stored" in again.output
    assert runner.invoke(load_plugins(), ["forget", "-c", str(project)]).exit_code == 2


def test_no_erasure_while_the_nightly_job_runs_and_nothing_half_done(
    store: SqlConversationStore, config: BotConfig
) -> None:
    from deskbot.training.nightly.job import WORK_DIR, RetrainLock

    customer_data(store, "cust-busy", "lemur")
    before = table_counts(store)
    lock = RetrainLock(config.intents.registry / WORK_DIR / "lock", engine=store.engine)
    with lock, pytest.raises(ErasureError, match="retraining is running"):
        Eraser(store, config, hooks=load_erasure_hooks()).forget(customer_id="cust-busy")
    assert table_counts(store) == before
    assert Eraser(store, config).forget(customer_id="cust-busy").conversations == 2
