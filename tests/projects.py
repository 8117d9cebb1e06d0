"""A project made by `deskbot init` for the command-line tests, and its migrated store."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate


def init_project(tmp_path: Path, config: str = "") -> tuple[Path, SqlConversationStore]:
    """`deskbot init` in `tmp_path / "b"` (`config` added to the end of its deskbot.yaml):
    the project's folder and its store, migrated."""
    root = tmp_path / "b"
    assert CliRunner().invoke(load_plugins(), ["init", str(root)]).exit_code == 0
    if config:
        path = root / "deskbot.yaml"
        path.write_text(path.read_text(encoding="utf-8") + config, encoding="utf-8")
    engine = create_store_engine(f"sqlite:///{root / 'var' / 'deskbot.db'}")
    migrate(engine)
    return root, SqlConversationStore(engine)
