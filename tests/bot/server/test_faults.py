"""Faults while the bot serves: the fast part of benchmarks/robustness/faults.py, kept in the suite.

Each test breaks one real dependency (a generator server that hangs, a corrupted FAQ
index, PostgreSQL going away, the server killed mid-turn, the action server stopped)
and checks what the customer gets, that no accepted turn is lost, and that the bot
recovers once the dependency is back. The action server being down is in
tests/bot/dialogue/test_pipeline.py (`test_action_server_down_hands_off`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from benchmarks.robustness.faults import FakeGenerator
from deskbot.bot.core.config import BotConfig, DatabaseConfig, GeneratorConfig, load_config
from deskbot.bot.core.types import Reply
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import Bot, build_bot
from deskbot.bot.store import SqlConversationStore, create_store_engine
from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.indexing.index import read_pointer
from deskbot.knowledge.indexing.ingest import ingest
from tests.bot.actions.action_server import configure, free_port
from tests.bot.server.conftest import session
from tests.conftest import DEMO_FAQ

QUESTION = "What exchange rates do you use?"
FAQ_ANSWER_START = "From Sunday 22:00"


def project_config(project: Path, **changes: Any) -> BotConfig:
    """The project's config as the pipeline tests set it up (the test model's confidence
    bar, no reachable action server), with `changes`."""
    cfg = configure(load_config(project), f"http://127.0.0.1:{free_port()}/webhook")
    return dataclasses.replace(cfg, **changes)


def open_session(client: TestClient) -> dict[str, str]:
    return session(client)[1]


@pytest.fixture
def make_bot() -> Iterator[Any]:
    built: list[Bot] = []

    def make(cfg: BotConfig) -> Bot:
        bot = build_bot(cfg)
        bot.warm_up()
        built.append(bot)
        return bot

    yield make
    for bot in built:
        bot.close()


# -- the FAQ index ------------------------------------------------------------------------


def test_a_corrupted_index_degrades_the_bot_which_answers_and_recovers_after_ingest(
    bot_project: Path, embedder: Any, make_bot: Any
) -> None:
    index_dir = bot_project / "var" / "indexes" / "faq"
    broken = index_dir / "versions" / str(read_pointer(index_dir)) / "index.faiss"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])

    bot = make_bot(project_config(bot_project))  # starts: no exception from warm_up
    client = TestClient(create_api(bot), raise_server_exceptions=False)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded" and body["faq_index"] is None
    assert body["degraded"][0].startswith("faq_index: no FAQ answers")

    auth = open_session(client)
    kinds = []
    for _ in range(3):
        r = client.post("/api/messages", json={"text": QUESTION}, headers=auth)
        assert r.status_code == 200
        reply = r.json()
        assert reply["text"] and not reply["sources"]
        kinds.append(reply["kind"])
    # No FAQ answers: the bot asks to clarify, then hands the customer to a person.
    assert kinds == ["clarify", "clarify", "handoff"]
    history = client.get("/api/history", headers=auth).json()
    assert [t["role"] for t in history] == ["user", "bot"] * 3

    # A new version made live by `deskbot ingest` is picked up without a restart.
    ingest([DEMO_FAQ], index_dir, embedder, show_progress=False)
    auth = open_session(client)
    r = client.post("/api/messages", json={"text": QUESTION}, headers=auth)
    assert r.json()["kind"] == "faq" and r.json()["text"].startswith(FAQ_ANSWER_START)
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["faq_index"] == read_pointer(index_dir)
    assert "degraded" not in ready


def test_no_index_at_all_is_a_set_up_mistake_that_stops_the_start(bot_project: Path) -> None:
    shutil.rmtree(bot_project / "var" / "indexes" / "faq")
    bot = build_bot(project_config(bot_project))
    try:
        with pytest.raises(IndexCorrupt, match="no index yet"):
            bot.warm_up()
    finally:
        bot.close()


def test_a_corrupted_new_version_keeps_the_old_one_serving_and_says_so(
    bot_project: Path, make_bot: Any
) -> None:
    bot = make_bot(project_config(bot_project))
    client = TestClient(create_api(bot), raise_server_exceptions=False)
    index_dir = bot_project / "var" / "indexes" / "faq"
    good = read_pointer(index_dir)
    bad = index_dir / "versions" / "20990101T000000-bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    (index_dir / "CURRENT").write_text(bad.name + "\n")

    auth = open_session(client)
    r = client.post("/api/messages", json={"text": QUESTION}, headers=auth)
    assert r.json()["kind"] == "faq"  # still answering from the version in memory
    ready = client.get("/readyz").json()
    assert ready["status"] == "degraded" and ready["faq_index"] == good
    assert ready["degraded"][0].startswith(f"faq_index: still serving {good}")


# -- the generator ------------------------------------------------------------------------


def test_a_hanging_generator_times_out_to_the_faq_answer_and_starves_nothing(
    bot_project: Path, make_bot: Any
) -> None:
    server = FakeGenerator()  # the fault benchmark's, reading each request, never answering
    server.set("hang")
    try:
        base = project_config(bot_project)
        cfg = dataclasses.replace(
            base,
            generator=GeneratorConfig(
                backend="openai", url=server.url, model="m", timeout_s=3.0, retries=0,
                breaker_failures=100,
            ),
            dialogue=dataclasses.replace(base.dialogue, classify_timeout_s=1.0),
        )  # fmt: skip
        bot = make_bot(cfg)
        replies: list[tuple[str, Reply]] = []

        def turn() -> tuple[str, Reply]:
            conv = bot.store.create_conversation()[0].id
            reply = bot.pipeline.handle(conv, QUESTION)
            replies.append((conv, reply))
            return conv, reply

        # 16 turns wait on the hung generator: as many as the pipeline has step threads.
        waiting = [threading.Thread(target=turn) for _ in range(16)]
        for t in waiting:
            t.start()
        deadline = time.monotonic() + 10
        while server.requests < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.requests == 16
        # The next customer is still classified at once (not starved into a fallback) ...
        _conv, late = turn()
        assert late.intent is not None and late.latency_ms["classify"] < 1000
        for t in waiting:
            t.join(20)
        # ... and every customer got the FAQ answer when the generator timed out.
        assert len(replies) == 17
        for conv, reply in replies:
            assert reply.kind == "faq" and reply.text.startswith(FAQ_ANSWER_START)
            assert reply.latency_ms["respond"] >= 2900
            stored = bot.store.history(conv)
            assert [(t.role, t.kind) for t in stored] == [("user", None), ("bot", "faq")]
    finally:
        server.close()


# -- PostgreSQL ---------------------------------------------------------------------------


class Proxy:
    """A TCP proxy on loopback that can drop every connection and refuse new ones."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.up = True
        self.conns: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        self.up = False
        for s in self.conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.conns.clear()

    def close(self) -> None:
        self.drop()
        self.listener.close()


@pytest.mark.postgres
def test_the_database_going_away_is_a_503_and_the_bot_recovers(
    bot_project: Path, postgres_url: str, make_bot: Any
) -> None:
    where = urlsplit(postgres_url)
    proxy = Proxy((where.hostname or "127.0.0.1", where.port or 5432))
    try:
        user = where.netloc.rsplit("@", 1)[0] + "@" if "@" in where.netloc else ""
        url = urlunsplit(where._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
        bot = make_bot(project_config(bot_project, database=DatabaseConfig(url=url)))
        client = TestClient(create_api(bot), raise_server_exceptions=False)
        auth = open_session(client)
        assert client.post("/api/messages", json={"text": QUESTION}, headers=auth).is_success

        proxy.drop()  # every pooled connection dies; new ones are refused
        for _ in range(2):
            r = client.post("/api/messages", json={"text": QUESTION}, headers=auth)
            assert r.status_code == 503 and r.headers["Retry-After"] == "2"
            assert r.json() == {
                "detail": "the conversation store is unavailable; try again shortly"
            }
        assert client.post("/api/sessions").status_code == 503

        proxy.up = True  # back: the pool replaces its dead connections by itself
        r = client.post("/api/messages", json={"text": QUESTION}, headers=auth)
        assert r.status_code == 200 and r.json()["kind"] == "faq"
        history = client.get("/api/history", headers=auth).json()
        assert [t["role"] for t in history] == ["user", "bot", "user", "bot"]
    finally:
        proxy.close()


# -- the server killed mid-turn -------------------------------------------------------------


SERVER = """
import sys, uvicorn
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import build_bot
from deskbot.bot.core.config import load_config
bot = build_bot(load_config(sys.argv[1]))
bot.warm_up()
uvicorn.run(create_api(bot), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def answers(proc: subprocess.Popen[bytes], url: str, what: str, timeout_s: float = 60) -> bool:
    """True once `url` answers 200 (within `timeout_s`); fails the test if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what} exited"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        time.sleep(0.2)
    return False


def start_server(project: Path, db_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DESKBOT_DATABASE_URL": db_url}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(project), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if answers(proc, f"http://127.0.0.1:{port}/readyz", "the server"):
        return proc
    proc.kill()
    pytest.fail("the server did not start")


@pytest.mark.postgres
def test_every_accepted_turn_is_stored_when_the_server_is_killed_mid_turn(
    bot_project: Path, postgres_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(bot_project, postgres_url, port)
    accepted: list[tuple[str, str, int]] = []  # (session token, text, bot turn id)
    unanswered = 0
    stop = threading.Event()
    lock = threading.Lock()

    def customer(i: int) -> None:
        nonlocal unanswered
        with httpx.Client(base_url=base, timeout=30) as c:
            token = c.post("/api/sessions").json()["session_token"]
            n = 0
            while not stop.is_set():
                text = f"{QUESTION} ({i}-{n})"
                n += 1
                try:
                    r = c.post(
                        "/api/messages",
                        json={"text": text},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except httpx.HTTPError:
                    with lock:
                        unanswered += 1
                    return
                if r.status_code == 200:
                    with lock:
                        accepted.append((token, text, r.json()["turn_id"]))

    customers = [threading.Thread(target=customer, args=(i,)) for i in range(6)]
    try:
        for t in customers:
            t.start()
        deadline = time.monotonic() + 20
        while len(accepted) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # mid-turn: six customers are always waiting
        proc.wait()
        stop.set()
        for t in customers:
            t.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(accepted) >= 12 and unanswered >= 1

    store = SqlConversationStore(create_store_engine(postgres_url))
    for token, text, turn_id in accepted:
        conv = store.conversation_by_token(token)
        assert conv is not None
        bot_turn = store.conversation_turn(conv.id, turn_id)
        assert bot_turn is not None and bot_turn.role == "bot" and bot_turn.text
        user_texts = [t.text for t in store.history(conv.id) if t.role == "user"]
        assert text in user_texts

    # Started again, it carries on with the same customers' sessions.
    proc = start_server(bot_project, postgres_url, port)
    try:
        token = accepted[0][0]
        r = httpx.post(
            f"{base}/api/messages",
            json={"text": QUESTION},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["turn_id"]
    finally:
        proc.kill()
        proc.wait()
    store.engine.dispose()


# -- the action server ----------------------------------------------------------------------


def start_actions(project: Path, port: int) -> subprocess.Popen[bytes]:
    """`deskbot actions serve` on `port`, once its `/health` answers."""
    exe = str(Path(sys.executable).parent / "deskbot")
    proc = subprocess.Popen(
        [exe, "actions", "serve", "-c", str(project), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # so that the test can clean up whatever it left
    )
    if answers(proc, f"http://127.0.0.1:{port}/health", "deskbot actions serve"):
        return proc
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("deskbot actions serve did not start")


@pytest.fixture
def actions_project(tmp_path: Path) -> Path:
    from typer.testing import CliRunner

    from deskbot.bot.cli import app

    project = tmp_path / "bot"
    assert CliRunner().invoke(app, ["init", str(project)]).exit_code == 0
    return project


def test_stopping_deskbot_actions_serve_stops_the_action_server(actions_project: Path) -> None:
    port = free_port()
    proc = start_actions(actions_project, port)
    try:
        proc.send_signal(signal.SIGTERM)  # the command's own pid, as `make demo` does
        proc.wait(timeout=20)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_sigkilled_deskbot_actions_serve_leaves_no_server_and_starts_again(
    actions_project: Path,
) -> None:
    """The server runs in a process group of its own, which a SIGKILLed command cannot
    stop: it goes by itself, freeing the port (it used to keep serving, and starting the
    command again failed with "address already in use")."""
    port = free_port()
    health = f"http://127.0.0.1:{port}/health"
    proc = start_actions(actions_project, port)
    server_group = next(
        os.getpgid(pid) for pid in child_pids(proc.pid) if os.getpgid(pid) != os.getpgid(proc.pid)
    )
    try:
        proc.send_signal(signal.SIGKILL)  # the command alone, not the server's group
        proc.wait(timeout=5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(health, timeout=1)
            except httpx.ConnectError:
                break
            except httpx.TransportError:
                pass  # going down mid-request
            time.sleep(0.1)
        else:
            pytest.fail("the action server outlived its command")
        proc = start_actions(actions_project, port)  # the port is free again
        assert httpx.get(health, timeout=1).status_code == 200
    finally:
        for group in (proc.pid, server_group):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def child_pids(pid: int) -> list[int]:
    """The direct children of `pid` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out
