"""Login throttling: how many passwords an attacker may try, and how fast.

Three token buckets (`deskbot.bot.server.ratelimit`, shared through Redis when
`limits.rate_limit_redis_url` is set, so replicas count together) hold the hourly
ceilings, each `burst + per_hour` tries in any hour:

- one account from one address (`limits.login_pair_*`, 5 + 15 = 20 an hour),
- one account from all addresses (`login_account_*`, 20 + 180 = 200),
- one address at all accounts (`login_address_*`, 10 + 90 = 100).

Every try takes a token before its password is checked, whether the username exists
or not, so an unknown name gets the same answers at the same rate as a known one, and
parallel tries cannot overshoot; a successful login gives its tokens back, so only
failures count. On top of the buckets, failures in a
row of one account from one address back off exponentially: after
`login_backoff_after` (3, so three typos cost nothing) each further failure makes the
next try wait 1, 2, 4 ... s, and `login_lock_after` (10) lock the pair for
`login_lock_minutes`. A success ends the streak. `deskbot agents unlock NAME` clears an
account's streaks and buckets.

The trade-off for an attack on one account from many addresses: once it has emptied
the account's bucket, a new address has to wait too. The agent is not locked out where
they logged in before: an address that logged in to an account in the last 30 days is
remembered and skips the account-wide bucket (still within its own pair's and
address's). Addresses are client addresses as the rate limiter sees them (the
forwarded one only from `limits.trusted_proxies`), an IPv6 client counted as its /64.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from deskbot.bot.core.config_serving import LimitsConfig
from deskbot.bot.server.ratelimit import (
    MemoryTokenBuckets,
    RedisTokenBuckets,
    TokenBuckets,
    address_key,
)

logger = logging.getLogger(__name__)

PREFIX = "deskbot:login:"
KNOWN_ADDRESS_S = 30 * 86400  # how long a successful login's address is remembered
_STREAK_S = 24 * 3600  # a streak of failures is forgotten after a day without one


def account_key(username: str) -> str:
    """The throttle's name for an account (a hash: any username, fixed length)."""
    return hashlib.sha256(username.strip().encode("utf-8", "replace")).hexdigest()[:24]


class LoginThrottle:
    """Decides whether a login may be tried now, and counts how tries went.

    Args:
        limits: the `limits:` section (login_* settings, the Redis URL).
        on_event: called with "failure", "throttled" or "locked" (metrics).
        clock: seconds since the epoch (tests pass their own).
        backoff_base_s: the first back-off's wait (the benchmark runs time faster).
    """

    def __init__(
        self,
        limits: LimitsConfig,
        *,
        on_event: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        backoff_base_s: float = 1.0,
    ) -> None:
        url = limits.rate_limit_redis_url
        self.backoff_after = limits.login_backoff_after
        self.lock_after = limits.login_lock_after
        self.lock_s = limits.login_lock_minutes * 60.0
        self.on_event = on_event or (lambda _event: None)
        self._clock = clock
        self.backoff_base_s = backoff_base_s
        self.pair = self._buckets(limits.login_pair_per_hour, limits.login_pair_burst, url)
        self.account = self._buckets(limits.login_account_per_hour, limits.login_account_burst, url)
        self.address = self._buckets(limits.login_address_per_hour, limits.login_address_burst, url)
        self._redis: Any = None
        if url:
            import redis

            self._redis = redis.Redis.from_url(
                url, socket_timeout=0.25, socket_connect_timeout=0.25
            )
        self._lock = threading.Lock()
        # Without Redis (or while it is down): key -> (value, expires at).
        self._memory: dict[str, tuple[str, float]] = {}

    @staticmethod
    def _buckets(per_hour: float, burst: int, url: str | None) -> TokenBuckets | None:
        if per_hour <= 0:
            return None
        if url:  # its own key space, which `unlock` deletes from
            return RedisTokenBuckets(url, per_hour / 60.0, burst, prefix=PREFIX)
        return MemoryTokenBuckets(per_hour / 60.0, burst)

    @property
    def shared(self) -> bool:
        """Whether the counts live in Redis (so `unlock` reaches every server)."""
        return self._redis is not None

    def wait(self, username: str, address: str) -> float:
        """Seconds before this login may be tried (0.0: try it now; a token is taken)."""
        acct, addr = account_key(username), address_key(address)
        pair = f"{acct}|{addr}"
        until = float(self._get(f"until:{pair}") or 0.0)
        now = self._clock()
        if until > now:
            locked = int(self._get(f"streak:{pair}") or 0) >= self.lock_after
            self.on_event("locked" if locked else "throttled")
            return until - now
        checks: list[tuple[TokenBuckets | None, str]] = [(self.pair, f"pair:{pair}")]
        if not self._get(f"known:{pair}"):
            checks.append((self.account, f"account:{acct}"))
        checks.append((self.address, f"address:{addr}"))
        for buckets, key in checks:
            if buckets is None:
                continue
            wait = buckets.take(key)
            if wait > 0:
                self.on_event("throttled")
                return wait
        return 0.0

    def failed(self, username: str, address: str) -> None:
        """Count a wrong username or password; back off or lock the pair past the limits."""
        pair = f"{account_key(username)}|{address_key(address)}"
        streak = int(self._get(f"streak:{pair}") or 0) + 1
        self._set(f"streak:{pair}", str(streak), _STREAK_S)
        self.on_event("failure")
        if streak >= self.lock_after:
            delay = self.lock_s
            logger.warning(
                "console logins locked for %.0f min (an account, an address)", delay / 60
            )
        elif streak > self.backoff_after:
            delay = self.backoff_base_s * 2 ** (streak - self.backoff_after - 1)
        else:
            return
        self._set(f"until:{pair}", str(self._clock() + delay), math.ceil(delay) + 1)

    def succeeded(self, username: str, address: str) -> None:
        """End the pair's streak, give back the try's tokens (only failures count
        against the ceilings: an office behind one address logs in every morning) and
        remember the address for this account."""
        acct, addr = account_key(username), address_key(address)
        pair = f"{acct}|{addr}"
        refunds: list[tuple[TokenBuckets | None, str]] = [
            (self.pair, f"pair:{pair}"),
            (self.address, f"address:{addr}"),
        ]
        if not self._get(f"known:{pair}"):
            refunds.append((self.account, f"account:{acct}"))
        for buckets, key in refunds:
            if isinstance(buckets, MemoryTokenBuckets | RedisTokenBuckets):
                buckets.refund(key)
        self._delete(f"streak:{pair}", f"until:{pair}")
        self._set(f"known:{pair}", "1", KNOWN_ADDRESS_S)

    def unlock(self, username: str) -> int:
        """Clear `username`'s streaks, locks and buckets (from every address); how many
        keys went. Without Redis only this process's counts are reached."""
        acct = account_key(username)
        patterns = [f"streak:{acct}|*", f"until:{acct}|*", f"pair:{acct}|*", f"account:{acct}"]
        removed = 0
        if self._redis is not None:
            for pattern in patterns:
                keys = list(self._redis.scan_iter(match=PREFIX + pattern, count=500))
                if keys:
                    removed += int(self._redis.delete(*keys))
        for buckets in (self.pair, self.account):
            if isinstance(buckets, MemoryTokenBuckets | RedisTokenBuckets):
                removed += buckets.drop(lambda k: any(_matches(k, p) for p in patterns))
        with self._lock:
            for key in [k for k in self._memory if any(_matches(k, p) for p in patterns)]:
                del self._memory[key]
                removed += 1
        return removed

    def close(self) -> None:
        for buckets in (self.pair, self.account, self.address):
            if buckets is not None:
                buckets.close()
        if self._redis is not None:
            self._redis.close()

    # -- the streaks' storage: Redis when configured (and reachable), else memory ----

    def _get(self, key: str) -> str | None:
        if self._redis is not None:
            try:
                value = self._redis.get(PREFIX + key)
                return value.decode() if value is not None else None
            except Exception as exc:  # any Redis failure: count in this process
                logger.warning("login throttle: Redis unreachable (%s)", type(exc).__name__)
        with self._lock:
            value, expires = self._memory.get(key, (None, 0.0))
            return value if value is not None and expires > time.monotonic() else None

    def _set(self, key: str, value: str, ttl_s: int) -> None:
        if self._redis is not None:
            try:
                self._redis.set(PREFIX + key, value, ex=ttl_s)
                return
            except Exception as exc:  # any Redis failure: count in this process
                logger.warning("login throttle: Redis unreachable (%s)", type(exc).__name__)
        with self._lock:
            self._memory[key] = (value, time.monotonic() + ttl_s)
            if len(self._memory) > 100_000:
                now = time.monotonic()
                for k in [k for k, (_v, e) in self._memory.items() if e <= now]:
                    del self._memory[k]

    def _delete(self, *keys: str) -> None:
        if self._redis is not None:
            try:
                self._redis.delete(*(PREFIX + k for k in keys))
            except Exception as exc:  # any Redis failure: count in this process
                logger.warning("login throttle: Redis unreachable (%s)", type(exc).__name__)
        with self._lock:
            for key in keys:
                self._memory.pop(key, None)


def _matches(key: str, pattern: str) -> bool:
    return key.startswith(pattern[:-1]) if pattern.endswith("*") else key == pattern
