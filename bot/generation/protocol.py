"""What every generator backend is: the `Generator` protocol and its one error.

The backends (`local.TransformersGenerator`, `remote.OpenAICompatibleGenerator`) and
the responder depend on this module only, so it imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from deskbot.bot.core.errors import ComponentUnavailable
from deskbot.bot.core.types import Passage, Turn

__all__ = ["AdaptedGenerator", "Generator", "GeneratorUnavailable"]


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


class AdaptedGenerator(Generator, Protocol):
    """A generator that serves the adapter registry's live LoRA adapter, followed without
    a restart (both backends `build_generator` makes; see `adapter_serving`)."""

    @property
    def live_adapter(self) -> str | None:
        """The adapter version serving now (None: the base model alone)."""
        ...

    @property
    def adapter_problem(self) -> str | None:
        """Why the registry's live adapter is not the one serving (None when it is)."""
        ...

    def warm_up(self) -> None:
        """Load the model and the live adapter (or ask the model server to) now."""
        ...

    def watch(self) -> None:
        """Follow the LIVE pointer on a timer too, not only on calls."""
        ...

    def close(self) -> None:
        """Stop following LIVE and release connections."""
        ...
