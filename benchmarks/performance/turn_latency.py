"""Non-generative turn latency and throughput through the HTTP API, under load.

A turn here is what a customer's message costs without a generator: token check, the
user turn stored, intent classification, FAQ retrieval, the policy, the bot turn and
dialogue state stored (SQLite, WAL). The API runs under uvicorn on loopback in its own
process (`--workers N`); this process is the load generator: a bounded asyncio client,
one keep-alive connection per session (`benchmarks.common.http_client`: about 0.3 ms of the shared
cores' CPU per turn, where httpx took 9).

Phases (each session sends its messages one after the other, like a customer):

1. sequential: one session, one message at a time: the latency of a turn alone;
2. open loop: messages arrive at `--rate` per second (Poisson) spread over
   `--sessions` sessions: the latency a customer sees at that load;
3. closed loop: `--sessions` sessions each send as fast as replies come back: the
   most turns per second the server sustains (latency here is queueing: Little's law
   makes it sessions / throughput, so it is reported but not a latency target).

Afterwards every message sent must be in the store: sent == user turns == bot turns.

The messages are BANKING77 test utterances (never trained on). The config is the demo
project's with actions off and the handoff counters raised so that every turn takes
the classify-retrieve-answer path (a handed-off conversation's turns cost almost nothing
and would flatter the figures); the reply kinds are reported.

    python -m benchmarks.performance.turn_latency --project var/demo            # a prepared project
    python -m benchmarks.performance.turn_latency --model MODEL_VERSION_DIR      # any intent model
    python -m benchmarks.performance.turn_latency --project var/demo --workers 2 --no-batching
    python -m benchmarks.performance.turn_latency --model DIR --precision int8 --query-precision int8
    python -m benchmarks.performance.turn_latency --model DIR --precision int8 --query-encoder intents
    python -m benchmarks.performance.turn_latency --model DIR --precision int8 --query-encoder intents --context off

With context on (the default, as served), every message after a session's first is
classified twice in one batch: alone and after the session's thread
(`deskbot.bot.nlu.context`); a session's messages here are unrelated test utterances, so
this is the cost of the second reading, not a measure of follow-ups.

Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import DATA, ROOT, add_query_options, command, log
from benchmarks.common.http_client import Connection
from benchmarks.common.serve import (
    free_port,
    migrate_database,
    prepare_project,
    proc_cpu_s,
    server_metrics,
    stop_processes,
    summary,
    wait_ready,
)

MODULE = "benchmarks.performance.turn_latency"


def live_model_version(project: Path) -> str:
    """The version name the project's live intent model calls itself."""
    from deskbot.bot.core.config import load_config
    from deskbot.bot.nlu.registry import ModelRegistry, read_manifest

    registry = ModelRegistry(load_config(project).intents.registry)
    return read_manifest(registry.live_dir()).version


@dataclass(frozen=True)
class ServerOptions:
    """How the server processes run: the `limits` and `knowledge` keys the run sets."""

    workers: int = 1
    threads: int | None = None
    no_batching: bool = False
    batch_wait_ms: float = 1.0
    precision: str = "fp32"
    query_precision: str = "fp32"
    query_encoder: str = "embedder"
    context: str = "on"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServerOptions:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def argv(self) -> list[str]:
        """The options as the `--serve` process's command line takes them."""
        cmd = ["--no-batching"] if self.no_batching else []
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        cmd += ["--batch-wait-ms", str(self.batch_wait_ms), "--precision", self.precision]
        cmd += ["--query-precision", self.query_precision, "--query-encoder", self.query_encoder]
        return [*cmd, "--context", self.context]


def serve(args: argparse.Namespace) -> None:
    """Run in the server process: build the bot from the project and serve the API."""
    import uvicorn

    from deskbot.bot.core.config import ActionsConfig, load_config
    from deskbot.bot.server.api import create_api
    from deskbot.bot.server.container import build_bot

    cfg = load_config(args.serve)
    cfg = dataclasses.replace(
        cfg,
        actions=ActionsConfig(),  # turns take the FAQ path; actions have their own tests
        knowledge=dataclasses.replace(cfg.knowledge, query_encoder=args.query_encoder),
        dialogue=dataclasses.replace(
            cfg.dialogue,
            max_out_of_scope=10**6,
            max_clarifications=10**6,
            context=dataclasses.replace(cfg.dialogue.context, enabled=args.context == "on"),
        ),
        limits=dataclasses.replace(
            cfg.limits,
            micro_batching=not args.no_batching,
            inference_threads=args.threads,
            batch_wait_ms=args.batch_wait_ms,
            inference_precision=args.precision,
            query_precision=args.query_precision,
            # All sessions come from one address: the turn is measured, not the limiter.
            ip_requests_per_minute=0,
            session_requests_per_minute=0,
        ),
    )
    bot = build_bot(cfg)
    bot.warm_up()
    uvicorn.run(
        create_api(bot),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        backlog=2048,
        # The load generator keeps its connections; uvicorn's 5 s default would close
        # one just as the client reuses it (a ReadError that no real client should see).
        timeout_keep_alive=300,
    )


def start_server(
    options: ServerOptions, project: Path, db: Path
) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """`options.workers` server processes (this module with `--serve`), one port each."""
    procs = []
    ports = []
    env = {**os.environ, "DESKBOT_DATABASE_URL": f"sqlite:///{db}"}
    for _ in range(options.workers):
        port = free_port()
        cmd = [sys.executable, "-m", MODULE, "--serve", str(project), "--port", str(port)]
        procs.append(
            subprocess.Popen(
                cmd + options.argv(), env=env, cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr
            )
        )
        ports.append(port)
    return procs, ports


# -- the load generator -------------------------------------------------------------------


class Session:
    """One customer: a session token and its own keep-alive connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.conn: Connection | None = None
        self.headers: dict[str, str] = {}

    async def open(self) -> None:
        self.conn = await Connection.open(self.host, self.port)
        status, body = await self.conn.request("POST", "/api/sessions")
        if status != 201:
            raise RuntimeError(f"HTTP {status} creating a session: {body[:200]!r}")
        self.headers = {"Authorization": f"Bearer {json.loads(body)['session_token']}"}

    async def say(self, text: str) -> tuple[float, str, dict[str, float]]:
        assert self.conn is not None
        t = time.perf_counter()
        status, body = await self.conn.request(
            "POST", "/api/messages", {"text": text}, self.headers
        )
        ms = (time.perf_counter() - t) * 1000.0
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
        reply = json.loads(body)
        return ms, str(reply["kind"]), reply.get("latency_ms") or {}

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class LoadRun:
    """The three loaded phases over one set of sessions, counting what was sent."""

    def __init__(self, args: argparse.Namespace, sessions: list[Session], texts: list[str]):
        self.args = args
        self.sessions = sessions
        self.texts = texts
        self.rng = random.Random(7)
        self.kinds: Counter[str] = Counter()
        self.sent = 0
        self.steps: dict[str, list[float]] = {}

    async def say(self, s: Session, record_steps: bool = False) -> float:
        self.sent += 1
        ms, kind, latency = await s.say(self.rng.choice(self.texts))
        self.kinds[kind] += 1
        if record_steps:
            # The pipeline's own step times (stored on the turn, returned in the reply);
            # what the client saw beyond "total" is HTTP, the token check and the event loop.
            for step, value in latency.items():
                self.steps.setdefault(step, []).append(value)
            self.steps.setdefault("outside_pipeline", []).append(ms - latency.get("total", ms))
        return ms

    async def warm_up(self) -> None:
        log(f"warm-up: {self.args.warmup} turns")
        for i in range(self.args.warmup):
            await self.say(self.sessions[i % len(self.sessions)])

    async def sequential(self) -> dict[str, Any]:
        log(f"sequential: {self.args.sequential} turns")
        lat: list[float] = []
        t0 = time.perf_counter()
        for i in range(self.args.sequential):
            lat.append(await self.say(self.sessions[i % len(self.sessions)], record_steps=True))
        result = summary(lat, time.perf_counter() - t0)
        result["step_p50_ms"] = {
            step: round(statistics.median(values), 2) for step, values in sorted(self.steps.items())
        }
        log(f"  {result}")
        return result

    async def open_loop(self) -> dict[str, Any]:
        args = self.args
        log(f"open loop: {args.rate}/s for {args.seconds}s over {args.sessions} sessions")
        idle: asyncio.Queue[Session] = asyncio.Queue()
        for s in self.sessions:
            idle.put_nowait(s)
        lat: list[float] = []
        late = 0
        tasks = []

        async def one(s: Session, due: float) -> None:
            await self.say(s)
            # Latency as the customer sees it: from when the message was due (it includes
            # any wait for an idle session, which only happens when the server falls behind).
            lat.append((time.perf_counter() - due) * 1000.0)
            idle.put_nowait(s)

        start = time.perf_counter()
        due = start
        end = start + args.seconds
        while due < end:
            due += self.rng.expovariate(args.rate)
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if idle.empty():
                late += 1
            s = await idle.get()
            tasks.append(asyncio.create_task(one(s, due)))
        await asyncio.gather(*tasks)
        result = summary(lat, time.perf_counter() - start)
        result["target_rate"] = args.rate
        result["arrivals_with_no_idle_session"] = late
        log(f"  {result}")
        return result

    async def closed_loop(self, pids: list[int]) -> dict[str, Any]:
        log(f"closed loop: {self.args.sessions} sessions for {self.args.seconds}s")
        lat: list[float] = []
        stop = time.perf_counter() + self.args.seconds

        async def customer(s: Session) -> None:
            while time.perf_counter() < stop:
                lat.append(await self.say(s))

        t0 = time.perf_counter()
        server0, client0 = proc_cpu_s(pids), time.process_time()
        await asyncio.gather(*(customer(s) for s in self.sessions))
        result = summary(lat, time.perf_counter() - t0)
        server_cpu = proc_cpu_s(pids) - server0
        client_cpu = time.process_time() - client0
        if lat:
            # CPU time per turn does not depend much on what else runs on the machine,
            # so it says what an idle machine of this CPU would sustain.
            result["server_cpu_ms_per_turn"] = round(1000 * server_cpu / len(lat), 2)
            result["client_cpu_ms_per_turn"] = round(1000 * client_cpu / len(lat), 2)
            result["capacity_turns_per_s_2_idle_cores_server_only"] = round(
                2 * len(lat) / server_cpu, 1
            )
        log(f"  {result}")
        return result


async def run_load(
    args: argparse.Namespace, bases: list[str], texts: list[str], pids: list[int]
) -> dict[str, Any]:
    """Warm-up, then the sequential, open-loop and closed-loop phases; the server's metrics."""
    import httpx

    ports = [int(base.rsplit(":", 1)[1]) for base in bases]
    sessions = [Session("127.0.0.1", ports[i % len(ports)]) for i in range(args.sessions)]
    await asyncio.gather(*(s.open() for s in sessions))
    run = LoadRun(args, sessions, texts)
    try:
        await run.warm_up()
        phases = {
            "sequential": await run.sequential(),
            "open_loop": await run.open_loop(),
            "closed_loop": await run.closed_loop(pids),
        }
        async with httpx.AsyncClient(timeout=60.0, trust_env=False) as client:
            metrics = (await client.get(f"{bases[0]}/metrics")).text
    finally:
        for s in sessions:
            s.close()
    return {
        **phases,
        "sent": run.sent,
        "sessions_opened": len(sessions),
        "reply_kinds": dict(run.kinds),
        **server_metrics(metrics),
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--project", help="a prepared bot project (live model and index)")
    p.add_argument("--model", help="an intent model version directory (a project is made)")
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--rate", type=float, default=150.0, help="open-loop arrivals per second")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each loaded phase")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--sequential", type=int, default=200)
    p.add_argument("--workers", type=int, default=1, help="server processes (one port each)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--no-batching", action="store_true", help="one forward pass per turn")
    p.add_argument("--batch-wait-ms", type=float, default=1.0)
    p.add_argument(
        "--precision", choices=["fp32", "int8"], default="fp32", help="of the intent encoder"
    )
    add_query_options(
        p,
        precision_help="of the FAQ query embedder (limits.query_precision)",
        encoder_help="what embeds the FAQ query (knowledge.query_encoder): intents = one pass a turn",
    )
    p.add_argument(
        "--context",
        choices=["on", "off"],
        default="on",
        help="read each message after its session's earlier ones too (dialogue.context)",
    )
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if not (args.serve or args.project or args.model):
        p.error("give --project DIR (e.g. var/demo after `make demo-prepare`) or --model DIR")
    return args


def targets(result: dict[str, Any], rate: float) -> dict[str, bool]:
    """The figures the turn must reach, each met or not."""
    seq, opened = result["sequential"], result["open_loop"]
    return {
        "p50_ms<=15 (one session)": seq["p50_ms"] <= 15,
        "p95_ms<=40 (one session)": seq["p95_ms"] <= 40,
        f"p50_ms<=15 (open loop, {rate:g}/s)": opened["p50_ms"] <= 15,
        f"p95_ms<=40 (open loop, {rate:g}/s)": opened["p95_ms"] <= 40,
        ">=150 turns/s (closed loop, 50 sessions)": result["closed_loop"]["turns_per_s"] >= 150,
        "sent == stored": result["all_stored"],
    }


def stored_turns(db: Path) -> tuple[int, int]:
    """(user turns, bot turns) in the run's SQLite store."""
    with sqlite3.connect(db) as conn:
        user_turns = conn.execute("select count(*) from turns where role='user'").fetchone()[0]
        bot_turns = conn.execute("select count(*) from turns where role='bot'").fetchone()[0]
    return int(user_turns), int(bot_turns)


def measure(args: argparse.Namespace, work: Path, texts: list[str]) -> dict[str, Any]:
    """Serve the project from `work` and run the load against it; the result without config."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    # The given project with a fresh database, or a new one around `--model`.
    project = prepare_project(work, project=args.project, model=args.model)
    db = work / "bench.db"
    # Migrate once before the workers start, so they do not race to create tables.
    migrate_database(f"sqlite:///{db}")
    options = ServerOptions.from_args(args)
    procs, ports = start_server(options, project, db)
    bases = [f"http://127.0.0.1:{port}" for port in ports]

    async def go() -> dict[str, Any]:
        import httpx

        async with httpx.AsyncClient(trust_env=False, timeout=5) as c:
            for base, proc in zip(bases, procs, strict=True):
                await wait_ready(c, base, proc)
        log("server ready")
        return await run_load(args, bases, texts, [p.pid for p in procs])

    try:
        # uvloop (uvicorn's, installed with it): the client's own event loop costs the
        # shared cores less.
        import uvloop

        result = uvloop.run(go())
    finally:
        stop_processes(procs)
    user_turns, bot_turns = stored_turns(db)
    result.update(
        stored_user_turns=user_turns,
        stored_bot_turns=bot_turns,
        all_stored=user_turns == bot_turns == result["sent"],
        config={
            "workers": options.workers,
            "threads": options.threads,
            "micro_batching": not options.no_batching,
            "batch_wait_ms": options.batch_wait_ms,
            "inference_precision": options.precision,
            "query_precision": options.query_precision,
            "query_encoder": options.query_encoder,
            "sessions": args.sessions,
            "cpus": os.cpu_count(),
            "load_avg_1_5_15_before": load_before,
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "intent_model": live_model_version(project),
        },
        command=command(MODULE),
    )
    return result


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args)
        return
    with open(DATA / "test.csv", encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    work = Path(tempfile.mkdtemp(prefix="deskbot-bench-"))
    try:
        result = measure(args, work, texts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["targets"] = targets(result, args.rate)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
