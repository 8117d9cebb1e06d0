"""Shared set-up of the benchmarks that drive a real server over HTTP (turn_latency, load,
faults): the bot project, `deskbot serve` and `deskbot actions serve` subprocesses,
throwaway PostgreSQL databases, simulated customers and what they saw, and the check
that every accepted turn is in the store.
"""

from __future__ import annotations

import asyncio
import csv
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import DATA, log

ADMIN_POSTGRES_URL = os.environ.get(
    "DESKBOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summary(latencies: list[float], seconds: float) -> dict[str, Any]:
    return {
        "turns": len(latencies),
        "seconds": round(seconds, 2),
        "turns_per_s": round(len(latencies) / seconds, 1) if seconds else None,
        "p50_ms": pct(latencies, 0.50),
        "p95_ms": pct(latencies, 0.95),
        "p99_ms": pct(latencies, 0.99),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }


def proc_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes used so far (Linux /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine_details() -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, memory, load averages now."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem_gb = round(kb / 1024**2, 1)
    except (OSError, IndexError, ValueError):
        pass
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "memory_gb": mem_gb,
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


# -- the bot project ----------------------------------------------------------------------


def init_project(project: Path) -> None:
    """`deskbot init PROJECT`."""
    from typer.testing import CliRunner

    from deskbot.bot.cli import app

    result = CliRunner().invoke(app, ["init", str(project)])
    if result.exit_code:
        raise SystemExit(result.output)


def prepare_project(work: Path, *, project: str | None = None, model: str | None = None) -> Path:
    """A bot project for the run in `work/bot`: a copy of `project` without its databases,
    or a new `deskbot init` project with `model` (an intent model version folder) live;
    its FAQ is indexed when it has no index yet."""
    from deskbot.bot.nlu.registry import ModelRegistry

    out = work / "bot"
    if project:
        shutil.copytree(project, out, ignore=shutil.ignore_patterns("*.db", "*.db-*"))
    else:
        if not model:
            raise SystemExit("give a prepared project or an intent model version folder")
        init_project(out)
        registry = ModelRegistry(out / "var" / "models" / "intents")
        shutil.copytree(model, registry.versions_dir / Path(model).name)
        registry.set_live(Path(model).name)
    if not (out / "var" / "indexes" / "faq").exists():
        ingest_project(out)
    return out


def ingest_project(project: Path) -> float:
    """`deskbot ingest -c PROJECT` (a new index version made live); returns its seconds."""
    t = time.perf_counter()
    subprocess.run(
        [deskbot_exe(), "ingest", "-c", str(project / "deskbot.yaml")],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )
    return time.perf_counter() - t


def edit_config(project: Path, changes: dict[str, Any]) -> None:
    """Merge `changes` (section -> keys, nested sections merged too) into the project's
    deskbot.yaml."""
    import yaml

    def merge(into: dict[str, Any], values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                if not isinstance(into.get(key), dict):
                    into[key] = {}
                merge(into[key], value)
            else:
                into[key] = value

    path = project / "deskbot.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    merge(raw, changes)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def deskbot_exe() -> str:
    exe = Path(sys.executable).parent / "deskbot"
    return str(exe) if exe.exists() else (shutil.which("deskbot") or "deskbot")


def banking_test_texts() -> list[str]:
    with open(DATA / "test.csv", encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


def default_model(cache: Path) -> Path:
    """The BANKING77 10-shot model of the learning-loop benchmarks (trained once, cached)."""
    from benchmarks.common.loop import banking_loop, base_model

    _train, _test, base, _rest = banking_loop()
    return base_model(cache, base)


# -- PostgreSQL ---------------------------------------------------------------------------


def create_database(admin_url: str = ADMIN_POSTGRES_URL, prefix: str = "deskbot_bench") -> str:
    """A new empty database on the server of `admin_url`; returns its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str, admin_url: str = ADMIN_POSTGRES_URL) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error as exc:
        log(f"could not drop {name}: {exc}")


def migrate_database(url: str) -> None:
    """Apply the store's migrations once, before any server starts."""
    from deskbot.bot.store import create_store_engine, migrate

    engine = create_store_engine(url)
    migrate(engine)
    engine.dispose()


# -- servers ------------------------------------------------------------------------------


class ServerProcess:
    """A subprocess serving HTTP on `port` (restartable on the same port)."""

    def __init__(self, cmd: list[str], port: int, *, env: dict[str, str], log_file: Path) -> None:
        self.cmd = cmd
        self.port = port
        self.env = env
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.starts += 1
        fh = open(self.log_file, "ab")  # noqa: SIM115 (the child keeps it)
        fh.write(f"\n--- start {self.starts} at {time.ctime()}\n".encode())
        fh.flush()
        # Its own process group: a signal reaches the children it starts too (the
        # action server command runs rasa-sdk as a child).
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, stdout=fh, stderr=fh, start_new_session=True
        )
        fh.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the server's process group and wait for the server to exit."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def wait_ready(self, path: str, timeout: float = 300.0) -> float:
        """Block until GET `path` answers 200; returns the seconds it took."""
        import httpx

        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc is None or self.proc.poll() is not None:
                raise SystemExit(f"{self.cmd[:3]} exited:\n{self.tail()}")
            try:
                if httpx.get(self.base + path, timeout=2, trust_env=False).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"{self.cmd[:3]} not ready after {timeout}s:\n{self.tail()}")


def bot_server(project: Path, db_url: str, work: Path, *, port: int | None = None) -> ServerProcess:
    """`deskbot serve -c PROJECT` on a free loopback port, storing into `db_url`."""
    port = port or free_port()
    env = {**os.environ, "DESKBOT_DATABASE_URL": db_url, "DESKBOT_SECRET_KEY": "bench-" * 8}
    cmd = [deskbot_exe(), "serve", "-c", str(project / "deskbot.yaml"), "--port", str(port)]
    return ServerProcess(cmd, port, env=env, log_file=work / f"serve-{port}.log")


def action_server(project: Path, work: Path, *, port: int | None = None) -> ServerProcess:
    """`deskbot actions serve -c PROJECT` (the project's rasa-sdk actions)."""
    port = port or free_port()
    cmd = [
        deskbot_exe(),
        "actions",
        "serve",
        "-c",
        str(project / "deskbot.yaml"),
        "--port",
        str(port),
    ]
    return ServerProcess(cmd, port, env=dict(os.environ), log_file=work / f"actions-{port}.log")


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """Terminate the processes, and kill those still running after `timeout` seconds."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


async def wait_ready(client: Any, base: str, proc: Any) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited")
        try:
            r = await client.get(f"{base}/readyz")
            if r.status_code == 200:
                return
        except Exception:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit("the server did not become ready")


# -- customers ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """One message a customer sent and what came back."""

    customer: int
    conversation: str | None
    text: str
    sent: float  # time.monotonic()
    done: float
    status: int | None = None  # None: no HTTP answer (refused, reset, timed out)
    error: str | None = None
    kind: str | None = None
    turn_id: int | None = None
    message_id: str | None = None  # the client's id for the message, kept across retries
    attempts: int = 1

    @property
    def ms(self) -> float:
        return (self.done - self.sent) * 1000.0

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def seen(self) -> str:
        """What the customer saw, as one label: the reply kind, an HTTP status or an error."""
        if self.accepted:
            return f"200 {self.kind}"
        if self.status is not None:
            return f"HTTP {self.status}"
        return f"no answer ({self.error})"


@dataclass
class Customer:
    """One simulated customer: a session token and the messages it sent."""

    index: int
    client: Any
    base: str
    conversation: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    async def open(self) -> bool:
        """Start a conversation; False when the server did not give one."""
        try:
            r = await self.client.post(f"{self.base}/api/sessions")
        except Exception:
            return False
        if r.status_code != 201:
            return False
        body = r.json()
        self.conversation = body["conversation_id"]
        self.headers = {"Authorization": f"Bearer {body['session_token']}"}
        return True

    async def say(self, text: str, retries: int = 0) -> Outcome:
        """Send `text` with a message id of its own; a 5xx, a 429 or no answer is retried
        up to `retries` times with the same id (after Retry-After, or a backoff of 0.5 s
        doubling up to 4 s), as a careful client does. The outcome is the last try's."""
        t = time.monotonic()
        out = Outcome(self.index, self.conversation, text, t, t, message_id=uuid.uuid4().hex)
        for attempt in range(retries + 1):
            out.attempts = attempt + 1
            out.status = out.error = None
            try:
                r = await self.client.post(
                    f"{self.base}/api/messages",
                    json={"text": text, "message_id": out.message_id},
                    headers=self.headers,
                )
                out.status = r.status_code
                if out.accepted:
                    body = r.json()
                    out.kind, out.turn_id = body["kind"], body.get("turn_id")
            except Exception as exc:
                out.error = type(exc).__name__
            retryable = out.status is None or out.status >= 500 or out.status == 429
            if out.accepted or not retryable or attempt == retries:
                break
            wait = min(4.0, 0.5 * 2**attempt)
            if out.status is not None and r.headers.get("retry-after", "").isdigit():
                wait = min(4.0, float(r.headers["retry-after"]))
            await asyncio.sleep(wait)
        out.done = time.monotonic()
        self.outcomes.append(out)
        return out


def seen_counts(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(Counter(o.seen for o in outcomes).most_common())


# -- what was stored ----------------------------------------------------------------------


def check_stored(db_url: str, outcomes: list[Outcome]) -> dict[str, Any]:
    """Compare what the customers were told with what the store holds.

    Per conversation, the texts of the accepted (2xx) messages, in order, must be found
    among its stored user turns, in order; each reply's `turn_id` must be a stored bot
    turn of that conversation. Stored user turns that no accepted message accounts for
    are messages the server took in but never answered (a killed process, a 503 after
    the message was stored).
    """
    import psycopg

    by_conv: dict[str, list[Outcome]] = {}
    for o in outcomes:
        if o.conversation:
            by_conv.setdefault(o.conversation, []).append(o)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT t.conversation_id, t.seq, t.role, t.text, t.id FROM turns t "
            "JOIN conversations c ON c.id = t.conversation_id WHERE c.channel = 'api' "
            "ORDER BY t.conversation_id, t.seq"
        ).fetchall()
    user_texts: dict[str, list[str]] = {}
    bot_ids: dict[int, str] = {}
    users = bots = 0
    for conv, _seq, role, text, tid in rows:
        if role == "user":
            users += 1
            user_texts.setdefault(conv, []).append(text)
        elif role == "bot":
            bots += 1
            bot_ids[tid] = conv
    lost: list[dict[str, Any]] = []
    unanswered_stored = 0
    for conv, outs in by_conv.items():
        stored = user_texts.get(conv, [])
        i = 0
        matched = 0
        for o in sorted(outs, key=lambda o: o.sent):
            if not o.accepted:
                continue
            j = i
            while j < len(stored) and stored[j] != " ".join(o.text.split()):
                j += 1
            if j == len(stored):
                lost.append({"conversation": conv, "text": o.text, "turn_id": o.turn_id})
                continue
            i = j + 1
            matched += 1
        unanswered_stored += len(stored) - matched
    with psycopg.connect(db_url) as conn:
        answered_twice = conn.execute(
            "SELECT count(*) FROM (SELECT reply_to FROM turns WHERE role = 'bot' AND "
            "reply_to IS NOT NULL GROUP BY reply_to HAVING count(*) > 1) twice"
        ).fetchone()
        sent_ids = [o.message_id for o in outcomes if o.message_id]
        stored_ids = conn.execute(
            "SELECT message_id, count(*) FROM turns WHERE role = 'user' AND message_id = ANY(%s)"
            " GROUP BY message_id",
            (sent_ids,),
        ).fetchall()
    missing_bot = [
        o.turn_id
        for o in outcomes
        if o.accepted and o.turn_id is not None and bot_ids.get(o.turn_id) != o.conversation
    ]
    return {
        "stored_user_turns": users,
        "stored_bot_turns": bots,
        "accepted_turns_not_stored": len(lost) + len(missing_bot),
        "lost_examples": lost[:5],
        "missing_bot_turn_ids": missing_bot[:5],
        "stored_user_turns_without_accepted_reply": unanswered_stored,
        # A retried message stored more than once, or answered more than once (goal 0).
        "messages_stored_twice": sum(1 for _id, n in stored_ids if n > 1),
        "messages_answered_twice": int(answered_twice[0]) if answered_twice else 0,
        "messages_retried": sum(1 for o in outcomes if o.attempts > 1),
        "retries_sent": sum(o.attempts - 1 for o in outcomes),
    }


def rate_limits_off() -> dict[str, Any]:
    """`limits` keys that turn the API's rate limits off: the load comes from one address,
    and the benchmarks measure the turn, not the limiter (its own tests cover it)."""
    import dataclasses

    from deskbot.bot.core.config import LimitsConfig

    names = {f.name for f in dataclasses.fields(LimitsConfig)}
    return {
        name: 0
        for name in ("ip_requests_per_minute", "session_requests_per_minute")
        if name in names
    }


def server_metrics(metrics: str) -> dict[str, Any]:
    """From the server's /metrics text: the mean of each turn step (ms), the fallbacks
    by step and the handoffs by reason."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    fallbacks: dict[str, float] = {}
    handoffs: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("deskbot_handoffs_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            handoffs[reason] = float(line.rsplit(" ", 1)[1])
        if 'step="' not in line:
            continue
        step = line.split('step="')[1].split('"')[0]
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith("deskbot_turn_step_seconds_sum"):
            sums[step] = value
        elif line.startswith("deskbot_turn_step_seconds_count"):
            counts[step] = value
        elif line.startswith("deskbot_fallbacks_total{"):
            fallbacks[step] = value
    return {
        "server_step_means_ms": {
            k: round(1000 * sums[k] / counts[k], 2) for k in sums if counts.get(k)
        },
        "server_fallbacks": fallbacks,
        "server_handoffs": handoffs,
    }
