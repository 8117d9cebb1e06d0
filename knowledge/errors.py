"""Errors of the knowledge layer (which imports nothing else of deskbot)."""

from __future__ import annotations


class KnowledgeError(Exception):
    """Base of the knowledge layer's errors; deskbot's CLI reports them like its own."""


class SourceError(KnowledgeError):
    """An FAQ or document file cannot be read as it is; names the file and line."""


class IndexCorrupt(KnowledgeError):
    """An index directory is missing, half-written, corrupted or of another format."""
