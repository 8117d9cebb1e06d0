"""Load: many customers at once through the HTTP API, on PostgreSQL; nothing may be lost.

A real `deskbot serve` (API, widget and console, one process, as `make demo` runs it)
with a trained intent model, the FAQ index and a real rasa-sdk action server
(`deskbot actions serve`), storing into a new database on the PostgreSQL server
(`CREATE DATABASE` per run, dropped afterwards unless `--keep-db`). This process is the
customers: `--customers` of them at once (a bounded `httpx.AsyncClient`, one keep-alive
connection each), each opening a session and sending `--turns` messages one after the
other, each as soon as the previous reply came (or after `--think-ms`).

The messages are BANKING77 test utterances (never trained on), so turns take every
route: FAQ answers, clarifications, the action server, small talk. The handoff counters
are raised as in turn_latency.py: a handed-off conversation's turns cost almost nothing.
The API's rate limits are turned off: all customers come from one address.

Afterwards every message is looked up in the store: sent, stored (user turns), lost
(sent - stored, goal 0), and each accepted reply's bot turn. Latency is per message,
from sending to the whole reply, over 2xx answers.

    flock /tmp/deskbot-heavy.lock python -m benchmarks.performance.load            # 10-shot BANKING77 model
    flock /tmp/deskbot-heavy.lock python -m benchmarks.performance.load --project var/demo

Prints one JSON object on stdout (and writes `--out`); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, log, serve


def load_project(args: argparse.Namespace, work: Path, actions_url: str | None) -> Path:
    project = serve.prepare_project(
        work,
        project=args.project,
        model=None if args.project else str(args.model or serve.default_model(args.cache)),
    )
    serve.edit_config(
        project,
        {
            "dialogue": {"max_out_of_scope": 10**6, "max_clarifications": 10**6},
            "limits": serve.rate_limits_off(),
            "actions": {"url": actions_url}
            if actions_url
            else {"url": None, "intent_actions": {}, "confirm": {}},
        },
    )
    return project


async def drive(args: argparse.Namespace, base: str, texts: list[str]) -> dict[str, Any]:
    import httpx

    rng = random.Random(args.seed)
    limits = httpx.Limits(
        max_connections=args.customers + 8, max_keepalive_connections=args.customers + 8
    )
    timeout = httpx.Timeout(args.timeout_s, connect=30.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        customers = [serve.Customer(i, client, base) for i in range(args.customers)]
        scripts = [[rng.choice(texts) for _ in range(args.turns)] for _ in customers]
        loads: list[float] = []
        done = asyncio.Event()

        async def sample_load() -> None:
            while not done.is_set():
                loads.append(os.getloadavg()[0])
                await asyncio.sleep(1.0)

        async def customer(c: serve.Customer, script: list[str]) -> None:
            if not await c.open():
                return
            for text in script:
                await c.say(text)
                if args.think_ms:
                    await asyncio.sleep(args.think_ms / 1000.0)

        sampler = asyncio.create_task(sample_load())
        t0 = time.monotonic()
        await asyncio.gather(*(customer(c, s) for c, s in zip(customers, scripts, strict=True)))
        seconds = time.monotonic() - t0
        done.set()
        await sampler
        metrics = (await client.get(f"{base}/metrics")).text
    return {
        "customers": customers,
        "seconds": seconds,
        "load_avg_1m_max": round(max(loads), 2) if loads else None,
        "metrics": metrics,
    }


def report(outcomes: list[serve.Outcome], sessions_failed: int, seconds: float) -> dict[str, Any]:
    ok = [o.ms for o in outcomes if o.accepted]
    statuses = Counter(o.status for o in outcomes if o.status is not None)
    return {
        "sent": len(outcomes),
        "accepted_2xx": len(ok),
        "status_5xx": sum(n for s, n in statuses.items() if s >= 500),
        "status_4xx": sum(n for s, n in statuses.items() if 400 <= s < 500),
        "no_http_answer": sum(1 for o in outcomes if o.status is None),
        "sessions_failed": sessions_failed,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seen": serve.seen_counts(outcomes),
        "latency_ms": {
            "p50": serve.pct(ok, 0.50),
            "p95": serve.pct(ok, 0.95),
            "p99": serve.pct(ok, 0.99),
            "max": round(max(ok), 1) if ok else None,
            "mean": round(sum(ok) / len(ok), 1) if ok else None,
        },
        "seconds": round(seconds, 1),
        "throughput_turns_per_s": round(len(ok) / seconds, 1) if seconds else None,
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--project", help="a prepared bot project (live model and index)")
    p.add_argument("--model", help="an intent model version folder (default: 10-shot BANKING77)")
    p.add_argument("--cache", type=Path, default=Path("var/bench"), help="for the default model")
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--turns", type=int, default=20, help="messages per customer")
    p.add_argument("--think-ms", type=float, default=0.0, help="pause between a reply and the next")
    p.add_argument("--timeout-s", type=float, default=300.0, help="client limit per message")
    p.add_argument("--no-actions", action="store_true", help="no action server")
    p.add_argument("--postgres", default=serve.ADMIN_POSTGRES_URL, help="admin URL of the server")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database afterwards")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=RESULTS / "load.json")
    return p.parse_args()


def summarise(
    args: argparse.Namespace,
    run: dict[str, Any],
    db_url: str,
    server_cpu: float,
    before: dict[str, Any],
    startup_s: float,
) -> dict[str, Any]:
    """The run's result: what the customers saw, what was stored, the config, the targets."""
    customers: list[serve.Customer] = run["customers"]
    outcomes = [o for c in customers for o in c.outcomes]
    result: dict[str, Any] = report(
        outcomes, sum(1 for c in customers if c.conversation is None), run["seconds"]
    )
    stored = serve.check_stored(db_url, outcomes)
    result.update(stored)
    result["lost"] = result["sent"] - stored["stored_user_turns"]
    result["server_cpu_ms_per_turn"] = (
        round(1000 * server_cpu / result["accepted_2xx"], 1) if result["accepted_2xx"] else None
    )
    result.update(serve.server_metrics(run["metrics"]))
    result["machine"] = {
        **serve.machine_details(),
        "load_avg_1_5_15_before": before["load_avg_1_5_15"],
        "load_avg_1m_max_during": run["load_avg_1m_max"],
    }
    result["config"] = {
        "customers": args.customers,
        "turns_per_customer": args.turns,
        "think_ms": args.think_ms,
        "server": "deskbot serve (1 process)",
        "database": "postgresql (fresh database)",
        "action_server": not args.no_actions,
        "model": args.project or str(args.model or "BANKING77 10-shot (var/bench)"),
        "server_startup_s": round(startup_s, 1),
    }
    result["targets"] = {
        "lost == 0": result["lost"] == 0 and stored["accepted_turns_not_stored"] == 0,
        "5xx == 0": result["status_5xx"] == 0,
    }
    return result


def main() -> None:
    args = parse_args()
    texts = serve.banking_test_texts()
    work = Path(tempfile.mkdtemp(prefix="deskbot-load-"))
    servers = []
    db_url = None
    try:
        # The project is written to work/bot; the action server's port is needed in its config.
        actions = None if args.no_actions else serve.action_server(work / "bot", work)
        project = load_project(args, work, f"{actions.base}/webhook" if actions else None)
        if actions:
            servers.append(actions)
            actions.start()
            actions.wait_ready("/health")
        db_url = serve.create_database(args.postgres, prefix="deskbot_load")
        serve.migrate_database(db_url)
        bot = serve.bot_server(project, db_url, work)
        servers.append(bot)
        bot.start()
        startup_s = bot.wait_ready("/readyz")
        log(f"server ready in {startup_s:.1f}s; {args.customers} customers x {args.turns} turns")
        pids = [s.pid for s in servers if s.pid]
        before = serve.machine_details()
        cpu0 = serve.proc_cpu_s(pids)
        run = asyncio.run(drive(args, bot.base, texts))
        server_cpu = serve.proc_cpu_s(pids) - cpu0
        result = summarise(args, run, db_url, server_cpu, before, startup_s)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result))
    finally:
        for server in servers:
            server.stop()
        if db_url and not args.keep_db:
            serve.drop_database(db_url, args.postgres)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
