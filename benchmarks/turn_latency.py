"""Non-generative turn latency and throughput through the HTTP API, under load.

A turn here is what a customer's message costs without a generator: token check, the
user turn stored, intent classification, FAQ retrieval, the policy, the bot turn and
dialogue state stored (SQLite, WAL). The API runs under uvicorn on loopback in its own
process (`--workers N`); this process is the load generator: a bounded asyncio client,
one keep-alive connection per session (`_http_client`: about 0.3 ms of the shared
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

    python benchmarks/turn_latency.py --project var/demo            # a prepared project
    python benchmarks/turn_latency.py --model MODEL_VERSION_DIR      # any intent model
    python benchmarks/turn_latency.py --project var/demo --workers 2 --no-batching
    python benchmarks/turn_latency.py --model DIR --precision int8 --query-precision int8
    python benchmarks/turn_latency.py --model DIR --precision int8 --query-encoder intents

Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import _serve_common
from _http_client import Connection
from _serve_common import log, proc_cpu_s, server_metrics, summary, wait_ready

DEMO = Path(str(resources.files("deskbot.bot.demo")))
BANKING_TEST = DEMO / "data" / "banking77" / "test.csv"


def live_model_version(project: Path) -> str:
    """The version name the project's live intent model calls itself."""
    from deskbot.bot.core.config import load_config
    from deskbot.bot.nlu.registry import ModelRegistry, read_manifest

    registry = ModelRegistry(load_config(project).intents.registry)
    return read_manifest(registry.live_dir()).version


def prepare_project(args: argparse.Namespace, work: Path) -> Path:
    """A bot project for the run: the given one's config with a fresh database, or a
    new `deskbot init` project around `--model`."""
    return _serve_common.prepare_project(work, project=args.project, model=args.model)


def serve(args: argparse.Namespace) -> None:
    """Run in the server process: build the bot from the project and serve the API."""
    import dataclasses

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
            cfg.dialogue, max_out_of_scope=10**6, max_clarifications=10**6
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


def start_server(args: argparse.Namespace, project: Path, db: Path) -> tuple[list[Any], int]:
    procs = []
    ports = []
    env = {**os.environ, "DESKBOT_DATABASE_URL": f"sqlite:///{db}"}
    for _ in range(args.workers):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, __file__, "--serve", str(project), "--port", str(port)]
        if args.no_batching:
            cmd.append("--no-batching")
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        cmd += ["--batch-wait-ms", str(args.batch_wait_ms), "--precision", args.precision]
        cmd += ["--query-precision", args.query_precision, "--query-encoder", args.query_encoder]
        procs.append(subprocess.Popen(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr))
        ports.append(port)
    return procs, ports  # type: ignore[return-value]


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


async def run_load(
    args: argparse.Namespace, bases: list[str], texts: list[str], pids: list[int]
) -> dict[str, Any]:
    import httpx

    rng = random.Random(7)
    async with httpx.AsyncClient(timeout=60.0, trust_env=False) as client:
        ports = [int(base.rsplit(":", 1)[1]) for base in bases]
        sessions = [Session("127.0.0.1", ports[i % len(ports)]) for i in range(args.sessions)]
        await asyncio.gather(*(s.open() for s in sessions))
        kinds: Counter[str] = Counter()
        sent = 0

        steps: dict[str, list[float]] = {}

        async def say(s: Session, record_steps: bool = False) -> float:
            nonlocal sent
            sent += 1
            ms, kind, latency = await s.say(rng.choice(texts))
            kinds[kind] += 1
            if record_steps:
                # The pipeline's own step times (stored on the turn, returned in the
                # reply); what the client saw beyond "total" is HTTP, the token check
                # and the event loop.
                for step, value in latency.items():
                    steps.setdefault(step, []).append(value)
                steps.setdefault("outside_pipeline", []).append(ms - latency.get("total", ms))
            return ms

        log(f"warm-up: {args.warmup} turns")
        for i in range(args.warmup):
            await say(sessions[i % len(sessions)])

        log(f"sequential: {args.sequential} turns")
        lat: list[float] = []
        t0 = time.perf_counter()
        for i in range(args.sequential):
            lat.append(await say(sessions[i % len(sessions)], record_steps=True))
        sequential = summary(lat, time.perf_counter() - t0)
        sequential["step_p50_ms"] = {
            step: round(statistics.median(values), 2) for step, values in sorted(steps.items())
        }
        log(f"  {sequential}")

        log(f"open loop: {args.rate}/s for {args.seconds}s over {args.sessions} sessions")
        idle: asyncio.Queue[Session] = asyncio.Queue()
        for s in sessions:
            idle.put_nowait(s)
        lat = []
        late = 0
        tasks = []

        async def one(s: Session, due: float) -> None:
            await say(s)
            # Latency as the customer sees it: from when the message was due (it includes
            # any wait for an idle session, which only happens when the server falls behind).
            lat.append((time.perf_counter() - due) * 1000.0)
            idle.put_nowait(s)

        start = time.perf_counter()
        due = start
        end = start + args.seconds
        while due < end:
            due += rng.expovariate(args.rate)
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if idle.empty():
                late += 1
            s = await idle.get()
            tasks.append(asyncio.create_task(one(s, due)))
        await asyncio.gather(*tasks)
        open_loop = summary(lat, time.perf_counter() - start)
        open_loop["target_rate"] = args.rate
        open_loop["arrivals_with_no_idle_session"] = late
        log(f"  {open_loop}")

        log(f"closed loop: {args.sessions} sessions for {args.seconds}s")
        lat = []
        stop = time.perf_counter() + args.seconds

        async def customer(s: Session) -> None:
            while time.perf_counter() < stop:
                lat.append(await say(s))

        t0 = time.perf_counter()
        server0, client0 = proc_cpu_s(pids), time.process_time()
        await asyncio.gather(*(customer(s) for s in sessions))
        closed = summary(lat, time.perf_counter() - t0)
        server_cpu = proc_cpu_s(pids) - server0
        client_cpu = time.process_time() - client0
        if lat:
            # CPU time per turn does not depend much on what else runs on the machine,
            # so it says what an idle machine of this CPU would sustain.
            closed["server_cpu_ms_per_turn"] = round(1000 * server_cpu / len(lat), 2)
            closed["client_cpu_ms_per_turn"] = round(1000 * client_cpu / len(lat), 2)
            closed["capacity_turns_per_s_2_idle_cores_server_only"] = round(
                2 * len(lat) / server_cpu, 1
            )
        log(f"  {closed}")
        metrics = (await client.get(f"{bases[0]}/metrics")).text
        for s in sessions:
            s.close()
    return {
        "sequential": sequential,
        "open_loop": open_loop,
        "closed_loop": closed,
        "sent": sent,
        "sessions_opened": len(sessions),
        "reply_kinds": dict(kinds),
        **server_metrics(metrics),
    }


def main() -> None:
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
    p.add_argument(
        "--query-precision",
        choices=["fp32", "int8"],
        default="fp32",
        help="of the FAQ query embedder (limits.query_precision)",
    )
    p.add_argument(
        "--query-encoder",
        choices=["embedder", "intents"],
        default="embedder",
        help="what embeds the FAQ query (knowledge.query_encoder): intents = one pass a turn",
    )
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args)
        return
    if not (args.project or args.model):
        p.error("give --project DIR (e.g. var/demo after `make demo-prepare`) or --model DIR")

    with open(BANKING_TEST, encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    load_before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="deskbot-bench-"))
    procs: list[Any] = []
    try:
        project = prepare_project(args, work)
        db = work / "bench.db"
        # Migrate once before the workers start, so they do not race to create tables.
        from deskbot.bot.store import create_store_engine, migrate

        engine = create_store_engine(f"sqlite:///{db}")
        migrate(engine)
        engine.dispose()
        procs, ports = start_server(args, project, db)
        bases = [f"http://127.0.0.1:{port}" for port in ports]

        async def go() -> dict[str, Any]:
            import httpx

            async with httpx.AsyncClient(trust_env=False, timeout=5) as c:
                for base, proc in zip(bases, procs, strict=True):
                    await wait_ready(c, base, proc)
            log("server ready")
            return await run_load(args, bases, texts, [p.pid for p in procs])

        # uvloop (uvicorn's, installed with it): the client's own event loop costs the
        # shared cores less.
        import uvloop

        result = uvloop.run(go())
        with sqlite3.connect(db) as conn:
            user_turns = conn.execute("select count(*) from turns where role='user'").fetchone()[0]
            bot_turns = conn.execute("select count(*) from turns where role='bot'").fetchone()[0]
        result.update(
            stored_user_turns=user_turns,
            stored_bot_turns=bot_turns,
            all_stored=user_turns == bot_turns == result["sent"],
            config={
                "workers": args.workers,
                "threads": args.threads,
                "micro_batching": not args.no_batching,
                "batch_wait_ms": args.batch_wait_ms,
                "inference_precision": args.precision,
                "query_precision": args.query_precision,
                "query_encoder": args.query_encoder,
                "sessions": args.sessions,
                "cpus": os.cpu_count(),
                "load_avg_1_5_15_before": load_before,
                "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
                "intent_model": live_model_version(project),
            },
            command="python benchmarks/turn_latency.py " + " ".join(sys.argv[1:]),
        )
        ok = result["all_stored"]
        seq, opened = result["sequential"], result["open_loop"]
        result["targets"] = {
            "p50_ms<=15 (one session)": seq["p50_ms"] <= 15,
            "p95_ms<=40 (one session)": seq["p95_ms"] <= 40,
            f"p50_ms<=15 (open loop, {args.rate:g}/s)": opened["p50_ms"] <= 15,
            f"p95_ms<=40 (open loop, {args.rate:g}/s)": opened["p95_ms"] <= 40,
            ">=150 turns/s (closed loop, 50 sessions)": result["closed_loop"]["turns_per_s"] >= 150,
            "sent == stored": ok,
        }
        print(json.dumps(result))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
