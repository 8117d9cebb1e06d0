"""How long the agent console's page load and pushed refresh take with 1,000 conversations
queued, for an agent (their teams' queues) and an admin (every queue).

A store (a SQLite file, or a new PostgreSQL database with `--postgres`) gets `--conversations`
queued handoffs of `--turns` turns each, spread over `--teams` teams; a tenth are
claimed. An agent is in two of the teams, an admin in none (admins see all). Each
request runs the console's real handler in this process, as Gradio calls it: the
session cookie checked against `agent_sessions` (`SessionSigner.check`, one lookup per
request, no cache), the agent's teams read, the queue filtered and built:

- page load: `ConsoleHandlers.on_load` (header, queue table, picker, intents);
- pushed refresh: `ConsoleHandlers.tick` with a claimed conversation open (the queue,
  and the transcript it redraws when it changed).

Not included: Gradio's own work around the handler (its queue, the JSON to the
browser: the table's rows are a few hundred bytes each) and the browser's drawing.

    python -m benchmarks.performance.console_refresh --out benchmarks/results/console_refresh.json
    python -m benchmarks.performance.console_refresh --postgres \\
        --out benchmarks/results/console_refresh_postgres.json

Prints JSON: median and p95 (ms) per handler and role, with the conditions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from benchmarks.common import command, log, machine, print_result
from benchmarks.common.serve import create_database, drop_database, pct
from deskbot.bot.core.config import BotConfig
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner, create_agent
from deskbot.ui.console.handlers import ConsoleHandlers
from deskbot.ui.console.unread import Unread

MODULE = "benchmarks.performance.console_refresh"
TARGET_MS = 100.0
CUSTOMER = ["my card never arrived", "it was posted two weeks ago", "can I get a new one"]
BOT = "Cards arrive 3 to 5 working days after they are posted."


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--postgres", action="store_true", help="a new PostgreSQL database")
    p.add_argument("--database-url", help="an empty database to fill instead (default: SQLite)")
    p.add_argument("--conversations", type=int, default=1000)
    p.add_argument("--turns", type=int, default=4, help="turns per conversation")
    p.add_argument("--teams", type=int, default=4)
    p.add_argument("--repeats", type=int, default=60, help="timed calls per handler and role")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    return p.parse_args()


def fill(store: SqlConversationStore, conversations: int, turns: int, teams: list[str]) -> None:
    """Queued handoffs, each a conversation of `turns` turns, round-robin over `teams`."""
    for team in teams:
        if team != store.default_team:
            store.create_team(team)
    for i in range(conversations):
        conv, _ = store.create_conversation(channel="bench")
        for t in range(turns):
            if t % 2 == 0:
                store.append_turn(conv.id, "user", f"{CUSTOMER[t // 2 % 3]} ({i})", intent="card")
            else:
                store.append_turn(conv.id, "bot", BOT, intent="card", confidence=0.9, kind="faq")
        store.open_handoff(conv.id, "customer_request", team=teams[i % len(teams)])
        if i % 500 == 0:
            log(f"{i} conversations")


def time_calls(call: Any, repeats: int) -> list[float]:
    for _ in range(3):  # warm-up: statement caches, the first connection
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def stats(times: list[float]) -> dict[str, Any]:
    return {"median_ms": round(statistics.median(times), 1), "p95_ms": pct(times, 0.95)}


def measure_role(h: ConsoleHandlers, signer: SessionSigner, agent: Any, repeats: int) -> Any:
    request = gr.Request(cookies={COOKIE_NAME: signer.issue(agent)}, headers={})
    loaded = h.on_load(request)
    unread: Unread = loaded[4]
    queue = loaded[1]["value"]
    mine = [h.bot.store.get_handoff(row[0]) for row in queue]
    claimed = next(x for x in mine if x is not None and x.status == "claimed")
    load_times = time_calls(lambda: h.on_load(request), repeats)
    tick_times = time_calls(lambda: h.tick(claimed.id, "", "", unread, False, request), repeats)
    return {
        "queue_rows": len(queue),
        "page_load_on_load": stats(load_times),
        "pushed_refresh_tick": stats(tick_times),
    }


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_store_engine(url)
    migrate(engine)
    store = SqlConversationStore(engine)
    teams = [store.default_team, *(f"team-{i}" for i in range(1, args.teams))]
    started = time.perf_counter()
    fill(store, args.conversations, args.turns, teams)
    agent = create_agent(store, "bench-agent", "bench-password-42", teams=teams[:2])
    admin = create_agent(store, "bench-admin", "bench-password-42", role="admin", teams=[])
    # A tenth claimed, by the agent in their teams and by the admin elsewhere.
    for h in store.handoff_queue()[::10]:
        store.claim_handoff(
            int(h.id or 0), agent.username if h.team in teams[:2] else "bench-admin"
        )
    log(f"store filled in {time.perf_counter() - started:.0f}s")
    bot = SimpleNamespace(
        store=store, classifier=SimpleNamespace(labels=["card"]), pipeline=None, config=BotConfig()
    )
    signer = SessionSigner(b"k" * 32, store)
    handlers = ConsoleHandlers(bot, signer)  # type: ignore[arg-type]
    result = {
        "agent": measure_role(handlers, signer, agent, args.repeats),
        "admin": measure_role(handlers, signer, admin, args.repeats),
    }
    engine.dispose()
    return result


def main() -> None:
    args = parse_args()
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:  # on DESKBOT_BENCH_POSTGRES_URL's server, dropped after
            url = create_database(prefix="deskbot_console_bench")
            try:
                roles = measure(url, args)
            finally:
                drop_database(url)
        else:
            roles = measure(args.database_url or f"sqlite:///{tmp}/console.db", args)
    worst = max(r[k]["median_ms"] for r in roles.values() for k in r if k != "queue_rows")
    result = {
        **roles,
        "target": f"median < {TARGET_MS:g} ms for page load and refresh, agent and admin",
        "met": worst < TARGET_MS,
        "conditions": {
            "database": "PostgreSQL"
            if args.postgres or (args.database_url or "").startswith("postgresql")
            else "SQLite file",
            "load_average_1m_before": load_before,
            "conversations_queued": args.conversations,
            "turns_each": args.turns,
            "teams": args.teams,
            "agent_teams": 2,
            "claimed_share": 0.1,
            "repeats": args.repeats,
            "path": "handler in process: session cookie check + teams + queue (+ transcript "
            "on tick); no Gradio queue or HTTP",
            "cpu_affinity": len(os.sched_getaffinity(0)),
            **machine(),
        },
        "command": command(MODULE),
    }
    print_result(result, args.out)


if __name__ == "__main__":
    main()
