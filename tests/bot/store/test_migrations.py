"""The shipped migrations, on SQLite and the real PostgreSQL server: a fresh database
reaches the models' schema, and one migrated by an earlier release upgrades keeping
its rows (and downgrades back)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.bot.store.conversations import hash_token
from deskbot.bot.store.engine import _alembic_config

HEAD = "0010"
PREVIOUS_HEAD = "0004"  # the release before had no satisfaction survey
BEFORE_DROP = "0003"  # the release before that had the unused table model_versions


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_store_engine(database_url)
    yield engine
    engine.dispose()


def version(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("select version_num from alembic_version")).scalar()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), SQLModel.metadata))


def test_migrations_create_every_table_and_are_idempotent(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)
    assert tables(engine) == {
        "agent_labels",
        "agent_sessions",
        "agent_teams",
        "agents",
        "alembic_version",
        "audit_events",
        "canned_replies",
        "conversation_notes",
        "conversations",
        "dialogue_states",
        "erasures",
        "handoffs",
        "satisfaction",
        "teams",
        "turns",
    }
    assert version(engine) == HEAD


def test_the_models_match_the_newest_migration(engine: Engine) -> None:
    migrate(engine)
    assert schema_diff(engine) == []


def test_a_database_of_an_earlier_release_upgrades_keeping_its_rows(engine: Engine) -> None:
    migrate(engine, BEFORE_DROP)
    assert "model_versions" in tables(engine)
    store = SqlConversationStore(engine)
    # The conversation row as that release wrote it (today's model has columns it lacks).
    conv_id, token = "c" * 32, "the-session-token"
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into conversations (id, token_hash, customer_id, channel, status,"
                " created_at, updated_at) values (:id, :hash, 'c-1', 'web', 'open',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"id": conv_id, "hash": hash_token(token)},
        )
    store.append_turn(conv_id, "user", "my card hasn't arrived")
    bot = store.record_bot_turn(conv_id, "Cards arrive in 3-5 days.", kind="faq", state={"n": 1})
    store.add_label(int(bot.id or 0), "ann", intent="card_arrival")
    with engine.begin() as conn:  # a handoff and an agent of the one-queue release
        conn.execute(
            text(
                "insert into handoffs (conversation_id, reason, status, created_at)"
                " values (:id, 'customer_request', 'queued', CURRENT_TIMESTAMP)"
            ),
            {"id": conv_id},
        )
        conn.execute(
            text("update conversations set status = 'handoff' where id = :id"), {"id": conv_id}
        )
        conn.execute(
            text(
                "insert into agents (username, display_name, password_hash, role, created_at)"
                " values ('ann', 'Ann', 'x', 'agent', CURRENT_TIMESTAMP)"
            )
        )
    with engine.begin() as conn:  # a row in the table that goes, had anything written one
        conn.execute(
            text(
                "insert into model_versions (kind, version, path, live, created_at)"
                " values ('intents', 'v1', '/models/v1', false, CURRENT_TIMESTAMP)"
            )
        )

    migrate(engine)

    assert version(engine) == HEAD and "model_versions" not in tables(engine)
    assert schema_diff(engine) == []
    store.record_satisfaction(conv_id, 4)  # the new table works on the upgraded rows
    answer = store.satisfaction(conv_id)
    assert answer is not None and answer.score == 4
    found = store.conversation_by_token(token)
    assert found is not None and found.status == "handoff"
    assert (found.customer_id, found.customer_name, found.page) == ("c-1", None, None)
    assert [(t.role, t.kind) for t in store.history(conv_id)] == [("user", None), ("bot", "faq")]
    assert store.dialogue_state(conv_id) == {"n": 1}
    assert [label.turn_id for label in store.labels()] == [bot.id]
    handoff = store.active_handoff(conv_id)
    assert handoff is not None and handoff.team == "general"  # one queue: the default team
    with engine.connect() as conn:
        members = conn.execute(text("select username, team from agent_teams")).all()
    assert [tuple(m) for m in members] == [("ann", "general")]


def test_the_migrations_downgrade_to_the_previous_release_and_to_nothing(engine: Engine) -> None:
    migrate(engine)
    engine.dispose()  # the downgrade runs on its own connection
    command.downgrade(_alembic_config(engine), PREVIOUS_HEAD)
    assert version(engine) == PREVIOUS_HEAD
    assert "satisfaction" not in tables(engine) and "conversations" in tables(engine)
    command.downgrade(_alembic_config(engine), BEFORE_DROP)
    assert "model_versions" in tables(engine)
    assert [i["name"] for i in inspect(engine).get_indexes("model_versions")] == [
        "ix_model_versions_kind"
    ]
    command.downgrade(_alembic_config(engine), "base")
    assert tables(engine) == {"alembic_version"}
    engine.dispose()
    migrate(engine)
    assert version(engine) == HEAD and schema_diff(engine) == []
