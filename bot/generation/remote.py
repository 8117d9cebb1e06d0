"""`OpenAICompatibleGenerator`: a remote model behind `/v1/chat/completions` (vLLM, TGI, Ollama).

The reply streams as server-sent events (`stream=true`), read with `httpx` and
`httpx-sse`. What happens when the server misbehaves:

- **One deadline for the step.** `timeout_s` (config `generator.timeout_s`) bounds the
  whole `compose` call, from the request to the last token, retries and backoff
  included. Each attempt's httpx timeout is what is left of it, and a stream that is
  still trickling tokens when it passes is cut.
- **Connect timeout.** `connect_timeout_s` (3 s, never more than what is left of the
  deadline): an unreachable host fails fast and leaves time for another attempt.
- **Retries** (`tenacity`), before the first token only: connection errors, timeouts,
  a stream cut before its end, HTTP 429 and 5xx. `retries` extra attempts, waiting
  `backoff_s`, then twice that, ..., never past the deadline. Any other answer (400 bad
  request, 401 wrong key, 404 unknown model, a body that is no event stream, a
  malformed event) is not retried: asking again would get the same answer. Once text
  has reached the caller a failure ends the reply.
- **Circuit breaker** (`CircuitBreaker`): every failed attempt counts; after
  `breaker.failures` in a row the server is not called for `breaker.reset_s` seconds.

Every failure is a `GeneratorUnavailable`; the responder answers from the FAQ instead.

With `adapters` (`adapter_serving.ServedAdapters`), the adapter registry's live LoRA
adapter is loaded on the server (vLLM's runtime LoRA API) at start and whenever LIVE
changes, and requested by name instead of `model`.

Example:
    >>> gen = OpenAICompatibleGenerator("http://127.0.0.1:8001", model="qwen2.5-1.5b")  # doctest: +SKIP
    >>> "".join(gen.compose([Turn("user", "card not here")], passages))                # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Generator, Iterator, Sequence

import httpx
from httpx_sse import EventSource, SSEError, connect_sse
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.stop import stop_base

from deskbot.bot.core.errors import ConfigError
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.adapter_serving import ServedAdapters
from deskbot.bot.generation.breaker import CircuitBreaker
from deskbot.bot.generation.prompting import ChatMessage, build_messages
from deskbot.bot.generation.protocol import GeneratorUnavailable

logger = logging.getLogger(__name__)

__all__ = ["OpenAICompatibleGenerator"]

_Pieces = Generator[str, None, None]


class _Transient(Exception):
    """A failure another attempt may not meet: connection, timeout, 429, 5xx, a cut stream.

    Internal: callers get it as a `GeneratorUnavailable`.
    """


class _AdapterMissing(GeneratorUnavailable):
    """The server does not know the adapter requested (it restarted since loading it)."""


class OpenAICompatibleGenerator:
    """A remote model behind an OpenAI-compatible `/v1/chat/completions` endpoint.

    Args:
        url: the server's base URL, e.g. "http://127.0.0.1:8001" or ".../v1".
        model: the model name the server knows.
        api_key: sent as a bearer token when set.
        timeout_s: the deadline for the whole reply, retries included.
        connect_timeout_s: the limit for opening a connection (within the deadline).
        retries: extra attempts before the first token.
        backoff_s: the first retry's delay; doubled each time.
        max_new_tokens: `max_tokens` of the request.
        max_history_tokens: the conversation's share of the prompt.
        breaker: the circuit breaker (default: 3 failures, 30 s).
        bot_name: how the assistant names the company in the prompt.
        adapters: the live LoRA adapter as the server serves it (None: `model` only).
    """

    def __init__(
        self,
        url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 20.0,
        connect_timeout_s: float = 3.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        max_new_tokens: int = 80,
        max_history_tokens: int = 384,
        breaker: CircuitBreaker | None = None,
        bot_name: str = "our company",
        adapters: ServedAdapters | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"generator.url must start with http:// or https://, got {url!r}")
        if retries < 0:
            raise ConfigError(f"generator.retries must be >= 0, got {retries}")
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise ConfigError("generator.timeout_s and the connect timeout must be > 0")
        base = url.rstrip("/")
        self.endpoint = base + (
            "/chat/completions" if base.endswith("/v1") else "/v1/chat/completions"
        )
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.retries, self.backoff_s = retries, backoff_s
        self.max_new_tokens, self.max_history_tokens = max_new_tokens, max_history_tokens
        self.breaker = breaker or CircuitBreaker()
        self.bot_name = bot_name
        self.adapters = adapters
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    @property
    def name(self) -> str:
        adapter = self.live_adapter
        return f"openai:{self.model}" + (f"+lora:{adapter}" if adapter else "")

    @property
    def live_adapter(self) -> str | None:
        """The adapter version requested now (None: `model`, the base)."""
        return self.adapters.live_adapter if self.adapters is not None else None

    @property
    def adapter_problem(self) -> str | None:
        return self.adapters.problem if self.adapters is not None else None

    def warm_up(self) -> None:
        """Have the server load the live adapter now (nothing else to load here)."""
        if self.adapters is not None:
            self.adapters.start()

    def watch(self) -> None:
        """Follow the adapter registry's LIVE pointer on a timer too."""
        if self.adapters is not None:
            self.adapters.watch()

    def close(self) -> None:
        """Stop following LIVE and close the HTTP connection pool."""
        if self.adapters is not None:
            self.adapters.close()
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the reply's text as the server streams it (see `Generator.compose`)."""
        # No tokenizer here: the history is counted in `approx_tokens` (the default).
        messages = build_messages(
            history, passages, max_history_tokens=self.max_history_tokens, bot_name=self.bot_name
        )
        return self.stream_messages(messages)

    def stream_messages(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """Stream a reply to ready-made chat messages."""
        model, adapter = (
            self.adapters.model(self.model) if self.adapters is not None else (self.model, None)
        )
        body = {
            "model": model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": self.max_new_tokens,
            "temperature": 0.0,
        }
        deadline = time.monotonic() + self.timeout_s
        try:
            first, rest = self._first_piece(body, deadline)
        except _AdapterMissing:
            # The server lost the adapter (vLLM restarted: runtime-loaded adapters do not
            # survive it): load it again, once, and ask again.
            assert self.adapters is not None and adapter is not None
            self.adapters.reload(adapter)
            first, rest = self._first_piece(body, deadline)
        try:
            if first is not None:
                yield first
                yield from rest
        except (_Transient, GeneratorUnavailable) as exc:  # after the first token: no retry
            self.breaker.record_failure()
            logger.warning("generator %s failed mid-reply: %s", self.name, exc)
            raise GeneratorUnavailable(str(exc)) from exc
        finally:
            rest.close()
        self.breaker.record_success()

    # - internals -

    def _first_piece(self, body: dict[str, object], deadline: float) -> tuple[str | None, _Pieces]:
        """Open the stream and read up to its first text, retrying transient failures."""
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(self.retries + 1) | _StopAt(deadline),
            wait=wait_exponential(multiplier=self.backoff_s, exp_base=2),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, body, deadline)
        except _AdapterMissing:
            raise
        except (_Transient, GeneratorUnavailable) as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            logger.warning("generator %s failed after %d attempt(s): %s", self.name, attempts, exc)
            raise GeneratorUnavailable(str(exc)) from exc

    def _attempt(self, body: dict[str, object], deadline: float) -> tuple[str | None, _Pieces]:
        if not self.breaker.allow():
            raise GeneratorUnavailable(
                f"{self.name}: circuit open after repeated failures; "
                f"retrying in {self.breaker.reset_s:.0f}s"
            )
        pieces = self._stream(body, deadline)
        try:
            return next(pieces, None), pieces
        except (_Transient, GeneratorUnavailable):
            self.breaker.record_failure()
            raise

    def _stream(self, body: dict[str, object], deadline: float) -> _Pieces:
        """One request: the reply's text pieces, as the events arrive."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Transient(f"{self.name}: timed out after {self.timeout_s}s")
        timeout = httpx.Timeout(left, connect=min(self.connect_timeout_s, left))
        try:
            request = {"json": body, "headers": dict(self._headers), "timeout": timeout}
            with connect_sse(self._http(), "POST", self.endpoint, **request) as source:
                self._check_status(source.response, adapter=body["model"] != self.model)
                yield from self._read(source, deadline)
        except SSEError as exc:  # a TransportError, but no connection trouble
            raise GeneratorUnavailable(f"{self.name}: not an event stream: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise _Transient(f"{self.name}: timed out after {self.timeout_s}s") from exc
        except httpx.TransportError as exc:
            raise _Transient(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise GeneratorUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    def _read(self, source: EventSource, deadline: float) -> _Pieces:
        for event in source.iter_sse():
            if time.monotonic() > deadline:
                raise _Transient(f"{self.name}: timed out after {self.timeout_s}s")
            if event.data == "[DONE]":
                return
            piece, finished = self._parse(event.data)
            if piece:
                yield piece
            if finished:
                return
        raise _Transient(f"{self.name}: stream ended without [DONE]")

    def _check_status(self, response: httpx.Response, *, adapter: bool = False) -> None:
        code = response.status_code
        if code == 200:
            return
        response.read()  # so the connection can be reused
        message = f"{self.name}: HTTP {code} from {self.endpoint}"
        if code == 404 and adapter:
            raise _AdapterMissing(message)
        if code == 429 or code >= 500:
            raise _Transient(message)
        raise GeneratorUnavailable(message)

    def _parse(self, data: str) -> tuple[str, bool]:
        """An event's text and whether it is the last one."""
        try:
            choice = json.loads(data)["choices"][0]
            piece = (choice.get("delta") or {}).get("content") or ""
            return str(piece), bool(choice.get("finish_reason"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise GeneratorUnavailable(f"{self.name}: malformed stream event") from exc

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client()
            return self._client

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.info(
            "generator %s attempt %d failed (%s); retrying in %.2fs",
            self.name,
            state.attempt_number,
            exc,
            state.upcoming_sleep,
        )


class _StopAt(stop_base):
    """Stop retrying when the next attempt would start after the deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self.deadline
