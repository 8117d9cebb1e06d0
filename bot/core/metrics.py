"""Prometheus metrics of one bot: turns, step latencies, handoffs and fallbacks.

Each `BotMetrics` owns its registry (no process-wide globals), so two bots in one
process, or two tests, never share counters. `GET /metrics` serves `render()`.

Example:
    >>> m = BotMetrics()
    >>> m.turn("faq", {"classify": 4.2, "total": 9.0})
    >>> b"deskbot_turns_total" in m.render()
    True
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "BotMetrics", "ms_since"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BotMetrics:
    """The bot's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.turns = self._counter(
            "deskbot_turns", "Customer turns answered, by reply kind.", "kind"
        )
        self.latency = Histogram(
            "deskbot_turn_step_seconds",
            "Latency of each pipeline step (step=total for the whole turn).",
            ["step"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.handoffs = self._counter(
            "deskbot_handoffs", "Conversations handed to a person, by reason.", "reason"
        )
        self.fallbacks = self._counter(
            "deskbot_fallbacks", "Steps that failed or timed out and fell back, by step.", "step"
        )
        self.feedback = self._counter("deskbot_feedback", "Customer feedback on replies.", "value")
        self.rejected = self._counter(
            "deskbot_rejected_requests", "API requests refused with a 4xx.", "status"
        )
        self.logins = self._counter(
            "deskbot_console_logins",
            "Agent console login tries, by outcome: ok, failure (wrong username or "
            "password), throttled (429 while backing off or out of tries), locked (429 "
            "while the account is locked from that address).",
            "outcome",
        )

    def _counter(self, name: str, documentation: str, label: str) -> Counter:
        """A counter in this registry with one label."""
        return Counter(name, documentation, [label], registry=self.registry)

    def turn(self, kind: str, latency_ms: Mapping[str, float]) -> None:
        self.turns.labels(kind=kind).inc()
        for step, ms in latency_ms.items():
            self.latency.labels(step=step).observe(ms / 1000.0)

    def handoff(self, reason: str) -> None:
        self.handoffs.labels(reason=reason).inc()

    def fallback(self, step: str) -> None:
        self.fallbacks.labels(step=step).inc()

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


def ms_since(start: float) -> float:
    """Milliseconds since `start` (a `time.perf_counter()` value), as step latencies
    are recorded."""
    return round((time.perf_counter() - start) * 1000.0, 3)
