"""What the store's tests share: a migrated store on SQLite, and on PostgreSQL where one runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate


@pytest.fixture
def store(database_url: str) -> Iterator[SqlConversationStore]:
    engine = create_store_engine(database_url)
    migrate(engine)
    yield SqlConversationStore(engine)
    engine.dispose()
