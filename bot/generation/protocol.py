"""What every generator backend is: the `Generator` protocol and its one error.

The backends (`local.TransformersGenerator`, `remote.OpenAICompatibleGenerator`) and
the responder depend on this module only, so it imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from deskbot.bot.core.errors import ComponentUnavailable
from deskbot.bot.core.types import Passage, Turn

__all__ = ["Generator", "GeneratorUnavailable"]


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
