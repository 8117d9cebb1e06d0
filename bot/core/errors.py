"""The error hierarchy. Every error deskbot raises on purpose is a `DeskbotError`.

Messages say what is wrong *and* what to do, because operators read them in a terminal.
"""

from __future__ import annotations


class DeskbotError(Exception):
    """Base of all deskbot errors."""


class ConfigError(DeskbotError):
    """A config file is missing, malformed, or names something that does not exist."""


class DataError(DeskbotError):
    """A data file (intents, FAQ) cannot be used as it is."""


class ArtifactError(DeskbotError):
    """A trained model or index directory is missing, incomplete or of another format."""


class StoreError(DeskbotError):
    """The conversation store cannot be reached or is not at the expected schema."""


class ComponentUnavailable(DeskbotError):
    """A pipeline component (generator, action server) failed; the turn falls back."""
