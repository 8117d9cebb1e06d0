"""Request rate limits: token buckets per client address and per session.

Own buckets rather than the `limits` package (limits==5.8.0 tried): it counts
in windows (fixed, moving, sliding counter), not token buckets, so `burst` and
`per_minute` (two settings: a quiet client may send `burst` at once, then one every
60/per_minute s) would need two limits per key and two round trips, and its wait is
when a window resets rather than when the next token comes (`Retry-After` and
`test_a_bucket_allows_its_burst_then_refills_at_its_rate` would change); and it has no
fallback when Redis is down, which `RedisTokenBuckets` needs (count in this process,
neither refuse everyone nor limit no one). Equal behaviour would take as much code
around it as the buckets are.

A bucket holds up to `burst` tokens and refills at `per_minute / 60` tokens a second;
each request takes one, and a request that finds the bucket empty is refused with 429
and a `Retry-After` saying when the next token comes. Buckets live in this process
(`MemoryTokenBuckets`) or, for several replicas behind one proxy, in Redis
(`RedisTokenBuckets`: one Lua script per request, so replicas share one count).

Which requests count (`RateLimit`): every request that may change something (any method
but GET, HEAD and OPTIONS, which covers chat messages, the Rasa webhook, Gradio events and
the console's login form) and every request under `/api/`; page assets and the health
probes do not. Requests are counted per client address, and those carrying a session
token (`Authorization: Bearer ...`) also per session (the hash of the token, so a token
is never kept in memory or Redis). The client address is the TCP peer, unless that peer
is one of `trusted_proxies`: then it is the right-most address of `X-Forwarded-For` that
is not a trusted proxy (nginx appends the address it saw, so only the proxies' own part
of the header is believed).

Example:
    >>> buckets = MemoryTokenBuckets(per_minute=60, burst=2)
    >>> buckets.take("ip:192.0.2.1"), buckets.take("ip:192.0.2.1")
    (0.0, 0.0)
    >>> buckets.take("ip:192.0.2.1") > 0   # empty: seconds until the next token
    True
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from deskbot.bot.core.network import Network

logger = logging.getLogger(__name__)

# Requests to these paths are never limited: probes must see a busy server as alive.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REST_WEBHOOK_PATH = "/webhooks/rest/webhook"
_MAX_FORWARDED = 32  # X-Forwarded-For entries looked at, right to left


class TokenBuckets(Protocol):
    """Named token buckets of one size and refill rate."""

    per_minute: float
    burst: int
    # True when `take` may wait on the network (call it off the event loop).
    blocking: bool

    def take(self, key: str) -> float:
        """Take a token from `key`'s bucket: 0.0 when there was one, else the seconds
        until there will be (nothing is taken then)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemoryTokenBuckets:
    """Token buckets in this process's memory (thread-safe).

    Args:
        per_minute: tokens added per minute (the sustained request rate).
        burst: the bucket's size (requests allowed at once after a quiet spell).
        max_keys: buckets kept; past it, full buckets (which a new one would equal)
            are dropped first, then the least recently used.
        clock: seconds, monotonic (tests pass their own).
    """

    blocking = False

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be > 0 and burst >= 1")
        self.per_minute = per_minute
        self.burst = burst
        self._rate = per_minute / 60.0
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (tokens, when); insertion order is recency (a key is re-inserted on use).
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """See `TokenBuckets.take`."""
        with self._lock:
            now = self._clock()
            tokens, when = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - when) * self._rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self._rate
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self._max_keys:
                self._prune(now)
            return wait

    def _prune(self, now: float) -> None:
        refill_s = self.burst / self._rate
        for k in [k for k, (_t, w) in self._buckets.items() if now - w >= refill_s]:
            del self._buckets[k]
        excess = len(self._buckets) - self._max_keys // 2
        if excess > self._max_keys // 4:  # still mostly busy buckets: drop the oldest
            for k in list(self._buckets)[:excess]:
                del self._buckets[k]

    def __len__(self) -> int:
        return len(self._buckets)

    def refund(self, key: str) -> None:
        """Give back a token taken from `key`'s bucket (up to its size): the login
        throttle takes one for each try and refunds a successful login's."""
        with self._lock:
            if key in self._buckets:
                tokens, when = self._buckets[key]
                self._buckets[key] = (min(float(self.burst), tokens + 1.0), when)

    def drop(self, matching: Callable[[str], bool]) -> int:
        """Forget (refill) the buckets whose key is `matching`; how many."""
        with self._lock:
            keys = [k for k in self._buckets if matching(k)]
            for k in keys:
                del self._buckets[k]
            return len(keys)

    def close(self) -> None:
        """Nothing to release."""


# One round trip: refill by the time elapsed (Redis's clock, the same for every
# replica), take a token if there is one, keep the bucket as long as it is not full.
_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3] or '1')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if cost < 0 then
  tokens = math.min(burst, tokens - cost)
elseif tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisTokenBuckets:
    """Token buckets in Redis, shared by every replica that names the same server.

    When Redis cannot be reached the buckets of this process count instead (a warning
    is logged, and Redis is tried again `retry_s` later): a limiter outage must not
    turn into refused customers, nor into no limit at all.

    Args:
        url: e.g. `redis://127.0.0.1:6379/0`.
        per_minute, burst: as for `MemoryTokenBuckets`.
        prefix: the keys' prefix (one per bot when bots share a server).
        timeout_s: connect and read timeout of one round trip.
    """

    blocking = True

    def __init__(
        self,
        url: str,
        per_minute: float,
        burst: int,
        *,
        prefix: str = "deskbot:ratelimit:",
        timeout_s: float = 0.25,
        retry_s: float = 5.0,
    ) -> None:
        import redis

        self.per_minute = per_minute
        self.burst = burst
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._script = self._client.register_script(_TAKE_SCRIPT)
        self._prefix = prefix
        self._fallback = MemoryTokenBuckets(per_minute, burst)
        self._retry_s = retry_s
        self._down_until = 0.0

    def take(self, key: str) -> float:
        """See `TokenBuckets.take`."""
        import redis

        now = time.monotonic()
        if now >= self._down_until:
            try:
                raw = self._script(
                    keys=[self._prefix + key], args=[self.per_minute / 60.0, self.burst]
                )
                return max(0.0, float(raw))
            except (redis.RedisError, OSError, ValueError) as exc:
                logger.warning(
                    "rate limits: Redis unreachable (%s); counting in this process for %.0f s",
                    type(exc).__name__,
                    self._retry_s,
                )
                self._down_until = now + self._retry_s
        return self._fallback.take(key)

    def refund(self, key: str) -> None:
        """Give back a token taken from `key`'s bucket (see `MemoryTokenBuckets.refund`)."""
        import redis

        if time.monotonic() >= self._down_until:
            try:
                self._script(
                    keys=[self._prefix + key], args=[self.per_minute / 60.0, self.burst, -1]
                )
                return
            except (redis.RedisError, OSError):
                pass
        self._fallback.refund(key)

    def drop(self, matching: Callable[[str], bool]) -> int:
        """Forget the buckets this process counted while Redis was down (see
        `MemoryTokenBuckets.drop`); Redis's own keys are deleted by their owner."""
        return self._fallback.drop(matching)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def make_buckets(per_minute: float, burst: int, redis_url: str | None) -> TokenBuckets | None:
    """The buckets a config asks for; None when `per_minute` is 0 (no limit)."""
    if per_minute <= 0:
        return None
    if redis_url:
        return RedisTokenBuckets(redis_url, per_minute, burst)
    return MemoryTokenBuckets(per_minute, burst)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The client's address: `peer`, or when `peer` is a trusted proxy, the right-most
    `X-Forwarded-For` entry that is not one."""
    current = peer or "unknown"
    if not trusted or not forwarded_for:
        return current
    hops = [h.strip() for h in forwarded_for.split(",")][-_MAX_FORWARDED:]
    while _is_trusted(current, trusted) and hops:
        hop = hops.pop()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            # Not an address (a trusted proxy would not write that): keep the last hop.
            return current
        current = hop
    return current


def came_over_https(
    scheme: str, peer: str | None, forwarded_proto: str | None, trusted: tuple[Network, ...]
) -> bool:
    """Whether the client's request came over HTTPS: to this server (`scheme`), or to a
    trusted proxy in front that says so in `X-Forwarded-Proto` (its last value: the
    proxy next to us appends). From any other peer the header is ignored."""
    if scheme == "https":
        return True
    if not forwarded_proto or peer is None or not _is_trusted(peer, trusted):
        return False
    return forwarded_proto.split(",")[-1].strip().lower() == "https"


def address_key(address: str) -> str:
    """The rate-limit key of a client address: an IPv6 address counts as its /64 (one
    subscriber's network, whose 2^64 addresses are theirs to rotate through)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in trusted)


def token_key(authorization: str) -> str | None:
    """The session key of an `Authorization` header value (a hash, never the token)."""
    if not authorization.startswith("Bearer "):
        return None
    token = authorization.removeprefix("Bearer ").strip()
    if not token:
        return None
    return "session:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]


def sender_key(sender: str) -> str:
    """The session key of a Rasa REST channel sender."""
    return "sender:" + hashlib.sha256(sender.encode("utf-8", "replace")).hexdigest()[:32]


def too_many(what: str, wait_s: float) -> tuple[str, str]:
    """The 429 message and its `Retry-After` value (whole seconds) for a wait of `wait_s`."""
    retry = max(1, math.ceil(wait_s))
    return f"too many requests {what}; retry in {retry} s", str(retry)


class RateLimit:
    """ASGI middleware: 429 with `Retry-After` and a JSON `detail` once a bucket is empty.

    Args:
        app: the app it guards.
        ip_buckets: per client address (None: no limit).
        session_buckets: per session token (None: no limit).
        trusted_proxies: peers whose `X-Forwarded-For` is believed.
        on_reject: called with 429 for each refused request (metrics).
    """

    def __init__(
        self,
        app: ASGIApp,
        ip_buckets: TokenBuckets | None,
        session_buckets: TokenBuckets | None,
        trusted_proxies: tuple[Network, ...] = (),
        on_reject: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.ip_buckets = ip_buckets
        self.session_buckets = session_buckets
        self.trusted_proxies = trusted_proxies
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._counted(scope):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if self.ip_buckets is not None:
            client = scope.get("client")
            peer = client[0] if client else None
            address = client_address(peer, headers.get("x-forwarded-for"), self.trusted_proxies)
            wait = await take(self.ip_buckets, "ip:" + address_key(address))
            if wait > 0:
                await self._refuse(send, "from your address", wait)
                return
        # The REST channel's Bearer is a client system's credential, not a session: its
        # senders are counted one by one instead (deps.rest_message).
        if self.session_buckets is not None and scope.get("path") != REST_WEBHOOK_PATH:
            key = token_key(headers.get("authorization", ""))
            if key is not None:
                wait = await take(self.session_buckets, key)
                if wait > 0:
                    await self._refuse(send, "in this session", wait)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    def _counted(scope: Scope) -> bool:
        path = str(scope.get("path", ""))
        if path in UNLIMITED_PATHS:
            return False
        return scope.get("method", "GET") not in _SAFE_METHODS or path.startswith("/api/")

    async def _refuse(self, send: Send, what: str, wait_s: float) -> None:
        if self.on_reject is not None:
            self.on_reject(429)
        detail, retry = too_many(what, wait_s)
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", retry.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def take(buckets: TokenBuckets, key: str) -> float:
    """`buckets.take(key)`, off the event loop when it may wait on the network."""
    if buckets.blocking:
        return await anyio.to_thread.run_sync(buckets.take, key)
    return buckets.take(key)


def _headers(scope: Scope) -> dict[str, str]:
    """The headers the limiter reads (latin-1, as HTTP/1.1 carries them)."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        if name in (b"x-forwarded-for", b"authorization"):
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            if key not in out:
                out[key] = text
            elif key == "x-forwarded-for":  # several lines are one list, in order
                out[key] = f"{out[key]}, {text}"
            # A second Authorization line is ignored, as the API ignores it.
    return out
