"""Following a registry's LIVE pointer without a restart: what every served kind shares.

The intent model (`nlu.serving.ReloadingIntentClassifier`) and the generator's LoRA
adapter (`generation.adapter_serving`) are both served from a `VersionRegistry` whose
LIVE pointer `deskbot models promote|rollback` or the nightly job switches while the
server runs. `RegistryFollower` is the part they share:

- **Cheap to check.** Callers on the request path call `maybe_reload()`: one `stat` of
  LIVE at most every `check_interval_s`. `watch()` runs the same check on a timer, so a
  replica without traffic follows promotions too (and its /readyz says so).
- **Built off the request path.** A changed pointer starts one background thread that
  builds the new version (`build`: load, warm, check it answers); requests keep being
  served by the current one meanwhile and none waits for the load.
- **Swapped atomically.** The swap is one assignment of a `(version, object)` pair, so a
  reader sees one version or the other, whole. A request that took the object before
  the swap finishes on it.
- **A broken version is refused.** A `build` that raises is logged, remembered (not tried
  again until LIVE changes; failures that may pass, `retry_on`, such as a model server
  still starting, are tried again after `retry_failed_s`), reported in `problem`, and
  the current object keeps serving.

Example:
    >>> live = RegistryFollower(registry, build=load_version, kind="intent model")  # doctest: +SKIP
    >>> live.maybe_reload(); version, model = live.serving                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from deskbot.bot.core.registry import LIVE, VersionRegistry

logger = logging.getLogger(__name__)

__all__ = ["FollowingLive", "RegistryFollower"]

T = TypeVar("T")


class RegistryFollower(Generic[T]):
    """What `build` makes of a registry's live version, swapped in when LIVE changes.

    Args:
        registry: the versions and their LIVE pointer.
        build: makes the served object of a version, ready to serve; raises when it
            cannot (then the current object keeps serving).
        kind: what is served, for the log ("intent model", "generator adapter").
        check_interval_s: look at the pointer at most this often.
        background: build in a thread (False: inside the call that noticed the change;
            tests and scripts).
        retry_on: the failures that may pass (other failures are not tried again until
            LIVE names another version).
        retry_failed_s: how long after such a failure the version is built again.
        fallback_name: what serves while no version does, for the log.
    """

    def __init__(
        self,
        registry: VersionRegistry,
        build: Callable[[str], T],
        *,
        kind: str,
        check_interval_s: float = 1.0,
        background: bool = True,
        retry_on: tuple[type[BaseException], ...] = (),
        retry_failed_s: float = 10.0,
        fallback_name: str = "nothing",
    ) -> None:
        self.registry = registry
        self._build = build
        self.kind = kind
        self.check_interval_s = check_interval_s
        self.background = background
        self.retry_on, self.retry_failed_s = retry_on, retry_failed_s
        self.fallback_name = fallback_name
        self._serving: tuple[str, T] | None = None
        self._lock = threading.Lock()
        self._loading: threading.Thread | None = None
        # The version that failed, when, and whether to try it again (see `retry_on`).
        self._failed: tuple[str, float, bool] | None = None
        self._next_check = 0.0
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._signature = self._pointer_signature()
        self._started = False
        # Why the live version is not the one serving (None when it is).
        self.problem: str | None = None
        # Versions swapped in while serving (not counting the first load).
        self.reloads = 0

    @property
    def serving(self) -> tuple[str, T] | None:
        """The version serving now and its object (one read: never a mixed pair)."""
        return self._serving

    @property
    def version(self) -> str | None:
        serving = self._serving
        return serving[0] if serving is not None else None

    def serve(self, version: str, value: T) -> None:
        """Serve `value` as `version` from now on (a first load its owner made itself)."""
        self._serving = (version, value)

    def load_live(self) -> bool:
        """Build the live version now, in this thread (at start-up).

        Returns:
            True when it serves now; False when nothing is live or it failed (logged,
            and `problem` says why).
        """
        signature = self._pointer_signature()
        version = self.registry.live_version()
        if version is None:
            self._signature = signature
            return False
        return self._load(version, signature, swap=False)

    def start(self) -> None:
        """`load_live` once, whichever thread calls first (the others wait for it)."""
        if self._started:
            return
        with self._lock:
            if not self._started:
                self.load_live()
                self._started = True

    def maybe_reload(self) -> None:
        """Start building the live version if the pointer changed (cheap when it did not)."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.check_interval_s
        signature = self._pointer_signature()
        if signature is None or (signature == self._signature and not self._retry_due(now)):
            return
        with self._lock:
            if self._loading is not None and self._loading.is_alive():
                return
            version = self.registry.live_version()
            failed = self._failed is not None and self._failed[0] == version
            if version is None or version == self.version or (failed and not self._retry_due(now)):
                self._signature = signature
                return
            if self.background:
                self._loading = threading.Thread(
                    target=self._load,
                    args=(version, signature),
                    name=f"{self.kind.replace(' ', '-')}-reload",
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
            target=self._watch_loop, name=f"{self.kind.replace(' ', '-')}-watch", daemon=True
        )
        self._watcher.start()

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

    # - internals -

    def _pointer_signature(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.registry.root / LIVE)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def _retry_due(self, now: float) -> bool:
        failed = self._failed
        return failed is not None and failed[2] and now - failed[1] >= self.retry_failed_s

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.check_interval_s):
            try:
                self.maybe_reload()
            except Exception:  # a watcher that dies would silently stop all reloads
                logger.exception("checking the %s registry failed", self.kind)

    def _load(self, version: str, signature: tuple[int, int] | None, *, swap: bool = True) -> bool:
        started = time.perf_counter()
        try:
            fresh = self._build(version)
        except Exception as exc:
            # Any failure (a corrupt file raises safetensors' own error, not an OSError)
            # must leave the serving object in place: this is the hot-reload boundary.
            still = self.version or self.fallback_name
            logger.error(
                "%s %s failed to load, still serving %s: %s", self.kind, version, still, exc
            )
            self._failed = (version, time.monotonic(), isinstance(exc, self.retry_on))
            self.problem = f"{version} refused: {exc}"
            self._signature = signature
            return False
        previous = self.version
        self._serving = (version, fresh)
        self._signature = signature
        self._failed = None
        self.problem = None
        self.reloads += int(swap)
        logger.info(
            "%s %s live (was %s), loaded in %.1f s",
            self.kind,
            version,
            previous,
            time.perf_counter() - started,
        )
        return True


class FollowingLive:
    """What a server calls on an object that serves what its `RegistryFollower`
    (`_live`) follows: the watcher, its stop, and waiting for a load."""

    _live: RegistryFollower[Any]

    @property
    def reloads(self) -> int:
        """Versions swapped in since start."""
        return self._live.reloads

    def watch(self) -> None:
        """Also check the pointer every `check_interval_s` in a daemon thread (idempotent)."""
        self._live.watch()

    def close(self) -> None:
        """Stop the watcher started by `watch` (a load in progress finishes on its own)."""
        self._live.close()

    def wait_for_reload(self, timeout: float | None = None) -> None:
        """Block until a background load in progress has finished (tests, benchmarks)."""
        self._live.wait_for_reload(timeout)
