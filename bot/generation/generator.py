"""Generators: turn a conversation and its retrieved passages into a streamed reply.

The room's front door. It holds the factory that builds the backend `deskbot.yaml`
names (`build_generator`) and re-exports what callers use, so they need not know
which module does what:

- `protocol`: the `Generator` protocol and `GeneratorUnavailable`.
- `local`: `TransformersGenerator`, a local causal LM and its decode loop;
  `model_files` finds its weights (folder, GGUF file or package) and caches a
  de-quantised GGUF model.
- `remote`: `OpenAICompatibleGenerator`, a server speaking `/v1/chat/completions`
  (vLLM, TGI, Ollama), with its deadline, retries and `breaker.CircuitBreaker`.
- `batching`: `MicroBatchingGenerator`, concurrent replies sharing a local batch.
- `adapters`: the generator's LoRA adapter versions and their registry;
  `adapter_serving` serves the live one with either backend, followed without a
  restart (`LiveAdapterGenerator` wraps the local one; `ServedAdapters` loads it into
  vLLM for the remote one).

Both backends raise `GeneratorUnavailable` (a `ComponentUnavailable`) when they cannot
answer; `deskbot.bot.generation.responder.GroundedResponder` turns that into the FAQ
answer.

Example:
    >>> gen = build_generator(config.generator, bot_name=config.name)    # doctest: +SKIP
    >>> "".join(gen.compose([Turn("user", "card not here")], passages))  # doctest: +SKIP
    'Cards usually arrive 3 to 5 working days after they are posted [1].'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from deskbot.bot.generation.adapter_serving import LiveAdapterGenerator, ServedAdapters
from deskbot.bot.generation.adapters import AdapterRegistry
from deskbot.bot.generation.batching import MicroBatchingGenerator
from deskbot.bot.generation.breaker import CircuitBreaker
from deskbot.bot.generation.local import TransformersGenerator
from deskbot.bot.generation.model_files import (
    CACHE_DIR_ENV,
    default_cache_dir,
    resolve_generator_model,
)
from deskbot.bot.generation.protocol import AdaptedGenerator, Generator, GeneratorUnavailable
from deskbot.bot.generation.remote import OpenAICompatibleGenerator

if TYPE_CHECKING:
    from deskbot.bot.core.config import GeneratorConfig

__all__ = [
    "CACHE_DIR_ENV",
    "AdaptedGenerator",
    "CircuitBreaker",
    "Generator",
    "GeneratorUnavailable",
    "LiveAdapterGenerator",
    "MicroBatchingGenerator",
    "OpenAICompatibleGenerator",
    "TransformersGenerator",
    "build_generator",
    "default_cache_dir",
    "resolve_generator_model",
]


class _PromptSettings(TypedDict):
    """What every backend takes alike: the reply's and the history's lengths, the name."""

    max_new_tokens: int
    max_history_tokens: int
    bot_name: str


def build_generator(
    config: GeneratorConfig, *, bot_name: str = "our company"
) -> AdaptedGenerator | None:
    """The generator `config` describes (None for backend "none"); models load lazily.

    Either backend serves the live adapter of `config.adapters` (none live: the base).

    Example:
        >>> build_generator(config.generator, bot_name=config.name)  # doctest: +SKIP
    """
    prompt = _PromptSettings(
        max_new_tokens=config.max_new_tokens,
        max_history_tokens=config.max_history_tokens,
        bot_name=bot_name,
    )
    adapters = AdapterRegistry(config.adapters)
    if config.backend == "transformers":

        def local(adapter: Path | None) -> TransformersGenerator:
            return TransformersGenerator(
                config.model, device=config.device, cache_dir=config.cache_dir,
                compile=config.compile, adapter=adapter, **prompt,
            )  # fmt: skip

        return LiveAdapterGenerator(adapters, local, base_model=config.model)
    if config.backend == "openai":
        assert config.url is not None  # checked by GeneratorConfig
        breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset_s)
        served = ServedAdapters(
            adapters, server_url=config.url, served_at=config.adapters_served_at,
            headers={"Authorization": f"Bearer {config.api_key}"} if config.api_key else None,
        )  # fmt: skip
        return OpenAICompatibleGenerator(
            config.url, model=config.model, api_key=config.api_key, timeout_s=config.timeout_s,
            retries=config.retries, backoff_s=config.backoff_s, breaker=breaker,
            adapters=served, **prompt,
        )  # fmt: skip
    return None
