"""`MicroBatcher`: the one micro-batcher. Concurrent callers share one call of a
batch function, on one worker thread, and each gets its own results, in order.

Under load many turns want the same model at once. Running them one by one costs a full
forward pass each; a batch of 30 short texts costs little more than one. The batcher's
worker takes every request waiting (up to `max_batch`, after at most `max_wait_ms` for
company) and runs them as one call. By default it waits for company only while it is
busy (its last batch ended moments before): a request that finds it idle runs at once,
so a lone customer never pays the wait.

Its users: the intent classifier and the embedder (`bot/nlu/serving.py`), whose batch
function returns rows, and the local generator (`bot/generation/batching.py`), whose
batch function streams each reply to its caller and returns nothing.

Example:
    >>> square = MicroBatcher(lambda xs: [x * x for x in xs], max_wait_ms=0)
    >>> square([2, 3])
    [4, 9]
    >>> square.close()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["MicroBatcher"]


class MicroBatcher(Generic[T, R]):
    """Runs `fn` over the requests of concurrent callers in batches, on one thread.

    Args:
        fn: maps a list of inputs to a list of results of the same length.
        name: names the worker thread (and the log lines).
        max_batch: the most inputs per call of `fn`.
        max_wait_ms: how long the first request of a batch waits for more, when the
            batcher is busy: its last batch ended less than `busy_window_ms` before.
        busy_window_ms: see `max_wait_ms` (default: 5 ms or 5 waits, whichever is more).
        wait_when_idle: wait `max_wait_ms` for company even when idle (the generator:
            a reply takes seconds, so a few ms of waiting that fill a batch pay off).

    Measured on 2 cores (benchmarks/performance/turn_latency.py, 50 sessions, two runs each):
    waiting 1 ms made batches that cost 17.6-18.5 instead of 20.2-20.4 ms of CPU per
    turn (76-86 against 74-76 turns/s). A lone turn gains nothing from the wait, so an
    idle batcher skips it.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        name: str = "batcher",
        max_batch: int = 64,
        max_wait_ms: float = 1.0,
        busy_window_ms: float | None = None,
        wait_when_idle: bool = False,
    ) -> None:
        self._fn = fn
        self.name = name
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.busy_window_s = (
            max(0.005, 5 * self.max_wait_s) if busy_window_ms is None else busy_window_ms / 1000
        )
        self.wait_when_idle = wait_when_idle
        self._last_end = float("-inf")  # when the last batch finished (perf_counter)
        self._queue: SimpleQueue[tuple[list[T], Future[list[R]]] | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0
        self.items = 0
        self._unfinished = 0  # requests queued or running
        self._idle = threading.Condition()

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def submit(self, items: Sequence[T]) -> Future[list[R]]:
        """Queue `items`; the future holds their results, in order."""
        future: Future[list[R]] = Future()
        if not items:
            future.set_result([])
            return future
        self._ensure_started()
        with self._idle:
            self._unfinished += 1
        future.add_done_callback(self._finished)
        self._queue.put((list(items), future))
        return future

    def _finished(self, _future: Future[list[R]]) -> None:
        with self._idle:
            self._unfinished -= 1
            if not self._unfinished:
                self._idle.notify_all()

    @property
    def busy(self) -> bool:
        """Whether a request is queued or running."""
        return self._unfinished > 0

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every request submitted so far has finished; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._unfinished, timeout)

    def __call__(self, items: Sequence[T], timeout: float | None = None) -> list[R]:
        return self.submit(items).result(timeout)

    def close(self) -> None:
        """Stop the worker after the requests already queued."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            size = len(first[0])
            now = time.perf_counter()
            busy = self.wait_when_idle or now - self._last_end < self.busy_window_s
            deadline = now + (self.max_wait_s if busy else 0.0)
            stop = False
            while size < self.max_batch:
                try:
                    remaining = deadline - time.perf_counter()
                    job = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                size += len(job[0])
            self._run(jobs)
            self._last_end = time.perf_counter()
            if stop:
                return

    def _run(self, jobs: list[tuple[list[T], Future[list[R]]]]) -> None:
        live = [(items, fut) for items, fut in jobs if fut.set_running_or_notify_cancel()]
        if not live:
            return
        flat = [item for items, _ in live for item in items]
        try:
            results = list(self._fn(flat))
            if len(results) != len(flat):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(flat)} inputs")
        except BaseException as exc:  # every waiting caller learns of the failure
            for _, fut in live:
                fut.set_exception(exc)
            return
        self.batches += 1
        self.items += len(flat)
        start = 0
        for items, fut in live:
            fut.set_result(results[start : start + len(items)])
            start += len(items)
