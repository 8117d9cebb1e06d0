"""The `deskbot agents` commands in the audit log (#22): one row each, by the
operating-system user, and no password."""

from __future__ import annotations

import getpass
from pathlib import Path

from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from tests.projects import init_project


def test_the_agents_commands_write_rows_with_the_operating_system_user(tmp_path: Path) -> None:
    root, store = init_project(tmp_path)
    cfg = ["-c", str(root)]
    runner = CliRunner()
    for args, stdin in (
        (["agents", "add", "carol", "--password-stdin"], "carol-password\n"),
        (["agents", "revoke", "carol"], None),
        (["agents", "disable", "carol"], None),
        (["agents", "enable", "carol"], None),
        (["agents", "passwd", "carol", "--password-stdin"], "carol-password-2\n"),
    ):
        result = runner.invoke(load_plugins(), [*args, *cfg], input=stdin)
        assert result.exit_code == 0, result.output
    actor = f"os:{getpass.getuser()}"
    rows = store.audit_events(limit=None, newest_first=False)
    assert [(e.actor, e.action, e.object_type, e.object_id) for e in rows] == [
        (actor, action, "agent", "carol")
        for action in (
            "agent_added",
            "sessions_revoked",
            "agent_disabled",
            "agent_enabled",
            "password_changed",
        )
    ]
    assert "carol-password" not in repr([e.model_dump() for e in rows])


def test_an_unlock_is_recorded(tmp_path: Path, redis_url: str) -> None:
    root, store = init_project(tmp_path)
    config = root / "deskbot.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            "  trusted_proxies: []", f"  trusted_proxies: []\n  rate_limit_redis_url: {redis_url}"
        ),
        encoding="utf-8",
    )
    out = CliRunner().invoke(load_plugins(), ["agents", "unlock", "dave", "-c", str(root)])
    assert out.exit_code == 0, out.output
    [row] = store.audit_events()
    assert (row.actor, row.action, row.object_id) == (
        f"os:{getpass.getuser()}",
        "agent_unlocked",
        "dave",
    )
