"""deskbot's turn pipeline, dialogue policy, conversation store, config and HTTP API."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
