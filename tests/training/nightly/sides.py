"""Which side of the validation split a logged message lands on, as the export keys it."""

from __future__ import annotations

from deskbot.training.data.datasets import normalize_text
from deskbot.training.data.export import text_key
from deskbot.training.data.pii import PiiRedactor
from deskbot.training.nightly.validation import TRAIN, VALIDATION, side

SHARE = 0.2  # RetrainSettings.validation_share's default


def side_of(text: str, share: float = SHARE) -> str:
    """The side of a customer message once exported (redacted, then keyed)."""
    return side(text_key(PiiRedactor().redact(normalize_text(text)).text), share)


def on_side(rows: list[tuple[str, str]], which: str, share: float = SHARE) -> list[tuple[str, str]]:
    """The (text, intent) rows whose messages land on `which` side."""
    return [r for r in rows if side_of(r[0], share) == which]


__all__ = ["SHARE", "TRAIN", "VALIDATION", "on_side", "side_of"]
