"""The OpenAI-compatible backend and the responder, against a real HTTP server on loopback.

The server below speaks the `/v1/chat/completions` streaming protocol (server-sent
events) over a real socket; each test scripts what it answers: canned text, errors,
stalls, or the real offline model's output.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import (
    CircuitBreaker,
    GeneratorUnavailable,
    OpenAICompatibleGenerator,
)
from deskbot.bot.generation.guard import GroundingGuard
from deskbot.bot.generation.responder import CLARIFY_TEXT, GroundedResponder, ResponderResult

DELIVERY = Passage(
    id="card-delivery-estimate",
    text=(
        "With free standard delivery, cards are posted within 2 working days of ordering and "
        "arrive 3 to 5 working days later in the UK. If you need it sooner, choose express "
        "delivery for £10 when you order."
    ),
    score=0.8,
    source="faq",
)
OTHER = Passage(
    id="card-arrival",
    text="If your card hasn't arrived 10 working days after dispatch, tap Cards > Card delivery > Report not received.",
    score=0.6,
    source="faq",
)
HISTORY = [Turn("user", "how long does card delivery take?")]


class Script:
    """What the server does for each request: a list of actions, the last one repeated."""

    def __init__(self) -> None:
        self.actions: list[Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def next(self) -> Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]:
        n = len(self.requests) - 1
        return self.actions[min(n, len(self.actions) - 1)]


def stream(
    text: str, *, delay: float = 0.0
) -> Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]:
    def act(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        for i, word in enumerate(text.split(" ")):
            piece = word if i == 0 else " " + word
            event = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            h.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            h.wfile.flush()
            if delay:
                time.sleep(delay)
        h.wfile.write(b"data: [DONE]\n\n")

    return act


def status(code: int) -> Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]:
    def act(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        h.send_response(code)
        h.send_header("Content-Length", "2")
        # The handler closes every connection; saying so keeps the client from reusing
        # one the server is about to close (a race that lost a request in CI).
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b"{}")

    return act


def stall(seconds: float) -> Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]:
    def act(h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        time.sleep(seconds)
        status(200)(h, body)

    return act


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            assert self.path == "/v1/chat/completions"
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.requests.append(body)
            script.headers.append(dict(self.headers))
            self.close_connection = True
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                script.next()(self, body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def guard(embedder) -> GroundingGuard:  # type: ignore[no-untyped-def]
    return GroundingGuard(embedder)


def client(url: str, **kwargs: Any) -> OpenAICompatibleGenerator:
    kwargs.setdefault("timeout_s", 2.0)
    kwargs.setdefault("backoff_s", 0.01)
    return OpenAICompatibleGenerator(url, model="test-model", **kwargs)


# -- the HTTP client ------------------------------------------------------------------------


def test_streams_the_reply_over_sse(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [stream("Cards arrive 3 to 5 working days after posting [1].")]
    gen = client(url, api_key="s3cret")
    pieces = list(gen.compose(HISTORY, [DELIVERY]))
    assert len(pieces) > 3
    assert "".join(pieces) == "Cards arrive 3 to 5 working days after posting [1]."
    body = script.requests[0]
    assert body["stream"] is True and body["model"] == "test-model"
    assert body["messages"][0]["role"] == "system"
    assert DELIVERY.text in body["messages"][0]["content"]
    assert body["messages"][-1] == {"role": "user", "content": "how long does card delivery take?"}
    assert script.headers[0]["Authorization"] == "Bearer s3cret"


def test_retries_with_backoff_before_the_first_token(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [status(503), status(500), stream("Cards arrive within 2 working days.")]
    gen = client(url, retries=2)
    assert "".join(gen.compose(HISTORY, [DELIVERY])) == "Cards arrive within 2 working days."
    assert len(script.requests) == 3
    assert gen.breaker.state == "closed"


def test_gives_up_after_the_retries(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [status(500)]
    gen = client(url, retries=1, breaker=CircuitBreaker(failures=10))
    with pytest.raises(GeneratorUnavailable, match="HTTP 500"):
        list(gen.compose(HISTORY, [DELIVERY]))
    assert len(script.requests) == 2


def test_times_out_on_a_stalled_server(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [stall(3.0)]
    gen = client(url, timeout_s=0.3, retries=0)
    started = time.perf_counter()
    with pytest.raises(GeneratorUnavailable, match="timed out"):
        list(gen.compose(HISTORY, [DELIVERY]))
    assert time.perf_counter() - started < 2.0


def test_circuit_opens_and_stops_calling(server: tuple[str, Script]) -> None:
    url, script = server
    script.actions = [status(500)]
    gen = client(url, retries=0, breaker=CircuitBreaker(failures=2, reset_s=60))
    for _ in range(2):
        with pytest.raises(GeneratorUnavailable):
            list(gen.compose(HISTORY, [DELIVERY]))
    assert gen.breaker.state == "open"
    with pytest.raises(GeneratorUnavailable, match="circuit open"):
        list(gen.compose(HISTORY, [DELIVERY]))
    assert len(script.requests) == 2


def test_circuit_half_opens_after_the_reset_time() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=1, reset_s=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.5
    assert breaker.state == "half_open"
    assert breaker.allow()  # the single trial call
    assert not breaker.allow()  # nobody else while it runs
    breaker.record_failure()
    assert breaker.state == "open"
    now[0] = 21.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_refuses_a_url_that_is_not_http() -> None:
    from deskbot.bot.core.errors import ConfigError

    with pytest.raises(ConfigError, match="http"):
        OpenAICompatibleGenerator("127.0.0.1:8000", model="m")


# -- the responder --------------------------------------------------------------------------


def collect(responder: GroundedResponder, passages: list[Passage]) -> tuple[str, ResponderResult]:
    shown: list[str] = []
    result = responder.respond(HISTORY, passages, on_token=shown.append)
    return "".join(shown), result


def test_grounded_reply_streams_with_citations(
    server: tuple[str, Script], guard: GroundingGuard
) -> None:
    url, script = server
    script.actions = [
        stream(
            "Cards are posted within 2 working days and arrive 3 to 5 working days later in the UK [1]. "
            "If you need it sooner, choose express delivery for £10 when you order."
        )
    ]
    responder = GroundedResponder(client(url), guard, min_score=0.35)
    items = list(responder.stream(HISTORY, [DELIVERY, OTHER]))
    result = items[-1]
    assert isinstance(result, ResponderResult)
    pieces = [i for i in items[:-1] if isinstance(i, str)]
    assert len(pieces) == 2  # released sentence by sentence
    assert "".join(pieces) == result.text
    assert result.kind == "generated" and result.decision.ok
    assert result.citations[0] == "card-delivery-estimate"
    assert result.generator == "openai:test-model"
    assert {"first_token", "first_release", "guard", "total"} <= set(result.latency_ms)


def test_unsupported_sentence_never_reaches_the_customer(
    server: tuple[str, Script], guard: GroundingGuard
) -> None:
    url, script = server
    script.actions = [
        stream(
            "Cards are posted within 2 working days of ordering [1]. "
            "Express delivery costs £15 and takes 1 hour. Thanks for waiting."
        )
    ]
    shown, result = collect(GroundedResponder(client(url), guard, min_score=0.35), [DELIVERY])
    assert shown == result.text == "Cards are posted within 2 working days of ordering [1]."
    assert result.kind == "generated"
    assert not result.decision.ok and result.decision.reason.startswith("truncated")
    assert "£15" in result.decision.unsupported


def test_unsupported_first_sentence_falls_back_to_the_faq(
    server: tuple[str, Script], guard: GroundingGuard
) -> None:
    url, script = server
    # A courtesy opener is held back, so the fallback does not follow half an answer.
    script.actions = [stream("I'm sorry to hear that. Delivery takes 14 days and costs £25.")]
    shown, result = collect(GroundedResponder(client(url), guard, min_score=0.35), [DELIVERY])
    assert shown == result.text == DELIVERY.text
    assert result.kind == "faq" and result.citations == (DELIVERY.id,)
    assert not result.decision.ok and "unsupported facts" in result.decision.reason


def test_buffer_mode_shows_nothing_of_a_failing_reply(
    server: tuple[str, Script], guard: GroundingGuard
) -> None:
    url, script = server
    script.actions = [
        stream("Cards are posted within 2 working days of ordering. Express costs £15.")
    ]
    responder = GroundedResponder(client(url), guard, min_score=0.35, stream_mode="buffer")
    shown, result = collect(responder, [DELIVERY])
    assert shown == result.text == DELIVERY.text
    assert result.kind == "faq"


def test_generator_down_answers_from_the_faq_silently(guard: GroundingGuard) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = client(f"http://127.0.0.1:{port}", retries=1)
    shown, result = collect(GroundedResponder(gen, guard, min_score=0.35), [DELIVERY, OTHER])
    assert shown == result.text == DELIVERY.text
    assert result.kind == "faq"
    assert result.decision.reason.startswith("generator failed")
    assert "sorry" not in result.text.lower() and "error" not in result.text.lower()


def test_weak_retrieval_asks_to_clarify_without_calling_the_generator(
    server: tuple[str, Script], guard: GroundingGuard
) -> None:
    url, script = server
    script.actions = [stream("Anything.")]
    weak = Passage(id="x", text=DELIVERY.text, score=0.2, source="faq")
    shown, result = collect(GroundedResponder(client(url), guard, min_score=0.35), [weak])
    assert shown == result.text == CLARIFY_TEXT
    assert result.kind == "clarify" and result.citations == ()
    assert script.requests == []
    shown, result = collect(GroundedResponder(client(url), guard, min_score=0.35), [])
    assert result.kind == "clarify"


def test_no_generator_answers_from_the_faq(guard: GroundingGuard) -> None:
    shown, result = collect(GroundedResponder(None, guard, min_score=0.35), [OTHER, DELIVERY])
    assert shown == result.text == DELIVERY.text  # the best-scored passage
    assert result.kind == "faq" and result.generator is None


def test_slow_generator_is_cut_at_the_timeout(
    server: tuple[str, Script], guard: GroundingGuard
) -> None:
    url, script = server
    script.actions = [
        stream("Cards are posted within 2 working days of ordering and arrive later.", delay=0.15)
    ]
    responder = GroundedResponder(client(url), guard, min_score=0.35, timeout_s=0.4)
    shown, result = collect(responder, [DELIVERY])
    assert shown == result.text == DELIVERY.text
    assert result.decision.reason == "generator timed out"
