"""Login throttling (issue #22): the hourly ceilings, back-off and lock, the same
answer for unknown names, the form's 429 with Retry-After, metrics, and `unlock`, in
memory and shared through the real Redis."""

from __future__ import annotations

import time
from collections import Counter

from fastapi import FastAPI
from fastapi.testclient import TestClient

from deskbot.bot.core.config_serving import LimitsConfig
from deskbot.bot.store import SqlConversationStore
from deskbot.ui.accounts.auth import SessionSigner, create_agent
from deskbot.ui.accounts.login import add_login_routes
from deskbot.ui.accounts.throttle import LoginThrottle


def limits(**changes: object) -> LimitsConfig:
    return LimitsConfig(**changes)  # type: ignore[arg-type]


def tries(throttle: LoginThrottle, user: str, address: str, n: int) -> list[bool]:
    """`n` wrong passwords in a row: whether each was let through."""
    allowed = []
    for _ in range(n):
        ok = throttle.wait(user, address) == 0.0
        allowed.append(ok)
        if ok:
            throttle.failed(user, address)
    return allowed


def test_the_defaults_keep_to_the_hourly_targets() -> None:
    cfg = LimitsConfig()
    assert cfg.login_pair_burst + cfg.login_pair_per_hour <= 20
    assert cfg.login_account_burst + cfg.login_account_per_hour <= 200
    assert cfg.login_address_burst + cfg.login_address_per_hour <= 100
    assert cfg.login_backoff_after >= 3 and cfg.login_pair_burst > 3


def test_three_typos_cost_nothing_then_back_off_doubles_and_many_lock() -> None:
    events: Counter[str] = Counter()
    throttle = LoginThrottle(
        limits(login_pair_burst=50, login_lock_after=6, login_lock_minutes=1),
        on_event=lambda e: events.update([e]),
    )
    assert tries(throttle, "alice", "192.0.2.1", 3) == [True] * 3
    assert throttle.wait("alice", "192.0.2.1") == 0.0  # the real agent's fourth go
    throttle.failed("alice", "192.0.2.1")  # 4 in a row: the next waits 1 s
    assert 0 < throttle.wait("alice", "192.0.2.1") <= 1.0
    assert throttle.wait("alice", "192.0.2.2") == 0.0  # another address is not slowed
    time.sleep(1.05)
    assert throttle.wait("alice", "192.0.2.1") == 0.0
    throttle.failed("alice", "192.0.2.1")  # 5: 2 s
    assert 1.0 < throttle.wait("alice", "192.0.2.1") <= 2.0
    throttle.failed("alice", "192.0.2.1")  # 6: locked for the lock's minute
    assert throttle.wait("alice", "192.0.2.1") > 50
    assert events["locked"] >= 1 and events["throttled"] >= 2 and events["failure"] == 6
    assert throttle.unlock("alice") > 0
    assert throttle.wait("alice", "192.0.2.1") == 0.0
    throttle.succeeded("alice", "192.0.2.1")  # a success ends the streak
    throttle.failed("alice", "192.0.2.1")
    assert throttle.wait("alice", "192.0.2.1") == 0.0


def test_the_buckets_cap_a_pair_an_account_and_an_address() -> None:
    throttle = LoginThrottle(
        limits(
            login_pair_burst=5,
            login_account_burst=8,
            login_address_burst=7,
            login_backoff_after=50,
            login_lock_after=99,
        )
    )
    # One account from one address: its burst, then nothing for minutes (15 an hour).
    assert sum(tries(throttle, "bob", "198.51.100.1", 10)) == 5
    assert throttle.wait("bob", "198.51.100.1") > 60
    # The same account from other addresses: the account's 8 in all.
    spread = [tries(throttle, "bob", f"198.51.100.{i}", 1)[0] for i in range(2, 10)]
    assert sum(spread) == 3
    # One address at many accounts: its 7 in all; IPv6 counts by /64.
    many = [tries(throttle, f"user{i}", f"2001:db8::{i:x}", 1)[0] for i in range(10)]
    assert sum(many) == 7
    assert throttle.wait("user99", "2001:db8::ffff") > 0
    assert throttle.wait("user99", "2001:db8:0:1::1") == 0.0


def test_an_address_that_logged_in_before_skips_the_account_wide_bucket() -> None:
    throttle = LoginThrottle(limits(login_account_burst=3, login_backoff_after=50))
    assert throttle.wait("carol", "203.0.113.7") == 0.0
    throttle.succeeded("carol", "203.0.113.7")  # her desk
    # An attack from elsewhere empties the account's bucket...
    assert sum(tries(throttle, "carol", f"203.0.113.{i}", 1)[0] for i in range(100, 110)) == 3
    assert throttle.wait("carol", "203.0.113.200") > 0  # a new address waits too
    assert throttle.wait("carol", "203.0.113.7") == 0.0  # ...and she logs in from her desk


def test_the_login_form_answers_429_with_retry_after_alike_for_unknown_names(
    store: SqlConversationStore,
) -> None:
    create_agent(store, "alice", "correct-horse")
    events: Counter[str] = Counter()
    app = FastAPI()
    throttle = LoginThrottle(limits(login_pair_burst=2), on_event=lambda e: events.update([e]))
    add_login_routes(
        app, "/agent", store, SessionSigner(b"k" * 32, store), "Bank", throttle=throttle
    )
    client = TestClient(app, follow_redirects=False)
    for name in ("alice", "nobody"):
        answers = [
            client.post("/agent/login", data={"username": name, "password": "wrong-horse"})
            for _ in range(3)
        ]
        assert [r.status_code for r in answers] == [303, 303, 429], name
        refused = answers[-1]
        assert int(refused.headers["retry-after"]) > 60
        assert "Too many login attempts" in refused.text and name not in refused.text
        assert refused.headers["cache-control"] == "no-store"
    assert events == {"failure": 4, "throttled": 2}
    # The right password is not even checked while throttled.
    r = client.post("/agent/login", data={"username": "alice", "password": "correct-horse"})
    assert r.status_code == 429 and "set-cookie" not in r.headers


def test_replicas_count_together_through_redis_and_unlock_reaches_them(redis_url: str) -> None:
    cfg = limits(
        rate_limit_redis_url=redis_url,
        login_pair_burst=4,
        login_backoff_after=50,
        login_lock_after=99,
    )
    one, two, cli = LoginThrottle(cfg), LoginThrottle(cfg), LoginThrottle(cfg)
    assert one.shared
    allowed = [tries(t, "dave", "192.0.2.50", 1)[0] for t in (one, two) * 3]
    assert sum(allowed) == 4  # one bucket for both replicas
    assert two.wait("dave", "192.0.2.50") > 0
    assert cli.unlock("dave") >= 2  # `deskbot agents unlock dave`
    assert one.wait("dave", "192.0.2.50") == 0.0
    for t in (one, two, cli):
        t.close()


def test_successful_logins_cost_nothing_so_an_office_behind_one_address_logs_in() -> None:
    throttle = LoginThrottle(limits(login_address_burst=3, login_pair_burst=2))
    for i in range(30):  # thirty agents, one address, each logs in twice
        for _ in range(2):
            assert throttle.wait(f"agent{i}", "192.0.2.80") == 0.0, i
            throttle.succeeded(f"agent{i}", "192.0.2.80")
    assert sum(tries(throttle, "agent0", "192.0.2.80", 5)) == 2  # failures still count
