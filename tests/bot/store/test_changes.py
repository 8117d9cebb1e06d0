"""The store's change feed (what the agent console waits on), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate


@pytest.fixture
def store(database_url: str) -> Iterator[SqlConversationStore]:
    engine = create_store_engine(database_url)
    migrate(engine)
    store = SqlConversationStore(engine)
    yield store
    store.changes.close()
    engine.dispose()


async def wait_for_change(store: SqlConversationStore, write: threading.Thread) -> float:
    """Seconds from the write's start until the feed changed (30 s at most)."""
    feed = store.changes
    seen = feed.version
    loop = asyncio.get_running_loop()
    if feed.across_processes:  # the first wait starts the listener; let it listen first
        seen = await feed.changed(seen, timeout=10)
    start = loop.time()
    write.start()
    version = await feed.changed(seen, timeout=30)
    assert version != seen, "no change was heard"
    return loop.time() - start


def test_a_turn_written_in_another_thread_wakes_a_waiting_reader(
    store: SqlConversationStore,
) -> None:
    conv, _ = store.create_conversation()
    write = threading.Thread(target=store.append_turn, args=(conv.id, "user", "hello?"))
    waited = asyncio.run(wait_for_change(store, write))
    write.join()
    assert waited < 5  # woken by the write, not by the 30 s timeout


@pytest.mark.postgres
def test_a_write_of_another_process_wakes_a_reader_on_postgresql(postgres_url: str) -> None:
    """Two engines on one database stand for two replicas: B's handoff wakes A's reader."""
    a, b = create_store_engine(postgres_url), create_store_engine(postgres_url)
    migrate(a)
    reader, writer = SqlConversationStore(a), SqlConversationStore(b)
    conv, _ = writer.create_conversation()
    write = threading.Thread(target=writer.open_handoff, args=(conv.id, "customer_request"))
    try:
        waited = asyncio.run(wait_for_change(reader, write))
        write.join()
        assert waited < 5
    finally:
        reader.changes.close()
        a.dispose()
        b.dispose()


def test_a_reader_with_nothing_to_hear_waits_out_its_timeout(
    store: SqlConversationStore,
) -> None:
    async def idle() -> int:
        feed = store.changes
        if feed.across_processes:
            await feed.changed(feed.version, timeout=10)  # the listener's first hello
        seen = feed.version
        return await feed.changed(seen, timeout=0.2) - seen

    assert asyncio.run(idle()) == 0
