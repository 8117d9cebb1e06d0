"""Online password guessing against the agent console's login, measured over HTTP.

Starts a server process with the console's real login stack as `deskbot serve` wires
it (`add_login_routes`, `LoginThrottle` from `limits:`, `SessionSigner`, `ConsoleGate`,
uvicorn with `server_config`'s settings), on SQLite, 127.0.0.1 trusted as the proxy so
that each simulated address arrives as X-Forwarded-For. The model-serving part of
`deskbot serve` plays no part in a login and is left out (no model to train).

An hour is simulated in `3600 / scale` seconds: the server's hourly rates are
multiplied by `scale`, its back-off and lock durations divided by it (bursts are
counts, unchanged). Each attacker ignores Retry-After and tries every 20 ms, the worst
case; a "try" is an answer that checked a password (303), a 429 checked none.

Printed JSON: tries per simulated hour for one account from one address, one account
from many addresses, one address at many accounts; whether a real agent who mistypes
three times logs in; whether an agent logs in during an attack on her account, from
where she logged in before and from a new address; the median time of a wrong password
for a known and for an unknown username.

    python -m benchmarks.security.login_attack --scale 60 --out benchmarks/results/login_attack.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import log, print_result
from benchmarks.common.serve import free_port, machine_details

PASSWORD = "the-real-password-42"
AGENTS = [f"agent{i}" for i in range(10)]


def serve(db_url: str, port: int, scale: float) -> None:
    """The server process (`--serve`)."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from deskbot.bot.core.config_serving import LimitsConfig
    from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
    from deskbot.ui.accounts.auth import SessionSigner, create_agent
    from deskbot.ui.accounts.login import ConsoleGate, add_login_routes
    from deskbot.ui.accounts.throttle import LoginThrottle
    from deskbot.ui.server import server_config

    base = LimitsConfig(trusted_proxies=("127.0.0.1",))
    limits = LimitsConfig(
        trusted_proxies=("127.0.0.1",),
        login_pair_per_hour=base.login_pair_per_hour * scale,
        login_account_per_hour=base.login_account_per_hour * scale,
        login_address_per_hour=base.login_address_per_hour * scale,
        login_lock_minutes=max(1.0, base.login_lock_minutes / scale),
    )
    engine = create_store_engine(db_url)
    migrate(engine)
    store = SqlConversationStore(engine)
    for name in AGENTS:
        create_agent(store, name, PASSWORD)
    signer = SessionSigner(b"bench-key-" * 4, store)
    app = FastAPI()
    throttle = LoginThrottle(limits, backoff_base_s=1.0 / scale)
    add_login_routes(
        app,
        "/agent",
        store,
        signer,
        "Bench",
        secure_cookies="never",
        trusted_proxies=limits.trusted_proxies,
        throttle=throttle,
    )

    @app.get("/healthz")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    app.add_middleware(ConsoleGate, path="/agent", signer=signer)
    uvicorn.Server(server_config(app, "127.0.0.1", port)).run()


class Attacker:
    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30, follow_redirects=False)

    def login(self, user: str, password: str, address: str) -> tuple[int, float]:
        t = time.perf_counter()
        r = self.client.post(
            "/agent/login",
            data={"username": user, "password": password},
            headers={"X-Forwarded-For": address},
        )
        ms = (time.perf_counter() - t) * 1000
        if r.status_code == 303 and r.headers["location"] == "./":
            return 200, ms  # logged in
        return r.status_code, ms

    def attack(self, seconds: float, pick: Any) -> int:
        """Wrong passwords every 20 ms for `seconds`; how many were checked."""
        checked, i, end = 0, 0, time.monotonic() + seconds
        while time.monotonic() < end:
            user, address = pick(i)
            status, _ms = self.login(user, f"guess-{i}", address)
            checked += status in (303, 200)
            i += 1
            time.sleep(0.02)
        return checked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=60.0, help="simulated hours per real hour")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--serve", nargs=3, metavar=("DB_URL", "PORT", "SCALE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), float(args.serve[2]))
        return
    hour = 3600.0 / args.scale
    work = Path(tempfile.mkdtemp(prefix="login_attack_"))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.security.login_attack",
            "--serve",
            f"sqlite:///{work / 'bench.db'}",
            str(port),
            str(args.scale),
        ],
        env={**os.environ},
        stderr=open(work / "serve.log", "wb"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        a = Attacker(base)
        result: dict[str, Any] = {"scale": args.scale, "simulated_hour_s": hour}
        # A real agent: three typos, then her password, from her desk.
        typos = [a.login("agent1", f"typo-{i}", "192.0.2.10")[0] for i in range(3)]
        result["three_typos_then_login"] = [*typos, a.login("agent1", PASSWORD, "192.0.2.10")[0]]
        log("timing known and unknown usernames")
        known: list[float] = []
        unknown: list[float] = []
        for i in range(60):
            address = f"10.1.{i // 200}.{i % 200}"
            user = AGENTS[2 + i % 8] if i % 2 == 0 else f"nobody{i}"
            status, ms = a.login(user, "wrong-password", address)
            assert status == 303, status
            (known if i % 2 == 0 else unknown).append(ms)
        result["wrong_password_ms_median"] = {
            "known_username": round(statistics.median(known), 1),
            "unknown_username": round(statistics.median(unknown), 1),
        }
        log(f"one account from one address for {hour:.0f} s")
        result["tries_per_hour_one_account_one_address"] = a.attack(
            hour, lambda i: ("agent3", "198.51.100.1")
        )
        log(f"one account from many addresses for {hour:.0f} s, agent logging in meanwhile")
        a.login("agent4", PASSWORD, "192.0.2.44")  # her desk, before the attack
        result["tries_per_hour_one_account_any_addresses"] = a.attack(
            hour, lambda i: ("agent4", f"203.0.{i // 250}.{i % 250}")
        )
        result["agent_logs_in_during_that_attack"] = {
            "from_where_she_logged_in_before": a.login("agent4", PASSWORD, "192.0.2.44")[0] == 200,
            "from_a_new_address": a.login("agent4", PASSWORD, "192.0.2.45")[0] == 200,
        }
        log(f"one address at many accounts for {hour:.0f} s")
        result["tries_per_hour_one_address_all_accounts"] = a.attack(
            hour, lambda i: (AGENTS[i % len(AGENTS)] if i % 3 else f"user{i}", "198.51.100.99")
        )
        result["targets"] = {
            "one_account_one_address_max": 20,
            "one_account_any_addresses_max": 200,
            "one_address_all_accounts_max": 100,
        }
        result["machine"] = machine_details()
    finally:
        proc.terminate()
        proc.wait(10)
    print_result(result, args.out)


if __name__ == "__main__":
    main()
