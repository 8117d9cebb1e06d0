"""Turn latency at fixed open-loop rates, as `deskbot serve` runs in production.

The README's latency headline: for each configuration (the default, and the fast one:
int8 intent model with the classifier's vectors as the retrieval query) on each store
(SQLite, PostgreSQL), messages arrive at fixed rates (Poisson; `--rates`, default 50,
100 and 150 a second) spread over `--sessions` customers, and the latency each customer
sees is reported as p50 and p95. Then the highest rate whose p95 stays within
`--p95-ms` (default 100 ms) is searched for by bisection between the rates measured.

What runs: `deskbot serve` (the API with the widget and the console mounted, one
process), as shipped, from the demo project or a project made around `--model`, with
two changes the load needs: the API's rate limits are off (every customer comes from
this one address) and the handoff counters are raised (a handed-off conversation's turns
cost almost nothing and would flatter the figures); actions are off (no action server).
The messages are BANKING77 test utterances (never trained on).

The load generator shares the machine's cores with the server. Its CPU per turn and the
server's are both reported (`client_cpu_ms_per_turn`, `server_cpu_ms_per_turn`), so the
figures can be read with the client's share subtracted. Afterwards every message sent
must be in the store (user turns == bot turns == sent).

    python -m benchmarks.performance.open_loop --project var/demo
    python -m benchmarks.performance.open_loop --project var/demo --configs fast --stores sqlite
    python -m benchmarks.performance.open_loop --model DIR --rates 25 50 --seconds 10

Prints one JSON object on stdout (and writes `benchmarks/results/open_loop.json` with a
plot beside it); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, command, emit, log, serve
from benchmarks.performance.turn_latency import LoadRun, Session

MODULE = "benchmarks.performance.open_loop"

# deskbot.yaml keys of each configuration (over the project's own).
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "fast": {
        "limits": {"inference_precision": "int8"},
        "knowledge": {"query_encoder": "intents"},
    },
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--project", help="a prepared bot project (live model and index)")
    p.add_argument("--model", help="an intent model version directory (a project is made)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    p.add_argument("--rates", nargs="+", type=float, default=[50.0, 100.0, 150.0])
    p.add_argument("--p95-ms", type=float, default=100.0, help="the p95 the search holds")
    p.add_argument("--search-steps", type=int, default=3, help="bisection steps (0: none)")
    p.add_argument("--sessions", type=int, default=60)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each rate's run")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--postgres", default=serve.ADMIN_POSTGRES_URL, help="admin URL")
    p.add_argument("--out", default="open_loop", help="name of the result in benchmarks/results")
    args = p.parse_args()
    if not (args.project or args.model):
        p.error("give --project DIR (e.g. var/demo after `make demo-prepare`) or --model DIR")
    return args


class Target:
    """One server (a configuration on a store) and the customers' sessions on it."""

    def __init__(self, args: argparse.Namespace, server: serve.ServerProcess) -> None:
        self.args = args
        self.server = server
        self.sessions: list[Session] = []
        self.texts = serve.banking_test_texts()

    async def open(self) -> None:
        self.sessions = [Session("127.0.0.1", self.server.port) for _ in range(self.args.sessions)]
        await asyncio.gather(*(s.open() for s in self.sessions))
        warm = LoadRun(self.args, self.sessions, self.texts)
        await warm.warm_up()

    async def at_rate(self, rate: float) -> dict[str, Any]:
        """The open loop at `rate` a second, with both processes' CPU per turn."""
        run = LoadRun(
            argparse.Namespace(**{**vars(self.args), "rate": rate}), self.sessions, self.texts
        )
        pid = self.server.pid
        server0 = serve.proc_cpu_s([pid] if pid else [])
        client0 = time.process_time()
        result = await run.open_loop()
        turns = max(1, result["turns"])
        result["server_cpu_ms_per_turn"] = round(
            1000 * (serve.proc_cpu_s([pid] if pid else []) - server0) / turns, 2
        )
        result["client_cpu_ms_per_turn"] = round(1000 * (time.process_time() - client0) / turns, 2)
        result["sent"] = run.sent
        return result

    def close(self) -> None:
        for s in self.sessions:
            s.close()


async def measure_rates(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """Each fixed rate, then the bisection for the highest rate within the p95 bound."""
    await target.open()
    by_rate: dict[str, dict[str, Any]] = {}
    sent = args.warmup
    for rate in args.rates:
        by_rate[f"{rate:g}"] = await target.at_rate(rate)
    ok = [r for r in args.rates if by_rate[f"{r:g}"]["p95_ms"] <= args.p95_ms]
    bad = [r for r in args.rates if by_rate[f"{r:g}"]["p95_ms"] > args.p95_ms]
    low = max(ok) if ok else 0.0
    high = min((r for r in bad if r > low), default=None)
    for _ in range(args.search_steps if high is not None else 0):
        assert high is not None
        mid = round((low + high) / 2, 1)
        if mid in (low, high):
            break
        by_rate[f"{mid:g}"] = result = await target.at_rate(mid)
        if result["p95_ms"] <= args.p95_ms:
            low = mid
        else:
            high = mid
    sent += sum(r["sent"] for r in by_rate.values())
    return {
        "by_rate": by_rate,
        "max_rate_with_p95_within_bound": low or None,
        # None: even the highest rate tried kept p95 within the bound (the max is higher).
        "first_rate_over_bound": high,
        "sent": sent,
    }


def database_url(args: argparse.Namespace, store: str, work: Path) -> str:
    if store == "sqlite":
        return f"sqlite:///{work / 'bench.db'}"
    return serve.create_database(args.postgres)


def run_one(args: argparse.Namespace, config: str, store: str) -> dict[str, Any]:
    """One configuration on one store: a fresh project and database, the server, the load."""
    work = Path(tempfile.mkdtemp(prefix="deskbot-openloop-"))
    url = None
    try:
        project = serve.prepare_project(work, project=args.project, model=args.model)
        serve.edit_config(
            project,
            {
                "dialogue": {"max_out_of_scope": 10**6, "max_clarifications": 10**6},
                "limits": {**serve.rate_limits_off(), **CONFIGS[config].get("limits", {})},
                "knowledge": CONFIGS[config].get("knowledge", {}),
                "actions": {"url": None, "intent_actions": {}, "confirm": {}},
            },
        )
        url = database_url(args, store, work)
        serve.migrate_database(url)
        server = serve.bot_server(project, url, work)
        server.start()
        server.wait_ready("/readyz")
        log(f"{config} on {store}: server ready")
        target = Target(args, server)
        try:
            import uvloop

            result = uvloop.run(measure_rates(args, target))
        finally:
            target.close()
            server.stop()
        result.update(stored(url, result["sent"]))
        return result
    finally:
        if url and store == "postgres":
            serve.drop_database(url, args.postgres)
        shutil.rmtree(work, ignore_errors=True)


def stored(url: str, sent: int) -> dict[str, Any]:
    """User and bot turns in the run's store, against what was sent."""
    from sqlalchemy import text

    from deskbot.bot.store import create_store_engine

    engine = create_store_engine(url)
    with engine.connect() as conn:
        users = conn.execute(text("select count(*) from turns where role='user'")).scalar() or 0
        bots = conn.execute(text("select count(*) from turns where role='bot'")).scalar() or 0
    engine.dispose()
    return {
        "stored_user_turns": users,
        "stored_bot_turns": bots,
        "all_stored": users == bots == sent,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, run in result["runs"].items():
        rates = sorted(run["by_rate"], key=float)
        ax.plot(
            [float(r) for r in rates],
            [run["by_rate"][r]["p95_ms"] for r in rates],
            marker="o",
            label=f"{name} p95",
        )
    ax.axhline(result["p95_bound_ms"], color="grey", linestyle="--", label="p95 bound")
    ax.set_xlabel("arrivals per second (open loop)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_title("deskbot serve: turn latency at fixed rates")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    runs = {}
    for config in args.configs:
        for store in args.stores:
            runs[f"{config}/{store}"] = run_one(args, config, store)
    result = {
        "runs": runs,
        "p95_bound_ms": args.p95_ms,
        "conditions": {
            "server": "deskbot serve (API, widget, console), one process, rate limits off, actions off",
            "sessions": args.sessions,
            "seconds_per_rate": args.seconds,
            "client": "same machine (its CPU per turn is reported)",
            **serve.machine_details(),
        },
        "command": command(MODULE),
    }
    RESULTS.mkdir(exist_ok=True)
    plot(result, RESULTS / f"{args.out}.png")
    emit(result, args.out)


if __name__ == "__main__":
    main()
