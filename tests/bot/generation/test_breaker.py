"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

import pytest

from deskbot.bot.core.errors import ConfigError
from deskbot.bot.generation.breaker import CircuitBreaker


def test_circuit_opens_after_failures_in_a_row() -> None:
    breaker = CircuitBreaker(failures=2, reset_s=10, clock=lambda: 0.0)
    breaker.record_failure()
    breaker.record_success()  # a success in between starts the count again
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()


def test_circuit_half_opens_after_the_reset_time() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=1, reset_s=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.5
    assert breaker.state == "half_open"
    assert breaker.allow()  # the single trial call
    assert not breaker.allow()  # nobody else while it runs
    breaker.record_failure()
    assert breaker.state == "open"
    now[0] = 21.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_needs_at_least_one_failure() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        CircuitBreaker(failures=0)
