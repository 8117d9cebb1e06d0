"""Serving the adapter registry's live LoRA adapter, followed without a restart.

Adapters are model versions (`adapters.AdapterRegistry`, `generator.adapters`):
`deskbot models promote|rollback --kind generator` or the nightly job switches the LIVE
pointer, and a running server follows it the way it follows the intent model (one
`stat` at most a second on the request path, and a watcher thread; see
`deskbot.bot.core.following.RegistryFollower`). Until a version is live, the base model
`generator.model` serves alone.

- **Local backend** (`LiveAdapterGenerator`): each version is the base model with the
  adapter merged into its weights (`PeftModel.merge_and_unload`: decoding costs what
  the base costs), built, warmed and asked for one token in a background thread, then
  swapped in. A reply takes the model serving when it starts and finishes on it; the
  previous model is freed once its last reply ends. An adapter trained on another base
  than `generator.model`, or one that fails to load, is refused: logged, reported in
  `adapter_problem` (and /readyz), and the previous model keeps serving.
- **OpenAI-compatible backend** (`ServedAdapters`, used by `remote`): vLLM serves the
  base and any number of LoRA adapters (`--enable-lora`). The live version is loaded
  through vLLM's runtime LoRA API (`POST /v1/load_lora_adapter` with `lora_name` = the
  version, `lora_path` = its directory as the server sees it, `generator.adapters_served_at`;
  the server needs `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`), then requested by name
  (`model: <version>`). A version the server already holds (another replica loaded it)
  counts as loaded; adapters are never unloaded, so a replica still on the previous
  version keeps being answered. A load the server refuses (4xx) is not tried again
  until LIVE changes; a server that is down or starting (connection error, 5xx) is
  asked again every 10 s. Meanwhile the previous adapter (or the base) is requested.

Example:
    >>> gen = build_generator(config.generator)  # a LiveAdapterGenerator  # doctest: +SKIP
    >>> gen.warm_up(); gen.watch(); gen.live_adapter                      # doctest: +SKIP
    'gen-20261214-0200'
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx

from deskbot.bot.core.errors import ArtifactError, ConfigError
from deskbot.bot.core.following import FollowingLive, RegistryFollower
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.adapters import (
    AdapterManifest,
    AdapterRegistry,
    read_adapter_manifest,
)
from deskbot.bot.generation.local import TransformersGenerator
from deskbot.bot.generation.model_files import resolve_generator_model
from deskbot.bot.generation.prompting import ChatMessage
from deskbot.bot.generation.protocol import GeneratorUnavailable

logger = logging.getLogger(__name__)

__all__ = ["LiveAdapterGenerator", "ServedAdapters", "check_base"]

_SMOKE: list[ChatMessage] = [{"role": "user", "content": "hello"}]


def check_base(manifest: AdapterManifest, model: str) -> None:
    """Refuse an adapter trained on another base model than `model` (`generator.model`).

    The same reference, or two references to the same model folder, pass.

    Raises:
        ArtifactError: it was trained on another base.
    """
    if manifest.base_model == model or _model_path(manifest.base_model) == _model_path(model):
        return
    raise ArtifactError(
        f"adapter {manifest.version} was trained on {manifest.base_model!r}, but "
        f"generator.model is {model!r}: train an adapter on this base "
        "(`deskbot train generator`) or serve the base it was trained on"
    )


def _model_path(model: str) -> Path | None:
    try:
        folder, gguf = resolve_generator_model(model)
    except ConfigError:  # e.g. a folder that is gone: only the names can be compared
        return None
    return folder / gguf if gguf else folder


class LiveAdapterGenerator(FollowingLive):
    """The local generator, with the adapter registry's live LoRA merged into the base.

    A `Generator` (and a `batching.BatchedGenerator`): each call is served whole by the
    model live when it starts.

    Args:
        registry: the adapter registry (`generator.adapters`).
        make: builds the local generator for an adapter directory (None: the base alone),
            not loaded yet.
        base_model: `generator.model`, which adapters must have been trained on.
        check_interval_s: look at LIVE at most this often.
        background: build new versions in a thread (False: in the call that noticed).
    """

    def __init__(
        self,
        registry: AdapterRegistry | str | Path,
        make: Callable[[Path | None], TransformersGenerator],
        *,
        base_model: str,
        check_interval_s: float = 1.0,
        background: bool = True,
    ) -> None:
        self.registry = (
            registry if isinstance(registry, AdapterRegistry) else AdapterRegistry(registry)
        )
        self._make = make
        self.base_model = base_model
        self.base = make(None)  # loaded only if it serves (no adapter live, or none loads)
        self._live: RegistryFollower[TransformersGenerator] = RegistryFollower(
            self.registry,
            self._build,
            kind="generator adapter",
            check_interval_s=check_interval_s,
            background=background,
            fallback_name="the base model",
        )

    @property
    def name(self) -> str:
        """The model serving now: `transformers:<base>+lora:<version>`, or the base's."""
        return self._serving()[1].name

    @property
    def live_adapter(self) -> str | None:
        """The adapter version serving now (None: the base model alone)."""
        return self._live.version

    @property
    def adapter_problem(self) -> str | None:
        """Why the registry's live adapter is not the one serving (None when it is)."""
        return self._live.problem

    @property
    def device(self) -> str:
        return self._current()[1].device

    def warm_up(self) -> None:
        """Load the live adapter merged into the base (or the base alone) now."""
        self._current()[1].warm_up()

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the reply's text (see `Generator.compose`), all of it from one model."""
        return self.compose_with_adapter(history, passages)[1]

    def compose_with_adapter(
        self, history: Sequence[Turn], passages: Sequence[Passage]
    ) -> tuple[str | None, Iterator[str]]:
        """The adapter version that writes this reply (None: the base), and the reply."""
        adapter, generator = self._current()
        return adapter, generator.compose(history, passages)

    def messages(self, history: Sequence[Turn], passages: Sequence[Passage]) -> list[ChatMessage]:
        return self._current()[1].messages(history, passages)

    def count_tokens(self, text: str) -> int:
        return self._current()[1].count_tokens(text)

    def stream_batch(
        self, conversations: Sequence[Sequence[ChatMessage]], *, max_new_tokens: int | None = None
    ) -> Iterator[list[str]]:
        """`TransformersGenerator.stream_batch` on the model live when the batch starts."""
        return self._current()[1].stream_batch(conversations, max_new_tokens=max_new_tokens)

    # - internals -

    def _current(self) -> tuple[str | None, TransformersGenerator]:
        """The model to use now (loading the live adapter on the first call)."""
        self._live.start()  # the first call loads the live adapter (failing: the base serves)
        self._live.maybe_reload()
        return self._serving()

    def _serving(self) -> tuple[str | None, TransformersGenerator]:
        serving = self._live.serving  # one read: the version and its model together
        return serving if serving is not None else (None, self.base)

    def _build(self, version: str) -> TransformersGenerator:
        path = self.registry.version_dir(version)
        check_base(read_adapter_manifest(path), self.base_model)
        generator = self._make(path)
        generator.warm_up()
        for _ in generator.stream_batch([_SMOKE], max_new_tokens=1):
            pass  # a model that cannot answer never goes live
        return generator


class _ServerDown(GeneratorUnavailable):
    """The model server did not take the adapter, but may later (down, starting, 5xx)."""


class ServedAdapters(FollowingLive):
    """The live adapter on an OpenAI-compatible server with vLLM's runtime LoRA API.

    Args:
        registry: the adapter registry (`generator.adapters`).
        server_url: the server's base URL (`generator.url`, with or without `/v1`).
        served_at: the registry's directory as the server sees it (a mount in its
            container, `generator.adapters_served_at`); None: the same path as here.
        headers: sent with the load call (the API key).
        timeout_s: the load call's limit (the server reads the adapter from disk).
        check_interval_s: look at LIVE at most this often.
        background: load new versions in a thread (False: in the call that noticed).
        retry_failed_s: how long after a server that was down or starting it is asked
            to load the adapter again.
    """

    def __init__(
        self,
        registry: AdapterRegistry | str | Path,
        *,
        server_url: str,
        served_at: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 30.0,
        check_interval_s: float = 1.0,
        background: bool = True,
        retry_failed_s: float = 10.0,
    ) -> None:
        self.registry = (
            registry if isinstance(registry, AdapterRegistry) else AdapterRegistry(registry)
        )
        self.load_endpoint = server_url.rstrip("/").removesuffix("/v1") + "/v1/load_lora_adapter"
        self.served_at = served_at
        self._headers = dict(headers or {})
        self.timeout_s = timeout_s
        self._live: RegistryFollower[str] = RegistryFollower(
            self.registry,
            self._load,
            kind="generator adapter",
            check_interval_s=check_interval_s,
            background=background,
            retry_on=(_ServerDown,),
            retry_failed_s=retry_failed_s,
            fallback_name="the base model",
        )

    @property
    def live_adapter(self) -> str | None:
        """The adapter version requested now (None: the base model)."""
        return self._live.version

    @property
    def problem(self) -> str | None:
        """Why the registry's live adapter is not the one requested (None when it is)."""
        return self._live.problem

    def served_path(self, version: str) -> str:
        """Where the server finds `version`'s directory."""
        if self.served_at is None:
            return str(self.registry.version_dir(version).resolve())
        return f"{self.served_at.rstrip('/')}/versions/{version}"

    def start(self) -> None:
        """Load the live adapter on the server now, once (a failure is logged)."""
        self._live.start()

    def model(self, base: str) -> tuple[str, str | None]:
        """The model name to request (the live adapter's, else `base`) and the adapter."""
        self.start()
        self._live.maybe_reload()
        adapter = self._live.version
        return (adapter, adapter) if adapter is not None else (base, None)

    def reload(self, version: str) -> None:
        """Ask the server to load `version` again (it answered 404 for it: a restarted
        server forgets adapters loaded at run time).

        Raises:
            GeneratorUnavailable: the server did not take it.
        """
        logger.warning("the model server lost adapter %s: loading it again", version)
        self._load(version)

    def _load(self, version: str) -> str:
        """Ask the server to load `version`; returns the name to request it by."""
        read_adapter_manifest(self.registry.version_dir(version))  # a complete version only
        body = {"lora_name": version, "lora_path": self.served_path(version)}
        try:
            response = httpx.post(
                self.load_endpoint, json=body, headers=self._headers, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise _ServerDown(f"{self.load_endpoint}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 200:
            return version
        text = response.text[:300]
        # vLLM refuses a name it holds already: another replica (or an earlier run) loaded
        # this version, which never changes once written.
        if response.status_code == 400 and "already" in text:
            return version
        message = f"{self.load_endpoint} answered HTTP {response.status_code}: {text}"
        if response.status_code == 429 or response.status_code >= 500:
            raise _ServerDown(message)
        raise GeneratorUnavailable(message)
