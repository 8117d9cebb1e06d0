"""`CircuitBreaker`: stop calling a generator server that keeps failing.

Kept hand-written on purpose: it is forty lines with one lock, and the libraries
(`pybreaker`, `purgatory`) wrap a function call, where our call is a stream whose
failure may come after it started; they would add a dependency for less control.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from deskbot.bot.core.errors import ConfigError

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Stops calling a dependency after `failures` failures in a row, for `reset_s` seconds.

    Closed: calls go through. Open: calls are refused at once. After `reset_s` the next
    call is let through as a trial (half-open): success closes the circuit, failure
    opens it again.

    Args:
        failures: consecutive failures that open the circuit.
        reset_s: how long it stays open before a trial call.
        clock: a monotonic clock (tests pass their own).

    Example:
        >>> breaker = CircuitBreaker(failures=3, reset_s=30)
        >>> breaker.allow(), breaker.state
        (True, 'closed')
    """

    def __init__(
        self,
        failures: int = 3,
        reset_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ConfigError(f"circuit breaker failures must be at least 1, got {failures}")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.reset_s:
                return "half_open"
            return "open"

    def allow(self) -> bool:
        """Whether a call may go through now (taking the single trial slot when half-open)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.reset_s or self._trial:
                return False
            self._trial = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._count = 0
            self._opened_at = None
            self._trial = False

    def record_failure(self) -> None:
        with self._lock:
            self._count += 1
            if self._trial or self._count >= self.failures:
                self._opened_at = self._clock()
            self._trial = False
