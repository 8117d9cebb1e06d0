"""What the accounts tests share: a migrated store on a SQLite file (the store's own tests
run on PostgreSQL too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlConversationStore]:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    yield SqlConversationStore(engine)
    engine.dispose()
