"""Faults while customers are chatting: what they saw, what was lost, how long recovery took.

Each fault gets its own bot: a copy of one prepared project (the BANKING77 10-shot
model, the FAQ index), a real `deskbot serve` on a new PostgreSQL database, and
`--customers` simulated customers sending messages back to back over HTTP (as in
load.py; a customer whose conversation went to a person, or whose session is gone,
starts a new one). A probe reads `/readyz` every half second. Timeline of each run:
`--warm` seconds of normal load, the fault injected and held, the fault cleared, then
the load goes on until the first normal reply came (or `--recover` seconds) and
`--settle` seconds more.

| fault | injected | cleared | a normal reply |
|---|---|---|---|
| generator_hang | the OpenAI-compatible generator server (a loopback server here) stops answering | it answers again | kind "generated" |
| generator_errors | it answers HTTP 500 | it answers again | kind "generated" |
| actions_down | the rasa-sdk action server is killed | it is started again | kind "action" |
| actions_slow | a proxy delays the action server past `actions.timeout_s` | no delay | kind "action" |
| postgres_restart | PostgreSQL stops (`pg_ctl stop -m fast`) | it is started | any 2xx |
| serve_sigkill | `deskbot serve` gets SIGKILL mid-turn | it is started again | any 2xx |
| retrain_sigkill | `deskbot retrain` gets SIGKILL while training | the next run is started | the next run finishes |
| index_corrupt | the live index version's index.faiss is truncated, the server restarted | `deskbot ingest` wrote a new version | kind "faq" |

PostgreSQL: the restart runs on a private cluster (`initdb` + `pg_ctl` as the postgres
user, on its own port), not the team's shared server on 5432, whose restart would break
everyone else's tests; every other fault uses a new database on the shared server.

Customers retry as a careful client does (`--retries`, default 8): a 5xx, a 429 or no
answer is sent again with the same message id (`message_id`), after Retry-After or a
backoff. The store must then hold each message once and answer it once
(`messages_stored_twice`, `messages_answered_twice`: goal 0); `--retries 0` measures
clients that give up instead.

Per fault: what customers saw before, during and after it (reply kinds, HTTP statuses,
no answer), latency during it, turns lost (accepted (2xx) messages not in the store,
goal 0), messages the server took in but never answered, recovery time (from clearing
the fault to the first normal reply to a message sent after it), readiness as probed.

    flock /tmp/deskbot-heavy.lock python -m benchmarks.robustness.faults
    flock /tmp/deskbot-heavy.lock python -m benchmarks.robustness.faults --only generator_hang,serve_sigkill

Prints one JSON object on stdout and writes `--out` (with `--only`, the faults measured
replace their entries in it); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import fcntl
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from benchmarks.common import RESULTS, log
from benchmarks.common.serve import (
    ADMIN_POSTGRES_URL,
    Customer,
    Outcome,
    ServerProcess,
    action_server,
    banking_test_texts,
    bot_server,
    check_stored,
    create_database,
    default_model,
    deskbot_exe,
    drop_database,
    edit_config,
    free_port,
    ingest_project,
    machine_details,
    migrate_database,
    pct,
    prepare_project,
    rate_limits_off,
    seen_counts,
    server_metrics,
)

FAULTS = (
    "generator_hang",
    "generator_errors",
    "actions_down",
    "actions_slow",
    "postgres_restart",
    "serve_sigkill",
    "retrain_sigkill",
    "index_corrupt",
)
# Notes of the retrain fault copied into the summary: the job's own recovery.
JOB_NOTES = ("lock_free_after_kill_s", "live_after_kill", "next_run_s", "next_run_decision")
ACTION_MESSAGE = "/lost_or_stolen_card"  # a button payload: runs action_freeze_card


# -- the customers ------------------------------------------------------------------------


class Load:
    """`customers` customers chatting without pause in a background thread, and a
    readiness probe, until `stop()`."""

    def __init__(
        self,
        base: str,
        customers: int,
        next_text: Callable[[random.Random, int], str],
        *,
        seed: int = 0,
        timeout_s: float = 120.0,
        retries: int = 0,
    ) -> None:
        self.base = base
        self.retries = retries
        self.n = customers
        self.next_text = next_text
        self.seed = seed
        self.timeout_s = timeout_s
        self.customers: list[Customer] = []
        self.session_failures = 0
        self.ready: list[tuple[float, int | None, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def outcomes(self) -> list[Outcome]:
        return sorted((o for c in self.customers for o in c.outcomes), key=lambda o: o.sent)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 30)

    def wait_for(self, pred: Callable[[Outcome], bool], since: float, timeout: float) -> bool:
        """Block until a reply to a message sent after `since` satisfies `pred`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(o.sent >= since and pred(o) for o in list(self._recent())):
                return True
            time.sleep(0.2)
        return False

    def _recent(self) -> list[Outcome]:
        return [o for c in list(self.customers) for o in c.outcomes[-5:]]

    async def _main(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.n + 4, max_keepalive_connections=self.n + 4)
        timeout = httpx.Timeout(self.timeout_s, connect=5.0)
        async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
            await asyncio.gather(*(self._customer(i, client) for i in range(self.n)), self._probe())

    async def _customer(self, i: int, client: Any) -> None:
        rng = random.Random(self.seed * 1000 + i)
        c: Customer | None = None
        turn = 0
        while not self._stop.is_set():
            if c is None:
                c = Customer(i, client, self.base)
                if not await c.open():
                    self.session_failures += 1
                    c = None
                    await asyncio.sleep(0.5)
                    continue
                self.customers.append(c)
            o = await c.say(self.next_text(rng, turn), self.retries)
            turn += 1
            if not o.accepted:
                if o.status == 401:
                    c = None
                await asyncio.sleep(0.5)  # a client backs off before trying again
            elif o.kind == "handoff":
                c = None  # a person has it now; the next message is a new customer's

    async def _probe(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as probe:
            while not self._stop.is_set():
                t = time.monotonic()
                try:
                    r = await probe.get(f"{self.base}/readyz")
                    status = str(r.json().get("status"))
                    self.ready.append((t, r.status_code, status))
                except Exception as exc:
                    self.ready.append((t, None, type(exc).__name__))
                await asyncio.sleep(0.5)


# -- fault tools --------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc), children first."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(0), [])
        out += kids
        todo += kids
    return out


class FakeGenerator:
    """An OpenAI-compatible `/v1/chat/completions` server on loopback that streams the
    first sentence of the first passage in its prompt; `mode` switches it to hanging
    (reads the request, never answers) or failing (HTTP 500)."""

    def __init__(self) -> None:
        self.mode = "normal"
        self.requests = 0
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests += 1
                self.close_connection = True
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if fake.mode == "hang":
                        fake._release.wait(600)
                        return  # closes without an answer
                    if fake.mode == "error":
                        self.send_response(500)
                        self.send_header("Content-Length", "2")
                        self.end_headers()
                        self.wfile.write(b"{}")
                        return
                    self._stream(fake.reply(body))

            def _stream(self, text: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for i, word in enumerate(text.split(" ")):
                    delta = {"content": word if i == 0 else " " + word}
                    event = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @staticmethod
    def reply(body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        m = re.search(r"^\[1\] (.+)$", system, re.MULTILINE)
        if not m:
            return "I'm not sure; a support agent can help."
        sentence = re.split(r"(?<=[.!?])\s", m.group(1).strip())[0]
        return sentence

    def set(self, mode: str) -> None:
        if self.mode == "hang" and mode != "hang":
            self._release.set()
        if mode == "hang":
            self._release = threading.Event()
        self.mode = mode

    def close(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class DelayProxy:
    """A TCP proxy on loopback; with `delay_s` > 0 every request waits that long before
    its bytes are passed on (a slow upstream). The delay is per chunk the client sends,
    not per connection: the bot's action client keeps its connections alive."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay_s = 0.0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)

            async def start() -> None:
                self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
                ready.set()

            self._loop.run_until_complete(start())
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, delayed: bool) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await r.read(65536):
                    if delayed and self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    w.write(data)
                    await w.drain()
            with contextlib.suppress(OSError):
                w.close()

        await asyncio.gather(pump(reader, up_w, True), pump(up_r, writer, False))

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)


class PrivatePostgres:
    """A PostgreSQL cluster of our own (initdb in a temporary folder, run as the postgres
    user on a free port), so that restarting it disturbs no one else."""

    BIN = Path("/usr/lib/postgresql/15/bin")

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise SystemExit("the postgres_restart fault runs a private cluster: run as root")
        self.dir = Path(tempfile.mkdtemp(prefix="deskbot-pg-"))
        shutil.chown(self.dir, "postgres")
        self.port = free_port()
        self._pg(f"{self.BIN}/initdb -D {self.dir}/data -A trust -U postgres >/dev/null")
        self.start()

    def _pg(self, cmd: str) -> None:
        subprocess.run(["su", "postgres", "-c", cmd], check=True, stdout=subprocess.DEVNULL)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._pg(f"{self.BIN}/pg_ctl -D {self.dir}/data -o '{opts}' -l {self.dir}/log -w start")

    def stop(self, mode: str = "fast") -> None:
        self._pg(f"{self.BIN}/pg_ctl -D {self.dir}/data -m {mode} -w stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the faults ---------------------------------------------------------------------------


@dataclass
class Context:
    """One fault's run: its project, database, servers and notes."""

    name: str
    work: Path
    project: Path
    args: argparse.Namespace
    texts: list[str]
    db_admin: str = ADMIN_POSTGRES_URL
    db_url: str = ""
    bot: ServerProcess | None = None
    actions: ServerProcess | None = None
    generator: FakeGenerator | None = None
    proxy: DelayProxy | None = None
    postgres: PrivatePostgres | None = None
    load: Load | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Fault:
    """A fault: how the bot is set up for it, how it is injected and cleared, and what
    a normal reply is. `hold_s`: how long the fault lasts."""

    description = ""
    hold_s = 20.0
    # What `recovery_s` measures for this fault.
    recovery = "from clearing the fault to the first normal reply to a message sent after it"

    def configure(self, ctx: Context) -> None:
        pass

    def next_text(self, ctx: Context) -> Callable[[random.Random, int], str]:
        texts = ctx.texts
        return lambda rng, _turn: rng.choice(texts)

    def normal(self, o: Outcome) -> bool:
        return o.accepted

    def inject(self, ctx: Context) -> None:
        raise NotImplementedError

    def clear(self, ctx: Context) -> None:
        raise NotImplementedError


class ModeFault(Fault):
    """A fault that comes in modes: `modes` names each one's description."""

    modes: ClassVar[dict[str, str]] = {}

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.description = self.modes[mode]


class GeneratorFault(ModeFault):
    modes: ClassVar[dict[str, str]] = {
        "hang": "the generator server reads each request and never answers",
        "error": "the generator server answers HTTP 500",
    }
    recovery = (
        "from the generator answering again to the first generated reply "
        "(the circuit breaker retries after breaker_reset_s 5)"
    )

    def configure(self, ctx: Context) -> None:
        ctx.generator = FakeGenerator()
        gen = {
            "backend": "openai",
            "url": ctx.generator.url,
            "model": "fake",
            "timeout_s": 3,
            "retries": 1,
            "backoff_s": 0.2,
            "breaker_failures": 3,
            "breaker_reset_s": 5,
        }
        edit_config(ctx.project, {"generator": gen, "dialogue": {"generate_timeout_s": 10}})
        ctx.notes["generator_config"] = gen | {"generate_timeout_s": 10}

    def normal(self, o: Outcome) -> bool:
        return o.accepted and o.kind == "generated"

    def inject(self, ctx: Context) -> None:
        assert ctx.generator is not None
        ctx.generator.set(self.mode)

    def clear(self, ctx: Context) -> None:
        assert ctx.generator is not None
        ctx.generator.set("normal")


class ActionsFault(ModeFault):
    """Every other message of each customer is the lost-card button (an action)."""

    modes: ClassVar[dict[str, str]] = {
        "down": "the rasa-sdk action server is killed (SIGKILL), then started again",
        "slow": "each request to the action server waits 8 s (actions.timeout_s 5)",
    }

    def __init__(self, mode: str) -> None:
        super().__init__(mode)
        self.recovery = "from the action server answering again to the first action reply" + (
            " (its start-up included)" if mode == "down" else ""
        )

    def configure(self, ctx: Context) -> None:
        ctx.actions = action_server(ctx.project, ctx.work)
        url_port = ctx.actions.port
        if self.mode == "slow":
            ctx.proxy = DelayProxy(ctx.actions.port)
            url_port = ctx.proxy.port
        edit_config(
            ctx.project,
            {
                "actions": {
                    "url": f"http://127.0.0.1:{url_port}/webhook",
                    "timeout_s": 5,
                    "intent_actions": {"lost_or_stolen_card": "action_freeze_card"},
                    # The action's own call is what fails here, not its confirmation.
                    "confirm": {},
                }
            },
        )
        ctx.actions.start()
        ctx.actions.wait_ready("/health")

    def next_text(self, ctx: Context) -> Callable[[random.Random, int], str]:
        texts = ctx.texts
        return lambda rng, turn: ACTION_MESSAGE if turn % 2 else rng.choice(texts)

    def normal(self, o: Outcome) -> bool:
        return o.accepted and o.kind == "action"

    def inject(self, ctx: Context) -> None:
        if self.mode == "down":
            assert ctx.actions is not None and ctx.actions.pid is not None
            # `deskbot actions serve` runs the server in a process group of its own (and
            # Sanic its workers under that): the crash is of all of them.
            groups = {os.getpgid(p) for p in descendants(ctx.actions.pid)}
            ctx.actions.kill(signal.SIGKILL)
            for group in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
            ctx.notes["process_groups_killed"] = len(groups | {ctx.actions.pid})
        else:
            assert ctx.proxy is not None
            ctx.proxy.delay_s = 8.0

    def clear(self, ctx: Context) -> None:
        if self.mode == "down":
            assert ctx.actions is not None
            ctx.actions.start()
        else:
            assert ctx.proxy is not None
            ctx.proxy.delay_s = 0.0


class PostgresRestart(Fault):
    description = "PostgreSQL stops (pg_ctl stop -m fast), is down for 5 s, and starts again"
    hold_s = 5.0
    recovery = "from PostgreSQL accepting connections again to the first 2xx reply"

    def configure(self, ctx: Context) -> None:
        ctx.postgres = PrivatePostgres()
        ctx.db_admin = ctx.postgres.admin_url

    def inject(self, ctx: Context) -> None:
        assert ctx.postgres is not None
        t = time.monotonic()
        ctx.postgres.stop("fast")
        ctx.notes["stop_s"] = round(time.monotonic() - t, 2)

    def clear(self, ctx: Context) -> None:
        assert ctx.postgres is not None
        t = time.monotonic()
        ctx.postgres.start()
        ctx.notes["start_s"] = round(time.monotonic() - t, 2)


class ServeKill(Fault):
    description = "`deskbot serve` gets SIGKILL while turns are in flight and is started again"
    hold_s = 0.0
    recovery = "from starting `deskbot serve` again to the first 2xx reply (its start-up included)"

    def inject(self, ctx: Context) -> None:
        assert ctx.bot is not None
        ctx.notes["killed_at"] = time.monotonic()
        ctx.bot.kill(signal.SIGKILL)

    def clear(self, ctx: Context) -> None:
        assert ctx.bot is not None
        ctx.bot.start()  # cleared when started again: recovery includes its start-up


class RetrainKill(Fault):
    """Customers send BANKING77 *train* utterances (the held-out set is never trained on),
    agents' labels are added for their turns, then `deskbot retrain` is killed."""

    description = "`deskbot retrain` gets SIGKILL while it trains; the next run is started"
    hold_s = 0.0
    recovery = (
        "serving is never interrupted (recovery_s: the first reply after the next run); "
        "the job's recovery is notes.lock_free_after_kill_s (both locks free again) and "
        "notes.next_run_s (the next run, started at once, cleaning up and finishing)"
    )

    def configure(self, ctx: Context) -> None:
        from benchmarks.common.loop import banking_loop

        _train, test, base, rest = banking_loop()
        self.labels = dict(rest)
        ctx.notes["pool"] = [t for t, _ in rest[:3000]]
        # A smaller held-out set: the two evaluations of a run cost less (still 10 per intent).
        small = test.few_shot(10, seed=0)
        # The training data is what the live (10-shot) model learnt: the customers' BANKING77
        # train utterances are new to it, so the run has something to train on.
        for name, data in (("heldout_small.csv", small), ("train_10shot.csv", base)):
            with open(
                ctx.project / "data" / "intents" / name, "w", encoding="utf-8", newline=""
            ) as fh:
                w = csv.writer(fh)
                w.writerow(["text", "category"])
                w.writerows(zip(data.texts, data.labels, strict=True))
        edit_config(
            ctx.project,
            {
                "intents": {
                    "train_data": "data/intents/train_10shot.csv",
                    "test_data": "data/intents/heldout_small.csv",
                }
            },
        )
        # No minimum validation window: the fault is the kill while training, whatever
        # the gate then says.
        (ctx.project / "retrain.yaml").write_text(
            "epochs: 2\naudit_margin: null\ngate_min_examples: 0\n"
        )
        from deskbot.bot.nlu.registry import ModelRegistry

        self.registry = ModelRegistry(ctx.project / "var" / "models" / "intents")

    def next_text(self, ctx: Context) -> Callable[[random.Random, int], str]:
        pool = ctx.notes.pop("pool")
        return lambda rng, _turn: rng.choice(pool)

    def _label_turns(self, ctx: Context) -> int:
        """An agent's label (the utterance's BANKING77 intent) on every bot turn so far."""
        import psycopg

        from deskbot.bot.store import SqlConversationStore, create_store_engine

        with psycopg.connect(ctx.db_url) as conn:
            rows = conn.execute(
                "SELECT b.id, u.text FROM turns b JOIN turns u ON u.conversation_id = "
                "b.conversation_id AND u.seq = b.seq - 1 AND u.role = 'user' WHERE b.role = 'bot'"
            ).fetchall()
        store = SqlConversationStore(create_store_engine(ctx.db_url))
        n = 0
        for tid, text in rows:
            intent = self.labels.get(text)
            if intent:
                store.add_label(tid, "agent-1", intent=intent)
                n += 1
        store.engine.dispose()
        return n

    def _retrain(self, ctx: Context) -> subprocess.Popen[bytes]:
        env = {**os.environ, "DESKBOT_DATABASE_URL": ctx.db_url}
        return subprocess.Popen(
            [deskbot_exe(), "retrain", "-c", str(ctx.project / "deskbot.yaml"), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=open(ctx.work / "retrain.log", "ab"),
            start_new_session=True,
        )

    def inject(self, ctx: Context) -> None:
        ctx.notes["labels_added"] = self._label_turns(ctx)
        ctx.notes["live_before"] = self.registry.live_version()
        proc = self._retrain(ctx)
        candidates = self.registry.root / ".retrain" / "candidates"
        deadline = time.monotonic() + 600
        while not (candidates.is_dir() and any(candidates.iterdir())):
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode()[-1500:] if proc.stdout else ""
                raise SystemExit(
                    f"the retrain run ended before it trained ({proc.returncode}): {out}"
                )
            time.sleep(0.2)
        time.sleep(5.0)  # inside the training loop by now
        if proc.poll() is not None:
            raise SystemExit("the retrain run finished before it could be killed")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        ctx.notes["killed_while_training"] = True
        ctx.notes["live_after_kill"] = self.registry.live_version()
        ctx.notes["versions_after_kill"] = self.registry.versions()
        ctx.notes["candidate_left_behind"] = [p.name for p in candidates.iterdir()]
        ctx.notes["lock_free_after_kill_s"] = self._lock_free_after(ctx, killed)

    def _lock_free_after(self, ctx: Context, since: float) -> float | None:
        """Seconds until both the file lock and the database's advisory lock are free."""
        import psycopg

        from deskbot.training.nightly.job import RetrainLock

        key = RetrainLock("x").key
        lock = self.registry.root / ".retrain" / "lock"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(lock, "a+") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    time.sleep(0.05)
                    continue
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            with psycopg.connect(ctx.db_url, autocommit=True) as conn:
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                if got and got[0]:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    return round(time.monotonic() - since, 2)
            time.sleep(0.05)
        return None

    def clear(self, ctx: Context) -> None:
        t = time.monotonic()
        proc = self._retrain(ctx)
        out, _ = proc.communicate(timeout=1200)
        ctx.notes["next_run_exit_status"] = proc.returncode
        ctx.notes["next_run_s"] = round(time.monotonic() - t, 1)
        try:
            outcome = json.loads(out.decode().strip().splitlines()[-1])
            ctx.notes["next_run_decision"] = outcome.get("decision")
            ctx.notes["next_run_reasons"] = outcome.get("reasons")
        except (ValueError, IndexError):
            ctx.notes["next_run_output"] = out.decode()[-500:]
        candidates = self.registry.root / ".retrain" / "candidates"
        ctx.notes["candidates_after_next_run"] = [p.name for p in candidates.iterdir()]
        ctx.notes["live_after_next_run"] = self.registry.live_version()


class IndexCorrupt(Fault):
    description = (
        "the live FAQ index version's index.faiss is truncated to half; 10 s later the "
        "server is restarted (as a rescheduled replica would be); cleared by `deskbot ingest`"
    )
    hold_s = 10.0
    recovery = "from `deskbot ingest` making a new version live to the first FAQ answer"

    def normal(self, o: Outcome) -> bool:
        return o.accepted and o.kind in ("faq", "generated")

    def inject(self, ctx: Context) -> None:
        from deskbot.knowledge.indexing.index import read_pointer

        index_dir = ctx.project / "var" / "indexes" / "faq"
        target = index_dir / "versions" / str(read_pointer(index_dir)) / "index.faiss"
        size = target.stat().st_size
        with open(target, "r+b") as fh:
            fh.truncate(size // 2)
        ctx.notes["corrupted"] = f"{target.relative_to(ctx.project)} ({size} -> {size // 2} bytes)"
        self.corrupted_at = time.monotonic()

    def clear(self, ctx: Context) -> None:
        assert ctx.bot is not None and ctx.load is not None
        # The running server serves the version it holds in memory; a restart reads the disk.
        running = [o for o in ctx.load.outcomes if o.sent >= self.corrupted_at]
        ctx.notes["while_running_after_corruption"] = seen_counts(running)
        ctx.bot.stop()
        t = time.monotonic()
        ctx.bot.start()
        try:
            ctx.notes["restart_ready_s"] = round(ctx.bot.wait_ready("/readyz", timeout=180), 1)
            ctx.notes["restarted"] = True
        except SystemExit as exc:
            ctx.notes["restarted"] = False
            ctx.notes["restart_failure"] = str(exc)[-600:]
        restarted = time.monotonic()
        time.sleep(self.hold_s)
        degraded = [o for o in ctx.load.outcomes if o.sent >= restarted]
        ctx.notes["after_restart_with_corrupt_index"] = seen_counts(degraded)
        ctx.notes["restart_to_ingest_s"] = round(time.monotonic() - t, 1)
        ctx.notes["ingest_s"] = round(ingest_project(ctx.project), 1)
        if not ctx.notes["restarted"]:
            ctx.bot.start()
            ctx.bot.wait_ready("/readyz", timeout=180)


def make_fault(name: str) -> Fault:
    return {
        "generator_hang": lambda: GeneratorFault("hang"),
        "generator_errors": lambda: GeneratorFault("error"),
        "actions_down": lambda: ActionsFault("down"),
        "actions_slow": lambda: ActionsFault("slow"),
        "postgres_restart": PostgresRestart,
        "serve_sigkill": ServeKill,
        "retrain_sigkill": RetrainKill,
        "index_corrupt": IndexCorrupt,
    }[name]()


# -- one run ------------------------------------------------------------------------------


def run_fault(
    name: str, template: Path, args: argparse.Namespace, texts: list[str]
) -> dict[str, Any]:
    fault = make_fault(name)
    work = Path(tempfile.mkdtemp(prefix=f"deskbot-fault-{name}-"))
    project = work / "bot"
    shutil.copytree(template, project)
    ctx = Context(name=name, work=work, project=project, args=args, texts=texts)
    try:
        fault.configure(ctx)
        ctx.db_url = create_database(ctx.db_admin, prefix="deskbot_fault")
        migrate_database(ctx.db_url)
        ctx.bot = bot_server(project, ctx.db_url, work)
        ctx.bot.start()
        ctx.bot.wait_ready("/readyz")
        ctx.load = Load(
            ctx.bot.base,
            args.customers,
            fault.next_text(ctx),
            seed=args.seed,
            retries=args.retries,
        )
        t0 = time.monotonic()
        ctx.load.start()
        log(f"{name}: {args.warm:.0f} s of normal load")
        time.sleep(args.warm)
        log(f"{name}: injecting: {fault.description}")
        t_fault = time.monotonic()
        fault.inject(ctx)
        time.sleep(fault.hold_s)
        fault.clear(ctx)
        t_clear = time.monotonic()
        log(f"{name}: cleared after {t_clear - t_fault:.1f} s; waiting for a normal reply")
        ctx.load.wait_for(fault.normal, t_clear, args.recover)
        time.sleep(args.settle)
        metrics = ""
        with contextlib.suppress(Exception):
            import httpx

            metrics = httpx.get(f"{ctx.bot.base}/metrics", timeout=10, trust_env=False).text
        ctx.load.stop()
        return analyse(fault, ctx, t0, t_fault, t_clear, metrics)
    finally:
        for closer in (ctx.bot, ctx.actions):
            if closer is not None:
                closer.stop()
        for tool in (ctx.generator, ctx.proxy):
            if tool is not None:
                tool.close()
        if ctx.db_url:
            drop_database(ctx.db_url, ctx.db_admin)
        if ctx.postgres is not None:
            ctx.postgres.close()
        if args.keep_logs:
            log(f"{name}: logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def analyse(
    fault: Fault, ctx: Context, t0: float, t_fault: float, t_clear: float, metrics: str
) -> dict[str, Any]:
    assert ctx.load is not None
    outs = ctx.load.outcomes
    before = [o for o in outs if o.done < t_fault]
    during = [o for o in outs if t_fault <= o.done < t_clear]
    after = [o for o in outs if o.done >= t_clear]
    first_normal = min(
        (o.done for o in outs if o.sent >= t_clear and fault.normal(o)), default=None
    )
    stored = check_stored(ctx.db_url, outs)
    killed_at = ctx.notes.pop("killed_at", None)
    in_flight = (
        [o for o in outs if o.status is None and o.sent <= killed_at <= o.done + 0.5]
        if killed_at is not None
        else []
    )
    # The first degraded reply: how soon customers noticed the fault (or were helped around it).
    first_abnormal = min(
        (o.done for o in outs if o.done >= t_fault and not fault.normal(o)), default=None
    )
    lat_during = [o.ms for o in during if o.status is not None]
    readiness: list[list[Any]] = []
    for t, code, status in ctx.load.ready:
        entry = (code, status)
        if not readiness or readiness[-1][1:] != list(entry):
            readiness.append([round(t - t0, 1), *entry])
    return {
        "fault": fault.description,
        "timeline_s": {
            "fault_at": round(t_fault - t0, 1),
            "cleared_at": round(t_clear - t0, 1),
            "fault_lasted": round(t_clear - t_fault, 1),
        },
        "customer_saw": {
            "before": seen_counts(before),
            "during": seen_counts(during),
            "after_clear": seen_counts(after),
            # From the fault to the first normal reply after it was cleared.
            "until_recovered": seen_counts(
                [o for o in outs if t_fault <= o.done <= (first_normal or float("inf"))]
            ),
        },
        "latency_ms_during": {
            "p50": pct(lat_during, 0.5),
            "p95": pct(lat_during, 0.95),
            "max": round(max(lat_during), 1) if lat_during else None,
        },
        "first_abnormal_reply_after_fault_s": (
            round(first_abnormal - t_fault, 2) if first_abnormal is not None else None
        ),
        "recovery_s": round(first_normal - t_clear, 2) if first_normal is not None else None,
        "recovery_means": fault.recovery,
        "turns": {
            "sent": len(outs),
            "accepted_2xx": sum(o.accepted for o in outs),
            "status_5xx": sum(1 for o in outs if o.status is not None and o.status >= 500),
            "no_http_answer": sum(1 for o in outs if o.status is None),
            "in_flight_at_kill_unanswered": len(in_flight) if killed_at is not None else None,
            **stored,
        },
        "turns_lost": stored["accepted_turns_not_stored"],
        "readiness": readiness,
        "sessions_failed": ctx.load.session_failures,
        **server_metrics(metrics),
        "notes": ctx.notes,
    }


def template_project(args: argparse.Namespace, work: Path) -> Path:
    project = prepare_project(
        work,
        project=args.project,
        model=None if args.project else str(args.model or default_model(args.cache)),
    )
    # The project's own dialogue rules (a customer is handed off after two failures);
    # no action server unless the fault starts one; no rate limits (one client address).
    edit_config(
        project,
        {
            "limits": rate_limits_off(),
            "actions": {"url": None, "intent_actions": {}, "confirm": {}},
        },
    )
    return project


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", help="comma-separated faults (default: all)")
    p.add_argument("--project", help="a prepared bot project (live model and index)")
    p.add_argument("--model", help="an intent model version folder (default: 10-shot BANKING77)")
    p.add_argument("--cache", type=Path, default=Path("var/bench"))
    p.add_argument("--customers", type=int, default=50)
    p.add_argument("--warm", type=float, default=10.0, help="seconds of load before the fault")
    p.add_argument("--recover", type=float, default=120.0, help="most seconds to wait for recovery")
    p.add_argument("--settle", type=float, default=5.0, help="seconds of load after recovery")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--retries",
        type=int,
        default=8,
        help="a client retries a 5xx, 429 or no answer this often, with the same message id",
    )
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS / "faults.json")
    args = p.parse_args()
    names = args.only.split(",") if args.only else list(FAULTS)
    unknown = set(names) - set(FAULTS)
    if unknown:
        p.error(f"unknown fault(s) {sorted(unknown)}; choose from {', '.join(FAULTS)}")

    texts = banking_test_texts()
    work = Path(tempfile.mkdtemp(prefix="deskbot-faults-"))
    results: dict[str, Any] = {}
    started = time.monotonic()
    try:
        template = template_project(args, work)
        for name in names:
            try:
                results[name] = run_fault(name, template, args, texts)
            except (Exception, SystemExit) as exc:
                log(f"{name}: the run failed: {exc}")
                results[name] = {"run_failed": str(exc)[-2000:]}
            log(f"{name}: {json.dumps(results[name])[:600]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    run = {
        "command": shlex.join(["python", "-m", "benchmarks.robustness.faults", *sys.argv[1:]]),
        "customers": args.customers,
        "warm_s": args.warm,
        "settle_s": args.settle,
        "server": "deskbot serve (1 process), PostgreSQL",
        "model": args.project or str(args.model or "BANKING77 10-shot (var/bench)"),
        "seconds": round(time.monotonic() - started, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_details(),
    }
    for r in results.values():
        r["run"] = run
    # --only measures some faults again: their entries replace those in --out.
    faults: dict[str, Any] = {}
    if args.only and args.out.is_file():
        faults = json.loads(args.out.read_text(encoding="utf-8")).get("faults", {})
    faults.update(results)
    for name, r in faults.items():  # entries of runs before recovery_means was written
        if "run_failed" not in r:
            r.setdefault("recovery_means", make_fault(name).recovery)
    out = {
        "faults": {name: faults[name] for name in FAULTS if name in faults},
        "summary": {
            name: {
                "turns_lost": r.get("turns_lost"),
                "status_5xx": r.get("turns", {}).get("status_5xx"),
                "no_http_answer": r.get("turns", {}).get("no_http_answer"),
                "recovery_s": r.get("recovery_s"),
                "during": r.get("customer_saw", {}).get("during"),
                **{
                    k: r["notes"][k]
                    for k in JOB_NOTES
                    if isinstance(r.get("notes"), dict) and k in r["notes"]
                },
                **({"run_failed": r["run_failed"][-300:]} if "run_failed" in r else {}),
            }
            for name, r in sorted(faults.items(), key=lambda kv: FAULTS.index(kv[0]))
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
