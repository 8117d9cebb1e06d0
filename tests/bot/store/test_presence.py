"""Typing marks: they expire, stop at once when told, and reach other processes on
PostgreSQL (two stores on one database stand for two replicas)."""

from __future__ import annotations

import time

import pytest

from deskbot.bot.store import SqlConversationStore, create_store_engine
from deskbot.bot.store.presence import TYPING_TTL_S, TypingBoard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_mark_lives_its_ttl_and_stops_when_told(store: SqlConversationStore) -> None:
    clock = Clock()
    board = TypingBoard(store.engine, clock=clock)
    assert board.typing("c1", "agent") is None
    board.start("c1", "agent", "Alice Martin")
    board.start("c1", "customer")
    assert board.typing("c1", "agent") == "Alice Martin"
    assert board.typing("c1", "customer") == ""
    assert board.typing("c2", "agent") is None
    clock.now += TYPING_TTL_S - 0.5
    board.start("c1", "customer")  # still typing: renewed
    clock.now += 1.0
    assert board.typing("c1", "agent") is None  # stopped typing: expired
    assert board.typing("c1", "customer") == ""
    board.stop("c1", "customer")  # sent the message
    assert board.typing("c1", "customer") is None
    board.close()


def test_the_store_has_one_board(store: SqlConversationStore) -> None:
    store.typing.start("c1", "customer")
    assert store.typing.typing("c1", "customer") == ""
    store.typing.close()


@pytest.mark.postgres
def test_marks_reach_another_process_on_postgresql(postgres_url: str) -> None:
    from deskbot.bot.store import migrate

    engines = [create_store_engine(postgres_url) for _ in range(2)]
    migrate(engines[0])
    widget, console = (SqlConversationStore(e) for e in engines)
    try:
        assert console.typing.typing("c1", "customer") is None  # starts its listener
        # The listener connects in its own thread; a mark is sent again every RENEW_S
        # (a loaded CI machine has taken over 10 s to connect).
        deadline = time.monotonic() + 60
        while console.typing.typing("c1", "customer") is None:
            assert time.monotonic() < deadline, "the mark never arrived"
            widget.typing.start("c1", "customer")
            time.sleep(0.2)
        widget.typing.stop("c1", "customer")
        while console.typing.typing("c1", "customer") is not None:
            assert time.monotonic() < deadline, "the stop never arrived"
            time.sleep(0.05)
    finally:
        for s in (widget, console):
            s.typing.close()
        for e in engines:
            e.dispose()
