"""A registry of model versions of one kind, and the pointer to the live one.

Every kind of model deskbot serves (intent classifiers in `nlu.registry`, the
generator's LoRA adapters in `generation.adapters`) is a directory of versions with one
pointer to the live one::

    REGISTRY/
      LIVE                   # the live version's name, replaced atomically
      history.jsonl          # every promotion and rollback, appended
      versions/<version>/    # complete versions only; work in progress is .tmp-*

The kind decides what a complete version is (`check`, which raises `ArtifactError`)
and what to say when nothing is live (`train_hint`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from deskbot.bot.core.errors import ArtifactError
from deskbot.knowledge.files.fsutil import append_jsonl, atomic_write_text, read_jsonl

LIVE = "LIVE"

T = TypeVar("T")


def read_manifest_json(
    version_dir: str | Path, manifest: str, fmt: str, *, what: str, train_hint: str
) -> dict[str, Any]:
    """The JSON object of a version directory's manifest file, of format `fmt`.

    Args:
        version_dir: the version's directory.
        manifest: the manifest's file name in it.
        fmt: the `format` the manifest must declare.
        what: the kind, for the messages ("model", "adapter").
        train_hint: the command that writes one, for the message when it is missing.

    Raises:
        ArtifactError: the directory or its manifest is missing, unreadable or of
            another format.
    """
    path = Path(version_dir)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such {what} directory")
    mf = path / manifest
    if not mf.is_file():
        raise ArtifactError(
            f"{path}: not a deskbot {what} ({manifest} is missing); train one with `{train_hint}`"
        )
    try:
        raw = json.loads(mf.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{mf}: corrupted manifest ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != fmt:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise ArtifactError(f"{path}: {what} format {found!r}; this deskbot reads {fmt!r}")
    return raw


def read_version_manifest(
    version_dir: str | Path,
    manifest: str,
    fmt: str,
    build: Callable[[dict[str, Any]], T],
    *,
    what: str,
    train_hint: str,
    required: Sequence[str | tuple[str, ...]] = (),
) -> T:
    """A version directory's manifest, made by `build` from its JSON (`read_manifest_json`),
    once the files it needs are there.

    Args:
        build: makes the manifest from the JSON object; a KeyError or TypeError means
            the manifest is incomplete.
        required: the files the directory must hold; a tuple is alternatives, any one
            of which will do (the first is named when none is there).

    Raises:
        ArtifactError: as `read_manifest_json`, or an incomplete manifest or directory.
    """
    path = Path(version_dir)
    raw = read_manifest_json(path, manifest, fmt, what=what, train_hint=train_hint)
    try:
        result = build(raw)
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"{path / manifest}: incomplete manifest ({exc})") from exc
    alternatives = [(f,) if isinstance(f, str) else f for f in required]
    missing = [fs[0] for fs in alternatives if not any((path / f).is_file() for f in fs)]
    if missing:
        raise ArtifactError(f"{path}: incomplete {what} directory, missing {', '.join(missing)}")
    return result


class VersionRegistry:
    """Versions of one kind of model under `root`, and which one is live.

    Args:
        root: the registry's directory.
        check: reads a version's directory and raises `ArtifactError` when it is not a
            complete version of this kind; `set_live` refuses such a version.
        train_hint: the command that makes a first live version, for the error message.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        check: Callable[[Path], object] | None = None,
        train_hint: str = "deskbot train intents --promote",
    ) -> None:
        self.root = Path(root)
        self._check = check
        self.train_hint = train_hint

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def live_version(self) -> str | None:
        try:
            return (self.root / LIVE).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def live_dir(self) -> Path:
        """The live version's directory.

        Raises:
            ArtifactError: there is no live version yet.
        """
        version = self.live_version()
        if version is None:
            raise ArtifactError(f"{self.root}: no live model (train one with `{self.train_hint}`)")
        return self.versions_dir / version

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.versions_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def version_dir(self, version: str) -> Path:
        path = self.versions_dir / version
        if version.startswith(".") or "/" in version or not path.is_dir():
            raise ArtifactError(f"{self.root}: no version {version!r} (see `deskbot models list`)")
        return path

    def set_live(self, version: str, *, reason: str = "promote") -> None:
        """Point LIVE at `version` atomically and record it in the history."""
        path = self.version_dir(version)
        if self._check is not None:
            self._check(path)
        previous = self.live_version()
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / LIVE, version + "\n")
        append_jsonl(
            self.root / "history.jsonl",
            {"at": time.time(), "live": version, "previous": previous, "reason": reason},
        )

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.root / "history.jsonl")

    def rollback_target(self) -> str | None:
        """The version that was live before the current one was promoted (None if none).

        Rollbacks undo promotions like a stack: promote A, B, C then roll back twice
        and A is live again (a second rollback does not bounce back to C).
        """
        stack: list[str] = []
        for entry in self.history():
            live = entry.get("live")
            if not isinstance(live, str):
                continue
            if str(entry.get("reason", "")).startswith("rollback"):
                while stack and stack[-1] != live:
                    stack.pop()
                if not stack:
                    stack.append(live)
            else:
                stack.append(live)
        current = self.live_version()
        while stack and stack[-1] != current:
            stack.pop()
        return stack[-2] if len(stack) >= 2 else None

    def rollback(self, to: str | None = None) -> str:
        """Make `to` (default: the version live before the current one) live again.

        Raises:
            ArtifactError: there is nothing to roll back to, or `to` is no version.
        """
        target = to or self.rollback_target()
        if target is None:
            raise ArtifactError(
                f"{self.root}: no earlier live version to roll back to; name one with --to "
                "(see `deskbot models list`)"
            )
        self.set_live(target, reason=f"rollback from {self.live_version()}")
        return target
