"""The one micro-batcher: concurrent callers share one call, each gets its own rows, in order."""

from __future__ import annotations

import threading
import time

import pytest

from deskbot.bot.core.batching import MicroBatcher


def test_concurrent_requests_share_calls_and_get_their_own_results() -> None:
    calls: list[int] = []

    def square(xs: list[int]) -> list[int]:
        calls.append(len(xs))
        time.sleep(0.01)  # a forward pass takes a while: requests pile up meanwhile
        return [x * x for x in xs]

    batcher: MicroBatcher[int, int] = MicroBatcher(square, max_batch=16, max_wait_ms=2)
    results: dict[int, list[int]] = {}

    def call(i: int) -> None:
        results[i] = batcher([i, i + 1000])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: [i * i, (i + 1000) ** 2] for i in range(40)}
    assert sum(calls) == 80 and len(calls) < 40 and max(calls) <= 16
    batcher.close()


def test_a_failing_call_fails_every_caller_of_its_batch_and_not_the_next() -> None:
    def fn(xs: list[str]) -> list[str]:
        if "boom" in xs:
            raise ValueError("model failed")
        return xs

    batcher: MicroBatcher[str, str] = MicroBatcher(fn, max_wait_ms=0)
    with pytest.raises(ValueError, match="model failed"):
        batcher(["boom"])
    assert batcher(["ok"]) == ["ok"]
    assert batcher([]) == []
    batcher.close()


def test_join_waits_for_what_was_submitted_and_busy_says_so() -> None:
    release = threading.Event()

    def slow(xs: list[int]) -> list[int]:
        release.wait(5)
        return xs

    batcher: MicroBatcher[int, int] = MicroBatcher(slow, max_wait_ms=0)
    future = batcher.submit([1])
    assert batcher.busy and not batcher.join(timeout=0.05)
    release.set()
    assert batcher.join(timeout=5) and not batcher.busy
    assert future.result() == [1]
    batcher.close()


def test_wait_when_idle_gathers_a_lone_first_request_with_the_next() -> None:
    calls: list[int] = []

    def fn(xs: list[int]) -> list[int]:
        calls.append(len(xs))
        return xs

    batcher: MicroBatcher[int, int] = MicroBatcher(
        fn, max_batch=2, max_wait_ms=5000, wait_when_idle=True
    )
    first, second = batcher.submit([1]), batcher.submit([2])
    assert first.result(5) == [1] and second.result(5) == [2]
    assert calls == [2]  # an idle batcher without wait_when_idle would have run [1] alone
    batcher.close()


def taken(batcher: MicroBatcher[int, int], timeout: float = 10.0) -> bool:
    """Wait until the worker has taken every queued request (it runs it or waits for company)."""
    deadline = time.monotonic() + timeout
    while not batcher._queue.empty():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_an_idle_batcher_runs_a_lone_request_at_once_and_a_busy_one_waits_for_company() -> None:
    """No clock decides the outcome: the waits are a minute, far beyond any test's
    scheduling delay, so a batcher that waits when idle is caught (the first call does
    not start within 10 s), and one that does not wait when busy is caught (the second
    request runs alone)."""
    calls: list[list[int]] = []
    entered = threading.Event()

    def fn(xs: list[int]) -> list[int]:
        calls.append(list(xs))
        entered.set()
        return xs

    batcher: MicroBatcher[int, int] = MicroBatcher(
        fn, max_batch=2, max_wait_ms=60_000, busy_window_ms=60_000
    )
    first = batcher.submit([1])
    assert entered.wait(10), "an idle batcher waited for company"  # 10 s, not the 60 s wait
    assert first.result(5) == [1] and calls == [[1]]  # idle: it ran at once, alone
    # Busy now (its last batch ended within the busy window): the next request waits for
    # company, and the third fills the batch of two.
    second = batcher.submit([2])
    assert taken(batcher)  # the worker holds it: alone, it would run now
    third = batcher.submit([3])
    assert second.result(10) == [2] and third.result(10) == [3]
    assert calls == [[1], [2, 3]]
    batcher.close()
