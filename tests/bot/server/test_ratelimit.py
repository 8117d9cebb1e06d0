"""Size and rate limits over the real app: 413 for big bodies, 429 with Retry-After per
client address and per session, X-Forwarded-For only from trusted proxies, buckets shared
through a real Redis, and nothing stored for a refused request."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deskbot.bot.core.config import ConfigError, LimitsConfig
from deskbot.bot.core.network import parse_networks
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import Bot
from deskbot.bot.server.ratelimit import (
    MemoryTokenBuckets,
    RedisTokenBuckets,
    address_key,
    client_address,
)
from tests.bot.actions.action_server import running_bot
from tests.bot.server.conftest import QUESTION, counts, session


def app_with(bot: Bot, **limits: Any) -> Any:
    """The real API of `bot` with these `limits` (same store and models)."""
    config = dataclasses.replace(
        bot.config, limits=dataclasses.replace(bot.config.limits, **limits)
    )
    return create_api(dataclasses.replace(bot, config=config))


def new_session(client: TestClient) -> dict[str, str]:
    return session(client)[1]


def assert_429(r: Any, says: str) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["retry-after"]) >= 1
    assert says in r.json()["detail"] and "retry in" in r.json()["detail"]


# -- the buckets ------------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    now = [100.0]
    buckets = MemoryTokenBuckets(per_minute=60, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(1.0)  # one token a second
    assert buckets.take("b") == 0.0  # buckets are per key
    now[0] += 0.5
    assert buckets.take("a") == pytest.approx(0.5)  # a refused request takes nothing
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    now[0] += 60
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # refills to the burst, no more


def test_bucket_memory_stays_bounded_under_many_keys() -> None:
    now = [0.0]
    buckets = MemoryTokenBuckets(per_minute=60, burst=5, max_keys=1000, clock=lambda: now[0])
    for i in range(10_000):
        now[0] += 0.001
        buckets.take(f"ip:{i}")
    assert len(buckets) <= 1000
    # The most recent keys are kept, so their count goes on.
    for _ in range(4):
        buckets.take("ip:9999")
    assert buckets.take("ip:9999") > 0


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        pytest.param("203.0.113.9", "198.51.100.1", "203.0.113.9", id="untrusted-peer"),
        pytest.param("10.0.0.2", "198.51.100.1", "198.51.100.1", id="from-proxy"),
        pytest.param("10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1", id="spoofed-left"),
        pytest.param("10.0.0.2", "198.51.100.1, 10.0.0.7", "198.51.100.1", id="two-proxies"),
        pytest.param("10.0.0.2", "10.0.0.8, 10.0.0.7", "10.0.0.8", id="all-trusted"),
        pytest.param("10.0.0.2", "not-an-ip", "10.0.0.2", id="garbage"),
        pytest.param("10.0.0.2", None, "10.0.0.2", id="no-header"),
        pytest.param("10.0.0.2", "2001:db8::1", "2001:db8::1", id="ipv6"),
        pytest.param(None, "198.51.100.1", "unknown", id="no-peer"),
    ],
)
def test_client_address_believes_only_trusted_proxies(
    peer: str | None, forwarded: str | None, expected: str
) -> None:
    assert client_address(peer, forwarded, parse_networks(["10.0.0.0/8"])) == expected


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same subscriber
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next network: another one
        ("::ffff:203.0.113.9", "203.0.113.9"),  # an IPv4 client on a dual-stack socket
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_client_is_limited_by_its_network(address: str, key: str) -> None:
    assert address_key(address) == key


def test_limits_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        LimitsConfig(trusted_proxies=("nginx",))
    with pytest.raises(ConfigError, match="ip_burst"):
        LimitsConfig(ip_burst=0)
    with pytest.raises(ConfigError, match="redis://"):
        LimitsConfig(rate_limit_redis_url="localhost:6379")


def test_the_deployment_names_the_trusted_proxies(tmp_path: Path) -> None:
    from deskbot.bot.core.config import config_from_dict

    env = {"DESKBOT_TRUSTED_PROXIES": " 172.30.86.0/24, 10.1.2.3 "}
    cfg = config_from_dict(
        {"limits": {"trusted_proxies": ["10.0.0.0/8"]}}, root=tmp_path, environ=env
    )
    assert cfg.limits.trusted_proxies == ("172.30.86.0/24", "10.1.2.3")
    with pytest.raises(ConfigError, match="DESKBOT_TRUSTED_PROXIES"):
        config_from_dict({}, root=tmp_path, environ={"DESKBOT_TRUSTED_PROXIES": "nginx"})


# -- the app ------------------------------------------------------------------------------------


def test_a_session_over_its_rate_gets_429_and_nothing_is_stored(bot: Bot) -> None:
    client = TestClient(
        app_with(bot, session_requests_per_minute=6, session_burst=2), raise_server_exceptions=False
    )
    auth = new_session(client)
    for _ in range(2):
        assert client.get("/api/history", headers=auth).status_code == 200
    before = counts(bot)
    for path in ("/api/messages", "/api/messages/stream"):
        r = client.post(path, json={"text": QUESTION}, headers=auth)
        assert_429(r, "in this session")
        # 6 a minute: one every 10 s, less what has refilled since the burst was spent
        # (the exact wait is checked with a fake clock above; here the clock is real).
        assert 1 <= int(r.headers["retry-after"]) <= 10
    assert counts(bot) == before
    # Another session from the same address is served.
    other = new_session(client)
    assert client.post("/api/messages", json={"text": QUESTION}, headers=other).status_code == 200
    assert 'deskbot_rejected_requests_total{status="429"}' in client.get("/metrics").text


def test_an_address_over_its_rate_gets_429_whatever_the_session(bot: Bot) -> None:
    client = TestClient(
        app_with(bot, ip_requests_per_minute=6, ip_burst=3), raise_server_exceptions=False
    )
    auth = new_session(client)
    client.get("/api/history", headers=auth)
    client.post("/api/handoff", headers={"Authorization": "Bearer unknown"})
    before = counts(bot)
    assert_429(client.post("/api/sessions"), "from your address")
    assert_429(client.post("/api/messages", json={"text": "hi"}, headers=auth), "address")
    assert_429(client.post("/webhooks/rest/webhook", json={"sender": "a", "message": "hi"}), "")
    assert counts(bot) == before
    # Probes and pages are never refused.
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    # Another address is served.
    elsewhere = TestClient(client.app, client=("198.51.100.7", 4000))
    assert elsewhere.post("/api/sessions").status_code == 201


def test_forwarded_for_counts_only_behind_a_trusted_proxy(bot: Bot) -> None:
    app = app_with(bot, ip_requests_per_minute=6, ip_burst=1, trusted_proxies=("10.0.0.0/8",))
    proxy = TestClient(app, client=("10.1.2.3", 5000))
    for customer in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        r = proxy.post("/api/sessions", headers={"X-Forwarded-For": customer})
        assert r.status_code == 201, customer
    spoof = {"X-Forwarded-For": "198.51.100.1, 198.51.100.9"}
    assert proxy.post("/api/sessions", headers=spoof).status_code == 201  # .9 is new
    assert_429(proxy.post("/api/sessions", headers=spoof), "address")
    # A client that is no proxy cannot pick its own address with the header.
    direct = TestClient(app, client=("203.0.113.5", 6000))
    assert direct.post("/api/sessions", headers={"X-Forwarded-For": "1.1.1.1"}).status_code == 201
    r = direct.post("/api/sessions", headers={"X-Forwarded-For": "1.1.1.2"})
    assert_429(r, "address")


def test_a_rasa_sender_over_its_rate_gets_429_and_nothing_is_stored(bot: Bot) -> None:
    client = TestClient(
        app_with(bot, session_requests_per_minute=6, session_burst=1), raise_server_exceptions=False
    )
    body = {"sender": "rl-carol", "message": QUESTION}
    assert client.post("/webhooks/rest/webhook", json=body).status_code == 200
    before = counts(bot)
    assert_429(client.post("/webhooks/rest/webhook", json=body), "from this sender")
    assert counts(bot) == before
    assert client.post("/webhooks/rest/webhook", json={**body, "sender": "rl-dan"}).is_success


def test_oversized_bodies_get_413_json_on_every_route(bot: Bot) -> None:
    client = TestClient(app_with(bot), raise_server_exceptions=False)
    auth = new_session(client)
    before = counts(bot)
    big = b"{" + b" " * 20_000 + b"}"

    def chunked() -> Iterator[bytes]:  # no Content-Length
        for _ in range(3):
            yield b" " * 8_000

    for path in (
        "/api/sessions",
        "/api/messages",
        "/api/messages/stream",
        "/api/feedback",
        "/api/handoff",
        "/webhooks/rest/webhook",
        "/no/such/route",
    ):
        for content in (big, chunked()):
            r = client.post(path, content=content, headers={**auth, "Content-Type": "text/plain"})
            assert r.status_code == 413, (path, r.status_code)
            assert "larger than 16384 bytes" in r.json()["detail"]
    assert counts(bot) == before


# -- shared through Redis -------------------------------------------------------------------------


def test_two_replicas_share_their_buckets_through_redis(bot: Bot, redis_url: str) -> None:
    limits = {
        "session_requests_per_minute": 6,
        "session_burst": 3,
        "ip_requests_per_minute": 0,
        "rate_limit_redis_url": redis_url,
    }
    a = TestClient(app_with(bot, **limits), raise_server_exceptions=False)
    b = TestClient(app_with(bot, **limits), raise_server_exceptions=False)
    auth = new_session(a)
    codes = [c.get("/api/history", headers=auth).status_code for c in (a, b, a, b)]
    assert codes == [200, 200, 200, 429]
    import redis

    keys = redis.Redis.from_url(redis_url).keys("deskbot:ratelimit:*")
    assert len(keys) == 1 and auth["Authorization"].split()[1].encode() not in keys[0]


def test_without_redis_each_process_still_counts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    buckets = RedisTokenBuckets(f"redis://127.0.0.1:{closed_port}/0", per_minute=60, burst=2)
    started = time.monotonic()
    waits = [buckets.take("ip:a") for _ in range(3)]
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0
    assert time.monotonic() - started < 2  # one failed connect, then no more tries
    buckets.close()


def test_closing_the_app_releases_redis_and_the_bot(
    redis_url: str,
    tmp_path: Path,
    trained_model_dir: Path,
    faq_index_dir: Path,
    action_server: str,
) -> None:
    import uuid

    import redis

    from deskbot.bot.server.api import close_api

    name = f"deskbot-test-{uuid.uuid4().hex[:8]}"
    url = f"{redis_url}?client_name={name}"

    def ours() -> int:
        admin = redis.Redis.from_url(redis_url)
        try:
            return sum(c.get("name") == name for c in admin.client_list())
        finally:
            admin.close()

    def with_redis(cfg: Any) -> Any:
        return dataclasses.replace(
            cfg, limits=dataclasses.replace(cfg.limits, rate_limit_redis_url=url)
        )

    with running_bot(
        tmp_path / "bot", trained_model_dir, faq_index_dir, action_server, with_redis
    ) as built:
        api = create_api(built)
        client = TestClient(api)
        assert new_session(client)
        assert ours() >= 1  # the limiter talked to Redis
        close_api(api)
        assert ours() == 0
        with pytest.raises(RuntimeError):  # the step pools no longer take work
            built.pipeline._pool.submit(print)
