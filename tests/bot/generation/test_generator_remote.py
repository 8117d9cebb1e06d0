"""The OpenAI-compatible backend and the responder, against a real HTTP server on loopback.

`openai_server` (conftest.py) speaks the `/v1/chat/completions` streaming protocol
(server-sent events) over a real socket; each test scripts what it answers: canned
text, errors, stalls, cut or malformed streams.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from werkzeug import Request, Response

from deskbot.bot.core.errors import ConfigError
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import (
    CircuitBreaker,
    GeneratorUnavailable,
    OpenAICompatibleGenerator,
)
from deskbot.bot.generation.guard import GroundingGuard
from deskbot.bot.generation.responder import GroundedResponder, ResponderResult
from tests.bot.generation.conftest import FakeOpenAI, stall, status, stream
from tests.bot.generation.passages import DELIVERY

OTHER = Passage(
    id="card-arrival",
    text="If your card hasn't arrived 10 working days after dispatch, tap Cards > Card delivery > Report not received.",
    score=0.6,
    source="faq",
)
HISTORY = [Turn("user", "how long does card delivery take?")]


def client(url: str, **kwargs: Any) -> OpenAICompatibleGenerator:
    # The deadline covers the whole reply, the guard's time between pieces included.
    kwargs.setdefault("timeout_s", 10.0)
    kwargs.setdefault("backoff_s", 0.01)
    return OpenAICompatibleGenerator(url, model="test-model", **kwargs)


def reply(gen: OpenAICompatibleGenerator) -> str:
    return "".join(gen.compose(HISTORY, [DELIVERY]))


# -- the HTTP client ------------------------------------------------------------------------


def test_streams_the_reply_over_sse(openai_server: FakeOpenAI) -> None:
    openai_server.script(stream("Cards arrive 3 to 5 working days after posting [1]."))
    gen = client(openai_server.url, api_key="s3cret")
    pieces = list(gen.compose(HISTORY, [DELIVERY]))
    assert len(pieces) > 3
    assert "".join(pieces) == "Cards arrive 3 to 5 working days after posting [1]."
    body = openai_server.requests[0]
    assert body["stream"] is True and body["model"] == "test-model"
    assert body["messages"][0]["role"] == "system"
    assert DELIVERY.text in body["messages"][0]["content"]
    assert body["messages"][-1] == {"role": "user", "content": "how long does card delivery take?"}
    assert openai_server.headers[0]["Authorization"] == "Bearer s3cret"


def test_a_base_url_ending_in_v1_is_not_doubled(openai_server: FakeOpenAI) -> None:
    openai_server.script(stream("Hello."))
    assert reply(client(openai_server.url + "/v1/")) == "Hello."


def test_retries_with_backoff_before_the_first_token(openai_server: FakeOpenAI) -> None:
    openai_server.script(status(503), status(500), stream("Cards arrive within 2 working days."))
    gen = client(openai_server.url, retries=2, backoff_s=0.1)
    started = time.perf_counter()
    assert reply(gen) == "Cards arrive within 2 working days."
    assert len(openai_server.requests) == 3
    assert time.perf_counter() - started >= 0.1 + 0.2  # backoff_s, then twice that
    assert gen.breaker.state == "closed"


@pytest.mark.parametrize("code", [429, 502, 503])
def test_a_busy_or_failing_server_is_retried(openai_server: FakeOpenAI, code: int) -> None:
    openai_server.script(status(code), stream("Cards arrive within 2 working days."))
    assert reply(client(openai_server.url, retries=1)) == "Cards arrive within 2 working days."
    assert len(openai_server.requests) == 2


@pytest.mark.parametrize("code", [400, 401, 404, 422])
def test_a_client_error_is_not_retried(openai_server: FakeOpenAI, code: int) -> None:
    openai_server.script(status(code), stream("never sent"))
    gen = client(openai_server.url, retries=3)
    with pytest.raises(GeneratorUnavailable, match=f"HTTP {code}"):
        reply(gen)
    assert len(openai_server.requests) == 1


def test_gives_up_after_the_retries(openai_server: FakeOpenAI) -> None:
    openai_server.script(status(500))
    gen = client(openai_server.url, retries=1, breaker=CircuitBreaker(failures=10))
    with pytest.raises(GeneratorUnavailable, match="HTTP 500"):
        reply(gen)
    assert len(openai_server.requests) == 2


def test_times_out_on_a_stalled_server(openai_server: FakeOpenAI) -> None:
    openai_server.script(stall(3.0))
    gen = client(openai_server.url, timeout_s=0.3, retries=0)
    started = time.perf_counter()
    with pytest.raises(GeneratorUnavailable, match="timed out"):
        reply(gen)
    assert time.perf_counter() - started < 2.0


def test_one_deadline_bounds_the_retries(openai_server: FakeOpenAI) -> None:
    openai_server.script(status(503))
    gen = client(openai_server.url, timeout_s=0.5, retries=50, backoff_s=0.1)
    started = time.perf_counter()
    with pytest.raises(GeneratorUnavailable, match="HTTP 503"):
        reply(gen)
    # Waits of 0.1 and 0.2 s fit in 0.5 s; the next (0.4 s) would not: 3 attempts, 2 on a
    # slow machine, never the 51 that `retries` allows.
    assert time.perf_counter() - started < 0.6
    assert 2 <= len(openai_server.requests) <= 3


def test_one_deadline_cuts_a_trickling_reply(openai_server: FakeOpenAI) -> None:
    openai_server.script(stream("one two three four five six seven eight nine ten", delay=0.1))
    gen = client(openai_server.url, timeout_s=0.35)
    pieces: list[str] = []
    with pytest.raises(GeneratorUnavailable, match="timed out"):
        pieces.extend(gen.compose(HISTORY, [DELIVERY]))
    assert 1 <= len(pieces) < 10
    assert len(openai_server.requests) == 1  # text was shown: no second attempt


def test_a_stream_cut_before_any_text_is_retried(openai_server: FakeOpenAI) -> None:
    openai_server.script(stream("", done=False), stream("Cards arrive within 2 working days."))
    assert reply(client(openai_server.url, retries=1)) == "Cards arrive within 2 working days."
    assert len(openai_server.requests) == 2


def test_a_stream_cut_after_text_ends_the_reply(openai_server: FakeOpenAI) -> None:
    openai_server.script(stream("Cards arrive within", done=False), stream("never sent"))
    gen = client(openai_server.url, retries=2)
    pieces: list[str] = []
    with pytest.raises(GeneratorUnavailable, match="without \\[DONE\\]"):
        pieces.extend(gen.compose(HISTORY, [DELIVERY]))
    assert "".join(pieces) == "Cards arrive within"
    assert len(openai_server.requests) == 1


def _malformed(request: Request) -> Response:
    return Response(b"data: {not json\n\n", content_type="text/event-stream")


def _not_a_stream(request: Request) -> Response:
    return Response('{"choices": []}', content_type="application/json")


@pytest.mark.parametrize(
    ("action", "match"),
    [(_malformed, "malformed stream event"), (_not_a_stream, "not an event stream")],
)
def test_a_broken_answer_is_not_retried(openai_server: FakeOpenAI, action: Any, match: str) -> None:
    openai_server.script(action, stream("never sent"))
    with pytest.raises(GeneratorUnavailable, match=match):
        reply(client(openai_server.url, retries=2))
    assert len(openai_server.requests) == 1


def test_circuit_opens_and_stops_calling(openai_server: FakeOpenAI) -> None:
    openai_server.script(status(500))
    gen = client(openai_server.url, retries=0, breaker=CircuitBreaker(failures=2, reset_s=60))
    for _ in range(2):
        with pytest.raises(GeneratorUnavailable):
            reply(gen)
    assert gen.breaker.state == "open"
    with pytest.raises(GeneratorUnavailable, match="circuit open"):
        reply(gen)
    assert len(openai_server.requests) == 2


def test_every_failed_attempt_counts_towards_the_circuit(openai_server: FakeOpenAI) -> None:
    openai_server.script(status(503))
    gen = client(openai_server.url, retries=5, breaker=CircuitBreaker(failures=3, reset_s=60))
    with pytest.raises(GeneratorUnavailable, match="circuit open"):
        reply(gen)
    assert len(openai_server.requests) == 3
    assert gen.breaker.state == "open"


def test_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ConfigError, match="http"):
        OpenAICompatibleGenerator("127.0.0.1:8000", model="m")


# -- the responder --------------------------------------------------------------------------


def collect(responder: GroundedResponder, passages: list[Passage]) -> tuple[str, ResponderResult]:
    shown: list[str] = []
    result = responder.respond(HISTORY, passages, on_token=shown.append)
    return "".join(shown), result


def reply_to(
    server: FakeOpenAI, guard: GroundingGuard, text: str, **options: Any
) -> tuple[str, ResponderResult]:
    """What the responder (`options` its own) shows, and its result, on `DELIVERY` when the
    scripted server streams `text`."""
    server.script(stream(text))
    responder = GroundedResponder(client(server.url), guard, min_score=0.35, **options)
    return collect(responder, [DELIVERY])


def test_grounded_reply_streams_with_citations(
    openai_server: FakeOpenAI, guard: GroundingGuard
) -> None:
    openai_server.script(
        stream(
            "Cards are posted within 2 working days and arrive 3 to 5 working days later in the UK [1]. "
            "If you need it sooner, choose express delivery for £10 when you order."
        )
    )
    responder = GroundedResponder(client(openai_server.url), guard, min_score=0.35)
    items = list(responder.stream(HISTORY, [DELIVERY, OTHER]))
    result = items[-1]
    assert isinstance(result, ResponderResult)
    pieces = [i for i in items[:-1] if isinstance(i, str)]
    assert pieces == [result.text]  # shown whole, once every sentence passed
    assert result.text.endswith("when you order.")
    assert result.kind == "generated" and result.decision.ok
    assert result.citations[0] == "card-delivery-estimate"
    assert result.generator == "openai:test-model"
    assert {"first_token", "first_release", "guard", "total"} <= set(result.latency_ms)


def test_a_later_unsupported_sentence_leaves_no_half_reply(
    openai_server: FakeOpenAI, guard: GroundingGuard
) -> None:
    # The first sentence passes, the second invents a price: the customer gets the
    # FAQ answer and nothing of the generated reply above it.
    shown, result = reply_to(
        openai_server,
        guard,
        "Cards are posted within 2 working days of ordering [1]. "
        "Express delivery costs £15 and takes 1 hour. Thanks for waiting.",
    )
    assert shown == result.text == DELIVERY.text
    assert result.kind == "faq" and result.citations == (DELIVERY.id,)
    assert not result.decision.ok and "unsupported facts" in result.decision.reason
    assert "£15" in result.decision.unsupported


def test_a_lead_in_cut_off_from_its_steps_is_never_shown(
    openai_server: FakeOpenAI, guard: GroundingGuard
) -> None:
    # The token limit cut the reply inside its first step: the lead-in above it would
    # be half a reply, so the FAQ answer goes instead.
    shown, result = reply_to(
        openai_server,
        guard,
        "Cards are posted within 2 working days of ordering. To track it:\nOpen the app and",
    )
    assert shown == result.text == DELIVERY.text
    assert result.kind == "faq" and not result.decision.ok


def test_a_closing_courtesy_sentence_stays_with_the_reply(
    openai_server: FakeOpenAI, guard: GroundingGuard
) -> None:
    shown, result = reply_to(
        openai_server,
        guard,
        "Cards are posted within 2 working days of ordering. I hope this helps.",
    )
    assert shown == result.text
    assert result.text == "Cards are posted within 2 working days of ordering. I hope this helps."
    assert result.kind == "generated" and result.decision.ok


def test_unsupported_first_sentence_falls_back_to_the_faq(
    openai_server: FakeOpenAI, guard: GroundingGuard
) -> None:
    # A courtesy opener is held back, so the fallback does not follow half an answer.
    shown, result = reply_to(
        openai_server, guard, "I'm sorry to hear that. Delivery takes 14 days and costs £25."
    )
    assert shown == result.text == DELIVERY.text
    assert result.kind == "faq" and result.citations == (DELIVERY.id,)
    assert not result.decision.ok and "unsupported facts" in result.decision.reason


def test_buffer_mode_shows_nothing_of_a_failing_reply(
    openai_server: FakeOpenAI, guard: GroundingGuard
) -> None:
    shown, result = reply_to(
        openai_server,
        guard,
        "Cards are posted within 2 working days of ordering. Express costs £15.",
        stream_mode="buffer",
    )
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
    assert result.decision.reason == "generator failed: GeneratorUnavailable"
    assert "sorry" not in result.text.lower() and "error" not in result.text.lower()


def test_weak_retrieval_never_calls_the_generator(
    openai_server: FakeOpenAI, guard: GroundingGuard
) -> None:
    # Clarifying is the dialogue policy's decision; the responder refuses to answer.
    openai_server.script(stream("Anything."))
    weak = Passage(id="x", text=DELIVERY.text, score=0.2, source="faq")
    responder = GroundedResponder(client(openai_server.url), guard, min_score=0.35)
    for passages in ([weak], []):
        with pytest.raises(ValueError, match="policy clarifies"):
            collect(responder, passages)
    assert openai_server.requests == []


def test_no_generator_answers_from_the_faq(guard: GroundingGuard) -> None:
    shown, result = collect(GroundedResponder(None, guard, min_score=0.35), [OTHER, DELIVERY])
    assert shown == result.text == DELIVERY.text  # the best-scored passage
    assert result.kind == "faq" and result.generator is None


def test_slow_generator_is_cut_at_the_timeout(
    openai_server: FakeOpenAI, guard: GroundingGuard
) -> None:
    openai_server.script(
        stream("Cards are posted within 2 working days of ordering and arrive later.", delay=0.15)
    )
    responder = GroundedResponder(client(openai_server.url), guard, min_score=0.35, timeout_s=0.4)
    shown, result = collect(responder, [DELIVERY])
    assert shown == result.text == DELIVERY.text
    assert result.decision.reason == "generator timed out"
