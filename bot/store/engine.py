"""The store's engine and schema: `create_store_engine` and `migrate` (Alembic)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, event
from sqlalchemy import text as sql_text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlmodel import create_engine

from deskbot.bot.core.errors import StoreError
from deskbot.knowledge.files.fsutil import file_lock

__all__ = ["create_store_engine", "migrate"]

# pg_advisory_xact_lock key of schema migrations ("deskbot" in ASCII).
_MIGRATION_LOCK = 0x6465736B626F74


def create_store_engine(url: str, *, echo: bool = False, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for `url`, tuned for the store's access pattern.

    SQLite gets WAL (readers never block the writer) and a busy timeout (how long a
    writer waits for another process's write to finish); an in-memory SQLite database
    is shared by all threads. PostgreSQL gets pre-ping so a restarted server costs one
    retry, not an error.
    """
    if not url.startswith("sqlite"):
        return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        cur = dbapi_conn.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("deskbot.bot.store") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on `<database>.migrate.lock` beside a SQLite file, held until the
    migration has committed (same host only, as SQLite itself)."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        yield
        return
    with file_lock(Path(f"{path}.migrate.lock")):
        yield


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema to `revision` with the shipped Alembic migrations.

    Safe to run from several processes at once (replicas starting together): one
    migrates, the others wait for it and then find nothing to do."""
    cfg = _alembic_config(engine)
    url = engine.url.render_as_string(hide_password=True)
    try:
        with _sqlite_migration_lock(engine), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Released when this transaction ends; DDL is transactional in PostgreSQL,
                # so the next process sees the finished schema.
                conn.execute(sql_text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        reason = str(exc.orig).lower()
        if exc.connection_invalidated or "connect" in reason or "unable to open" in reason:
            raise StoreError(
                f"cannot reach the database {url}: {exc.orig}. "
                "Check DESKBOT_DATABASE_URL or database.url in the config"
            ) from exc
        raise StoreError(f"migrating the database {url} failed: {exc.orig}") from exc
