"""The production topology without containers: what `docker/compose.yaml` runs, as processes.

One PostgreSQL database, the migration step, the rasa-sdk action server
(`deskbot actions serve`), two `deskbot serve` replicas on two loopback ports sharing
the database and the model registry, and the nightly job (`docker/nightly.sh`, which
runs `deskbot retrain`). Everything is a real subprocess spoken to over real HTTP:

- a customer's turns spread over both replicas make one conversation, in order, and
  a custom action answers through either;
- a handoff claimed in replica A's agent console cannot be claimed in replica B's;
- a model the nightly job promotes is served by both replicas without a restart.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.bot.actions.action_server import free_port, make_project
from tests.conftest import BANKING_TEST, BANKING_TRAIN, TEST_INTENTS

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
DESKBOT = str(Path(sys.executable).with_name("deskbot"))
AGENTS = {"alice": "alice-correct-horse-42", "bob": "bob-battery-staple-42"}
START_TIMEOUT_S = 120.0
# The night's training, in `retrain.yaml` beside the config as in production: a few
# optimiser steps from the live model. What is tested here is the deployment (the job's
# container promotes, both replicas serve the new version), not the gate's judgement
# (tests/training/nightly): the night's 16 labels give a validation window of a few
# examples, so the gate takes any window and tolerates any accuracy change there; its
# per-intent F1 check stays the default. The label audit wants 50 labels, the night has 16.
RETRAIN_SETTINGS: dict[str, Any] = {
    "epochs": 1,
    "train_args": {"max_steps": 4, "batch_size": 16, "patience": 0},
    "gate_min_examples": 0,
    "accuracy_tolerance": 1.0,
}


# -- processes ------------------------------------------------------------------------------


@dataclass
class Service:
    """A started process (its own process group, so its children stop with it)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-n:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Topology:
    project: Path
    env: dict[str, str]
    database_url: str
    actions: Service
    replicas: list[Service] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.tail()}" for s in (self.actions, *self.replicas))


def start(name: str, args: list[str], env: dict[str, str], logs: Path) -> Service:
    log = logs / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, proc, log)


def wait_until_up(service: Service, path: str, deadline: float) -> None:
    while True:
        if service.proc.poll() is not None:
            pytest.fail(f"{service.name} exited with {service.proc.returncode}:\n{service.tail()}")
        try:
            if httpx.get(service.url + path, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{service.name} not up within {START_TIMEOUT_S} s:\n{service.tail()}")
        time.sleep(0.25)


def run_cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(
        [DESKBOT, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"deskbot {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        w.writerows(rows)


# -- the topology ---------------------------------------------------------------------------


@pytest.fixture
def banking_rows(small_intents) -> dict[str, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """The live model's training data, a held-out set, and fresh messages for agents to label."""
    from deskbot.training.data.datasets import load_intents
    from deskbot.training.data.export import text_key

    keep = set(TEST_INTENTS)
    test = load_intents(BANKING_TEST)
    heldout = test.without_intents(set(test.intents) - keep, as_oos=False).few_shot(10, seed=0)
    train = load_intents(BANKING_TRAIN)
    used = {text_key(t) for t in small_intents.texts}
    fresh = [
        (t, y)
        for t, y in zip(train.texts, train.labels, strict=True)
        if y in keep and text_key(t) not in used
    ]
    return {
        "base": list(zip(small_intents.texts, small_intents.labels, strict=True)),
        "heldout": list(zip(heldout.texts, heldout.labels, strict=True)),
        "fresh": fresh,
    }


@pytest.fixture
def topology(
    tmp_path: Path,
    trained_model_dir: Path,
    faq_index_dir: Path,
    postgres_url: str,
    banking_rows: dict[str, list[tuple[str, str]]],
) -> Iterator[Topology]:
    """The stack of `docker/compose.yaml` as processes; every process is stopped afterwards."""
    project = make_project(tmp_path / "bot", trained_model_dir, faq_index_dir)
    data = project / "data" / "intents"
    write_csv(data / "base.csv", banking_rows["base"])
    write_csv(data / "heldout.csv", banking_rows["heldout"])
    cfg_file = project / "deskbot.yaml"
    cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    cfg["intents"].update(train_data="data/intents/base.csv", test_data="data/intents/heldout.csv")
    cfg["actions"]["url"] = f"http://127.0.0.1:{free_port()}/webhook"
    cfg["limits"]["inference_threads"] = 1  # two replicas on a small machine
    cfg["training"] = {"batch_size": 16}
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    (project / "retrain.yaml").write_text(yaml.safe_dump(RETRAIN_SETTINGS), encoding="utf-8")

    env = {
        **os.environ,
        "DESKBOT_CONFIG": str(project),
        "DESKBOT_DATABASE_URL": postgres_url,
        "DESKBOT_SECRET_KEY": "topology-test-" + uuid.uuid4().hex,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        # nightly.sh runs `deskbot` from PATH, as in the image
        "PATH": os.pathsep.join([str(Path(DESKBOT).parent), os.environ.get("PATH", "")]),
    }
    env.pop("DESKBOT_ACTIONS_TOKEN", None)
    logs = tmp_path / "logs"
    logs.mkdir()

    run_cli(["db", "upgrade"], env)  # compose's `migrate` service
    for name, password in AGENTS.items():
        run_cli(["agents", "add", name, "--password-stdin"], env, stdin=password + "\n")

    services: list[Service] = []
    try:
        actions = start("actions", [DESKBOT, "actions", "serve"], env, logs)
        actions.url = cfg["actions"]["url"].removesuffix("/webhook")
        services.append(actions)
        top = Topology(project, env, postgres_url, actions)
        for name in ("replica-a", "replica-b"):
            port = free_port()
            svc = start(
                name,
                [DESKBOT, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env,
                logs,
            )
            svc.url = f"http://127.0.0.1:{port}"
            services.append(svc)
            top.replicas.append(svc)
        deadline = time.monotonic() + START_TIMEOUT_S
        wait_until_up(actions, "/health", deadline)
        for svc in top.replicas:
            wait_until_up(svc, "/readyz", deadline)
        yield top
    finally:
        for svc in reversed(services):
            svc.stop()


# -- clients --------------------------------------------------------------------------------


class Console:
    """One agent's console session on one replica, spoken to as the browser speaks to it:
    the login form, then Gradio's queue protocol (join, then read the event stream)."""

    def __init__(self, replica: Service, username: str) -> None:
        self.http = httpx.Client(base_url=replica.url + "/agent", trust_env=False, timeout=30)
        r = self.http.post("/login", data={"username": username, "password": AGENTS[username]})
        assert r.status_code == 303 and "deskbot_agent" in self.http.cookies, r.text
        config = self.http.get("/config")
        assert config.status_code == 200, config.text
        self.fns = {
            d["api_name"]: (int(d["id"]), d["targets"][0][0])
            for d in config.json()["dependencies"]
            if d.get("api_name")
        }
        self.session_hash = uuid.uuid4().hex[:12]
        self.call("on_load")  # as the page does: fills this session's queue and choices

    def call(self, api_name: str, *data: Any) -> list[Any]:
        """Run one console event; its outputs."""
        fn, trigger = self.fns[api_name]
        body = {
            "data": list(data),
            "fn_index": fn,
            "trigger_id": trigger,
            "session_hash": self.session_hash,
            "event_data": None,
        }
        joined = self.http.post("/gradio_api/queue/join", json=body)
        assert joined.status_code == 200, joined.text
        event_id = joined.json()["event_id"]
        with self.http.stream(
            "GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}
        ) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line.removeprefix("data:"))
                if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                    assert msg.get("success"), msg
                    return list(msg["output"]["data"])
        raise AssertionError(f"{api_name}: the event stream ended without a result")

    def close(self) -> None:
        self.http.close()


def say(client: httpx.Client, token: str, text: str) -> dict[str, Any]:
    r = client.post("/api/messages", json={"text": text}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def live_version(replica: httpx.Client) -> str:
    r = replica.get("/readyz")
    assert r.status_code == 200, r.text
    return str(r.json()["intent_model"])


# -- the test -------------------------------------------------------------------------------


def test_two_replicas_share_conversations_handoffs_and_the_promoted_model(
    topology: Topology, banking_rows: dict[str, list[tuple[str, str]]]
) -> None:
    from deskbot.bot.nlu.registry import ModelRegistry
    from deskbot.bot.store import SqlConversationStore, create_store_engine
    from deskbot.ui.render import md_text

    a, b = (httpx.Client(base_url=s.url, trust_env=False, timeout=60) for s in topology.replicas)
    engine = create_store_engine(topology.database_url)
    store = SqlConversationStore(engine)
    registry = ModelRegistry(topology.project / "var" / "models" / "intents")
    consoles: list[Console] = []
    try:
        assert live_version(a) == live_version(b) == "v1"

        # One customer, turns alternating between the replicas: one conversation, in order.
        session = a.post("/api/sessions").json()
        token, conv_id = session["session_token"], session["conversation_id"]
        said = [
            (a, "my card still hasn't arrived"),
            (b, "/lost_or_stolen_card"),  # a custom action with a side effect: asked first
            (a, "Yes"),  # confirmed through the other replica: the offer is in the store
            (a, "what is the exchange rate for euros"),
            (b, "my pin is blocked"),
        ]
        replies = [say(client, token, text) for client, text in said]
        assert replies[1]["text"] == "Freeze your card ending 1234?", replies[1]
        assert replies[1]["buttons"] == ["Yes", "No"] and replies[1]["action"] is None
        assert replies[2]["action"] == "action_freeze_card", replies[2]
        assert "frozen your card" in replies[2]["text"]
        # and through replica A, in another customer's conversation
        other = b.post("/api/sessions").json()["session_token"]
        offer = say(a, other, "/lost_or_stolen_card")
        assert offer["action"] is None, offer
        freeze = say(b, other, "yes")
        assert (freeze["kind"], freeze["action"]) == ("action", "action_freeze_card"), freeze
        histories = [c.get("/api/history", headers=bearer(token)).json() for c in (a, b)]
        assert histories[0] == histories[1]
        assert [(t["role"], t["text"]) for t in histories[0][0::2]] == [
            ("user", text) for _, text in said
        ]
        assert [t["role"] for t in histories[0]] == ["user", "bot"] * len(said)
        assert [t["text"] for t in histories[0][1::2]] == [r["text"] for r in replies]
        seqs = [t["seq"] for t in histories[0]]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        stored = store.history(conv_id)  # one conversation row set in the shared database
        assert [t.text for t in stored if t.role == "user"] == [text for _, text in said]

        # The customer asks for a person on B; Alice claims it in A's console, Bob
        # (logged in to B's console) cannot claim it any more.
        handoff = b.post("/api/handoff", headers=bearer(token)).json()
        handoff_id = handoff["handoff_id"]
        assert handoff["status"] == "queued"
        alice, bob = Console(topology.replicas[0], "alice"), Console(topology.replicas[1], "bob")
        consoles += [alice, bob]
        note = alice.call("act_claim", handoff_id)[0]
        assert md_text(f"You claimed conversation #{handoff_id}") in note, note
        note = bob.call("act_claim", handoff_id)[0]
        assert note.startswith("**Not done:**"), note
        assert md_text(f"Conversation #{handoff_id} was already claimed by alice") in note, note
        claimed = store.get_handoff(handoff_id)
        assert claimed is not None and (claimed.status, claimed.claimed_by) == ("claimed", "alice")
        # Alice answers from A; the customer reads it through B.
        note = alice.call(
            "act_send", handoff_id, "Hello, Alice here: your new card is on its way."
        )[0]
        assert note == md_text("Sent."), note
        last = b.get("/api/history", headers=bearer(token)).json()[-1]
        assert (last["role"], last["text"]) == (
            "agent",
            "Hello, Alice here: your new card is on its way.",
        )

        # Customers write to both replicas; agents label the bot's turns (the job's data).
        for i, (text, intent) in enumerate(banking_rows["fresh"][:16]):
            client = (a, b)[i % 2]
            tok = client.post("/api/sessions").json()["session_token"]
            reply = say(client, tok, text)
            assert reply["turn_id"] is not None
            store.add_label(int(reply["turn_id"]), "alice", intent=intent)

        # The nightly job, as its container runs it, promotes a new version ...
        night = subprocess.run(
            ["sh", str(ROOT / "docker" / "nightly.sh")],
            env={**topology.env, "DESKBOT_RETRAIN_AT": "now"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert night.returncode == 0, night.stdout + night.stderr
        promoted = registry.live_version()
        assert promoted not in (None, "v1"), night.stdout + night.stderr
        assert "promoted" in night.stdout and f"-> {promoted}" in night.stdout, night.stdout
        assert registry.history()[-1]["reason"].startswith("retrain")
        runs = (registry.root / ".retrain" / "runs.jsonl").read_text(encoding="utf-8")
        checks = json.loads(runs.splitlines()[-1])["metrics"]["checks"]
        assert {"accuracy", "per_intent_f1"} <= {c["name"] for c in checks}, checks
        assert all(c["passed"] for c in checks), checks

        # ... and both replicas serve it, without a restart.
        deadline = time.monotonic() + 60
        while {live_version(a), live_version(b)} != {promoted}:
            assert time.monotonic() < deadline, (
                f"replicas serve {live_version(a)}, {live_version(b)}, not {promoted}\n"
                + topology.logs()
            )
            time.sleep(0.2)
        for client, text in ((a, "my card hasn't arrived yet"), (b, "how do I top up")):
            tok = client.post("/api/sessions").json()["session_token"]
            reply = say(client, tok, text)
            turn = store.get_turn(int(reply["turn_id"]))
            assert turn is not None and turn.model_versions["intents"] == promoted
        for s in topology.replicas:
            assert s.proc.poll() is None, s.tail()
    finally:
        for console in consoles:
            console.close()
        a.close()
        b.close()
        engine.dispose()
