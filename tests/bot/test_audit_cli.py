"""`deskbot audit export|prune` (#22): the rows as CSV or JSONL, filtered; an export
recorded first; the prune by retention."""

from __future__ import annotations

import csv
import getpass
import io
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.store.audit import LOGIN, AuditEntry
from tests.projects import init_project


def test_audit_export_and_prune_commands(tmp_path: Path) -> None:
    root, store = init_project(tmp_path)
    store.record_audit(AuditEntry("alice", LOGIN, "agent", "alice", address="10.0.0.1"))
    store.record_audit(AuditEntry("bob", LOGIN, "agent", "bob"))
    runner = CliRunner()
    cfg = ["-c", str(root)]
    out = runner.invoke(load_plugins(), ["audit", "export", "--agent", "alice", *cfg])
    assert out.exit_code == 0, out.output
    assert [r["actor"] for r in csv.DictReader(io.StringIO(out.stdout))] == ["alice"]
    target = tmp_path / "audit.jsonl"
    out = runner.invoke(
        load_plugins(), ["audit", "export", "--format", "jsonl", "-o", str(target), *cfg]
    )
    assert out.exit_code == 0, out.output
    assert len(target.read_text(encoding="utf-8").splitlines()) == 3  # + the first export
    out = runner.invoke(load_plugins(), ["audit", "export", "--format", "xml", *cfg])
    assert out.exit_code == 2 and "csv or jsonl" in out.output
    exports = store.audit_events(action="export", newest_first=False)
    assert [e.actor for e in exports] == [f"os:{getpass.getuser()}"] * 2
    assert exports[0].detail == "format=csv agent=alice action=* rows=1"
    out = runner.invoke(load_plugins(), ["audit", "prune", "--days", "1", *cfg])
    assert out.exit_code == 0 and "pruned 0 audit rows" in out.output
    assert Counter(e.action for e in store.audit_events(limit=None)) == {"login": 2, "export": 2}
