"""`deskbot teams` and `deskbot agents add --team` on a project made by `deskbot init`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from tests.projects import init_project


def _run(root: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(load_plugins(), [*args, "-c", str(root)], input=stdin)
    return result.exit_code, result.output


def test_teams_are_added_joined_listed_left_and_removed(tmp_path: Path) -> None:
    root, store = init_project(tmp_path)
    assert _run(root, "agents", "add", "ann", "--password-stdin", stdin="ann-password\n")[0] == 0
    code, out = _run(
        root, "agents", "add", "bea", "--team", "billing", "--password-stdin", stdin="bea-pass-1\n"
    )
    assert code == 2 and "no team 'billing'" in out
    assert _run(root, "teams", "add", "billing") == (
        0,
        "team 'billing' added; add agents with `deskbot teams join billing AGENT`\n",
    )
    code, _ = _run(
        root, "agents", "add", "bea", "--team", "billing", "--password-stdin", stdin="bea-pass-1\n"
    )
    assert code == 0 and store.agent_teams("bea") == ["billing"]
    assert store.agent_teams("ann") == ["general"]  # no --team: the default team
    assert _run(root, "teams", "join", "billing", "ann") == (0, "'ann' joined team 'billing'\n")
    assert (
        _run(root, "teams", "join", "billing", "ann")[1] == "'ann' was already in team 'billing'\n"
    )
    assert _run(root, "teams", "list") == (
        0,
        "billing\t0 open\tann,bea\ngeneral (default)\t0 open\tann\n",
    )
    assert _run(root, "teams", "leave", "billing", "ann") == (0, "'ann' left team 'billing'\n")
    code, out = _run(root, "teams", "leave", "billing", "ann")
    assert code == 2 and "not in team 'billing'" in out
    code, out = _run(root, "teams", "join", "sales", "ann")
    assert code == 2 and "no team 'sales'" in out
    code, out = _run(root, "teams", "add", "Sales Team")
    assert code == 2 and "cannot name a team" in out
    code, out = _run(root, "teams", "remove", "general")
    assert code == 2 and "default team" in out
    assert _run(root, "teams", "remove", "billing") == (0, "team 'billing' removed\n")
    assert store.agent_teams("bea") == []


def test_a_handoff_moves_and_a_team_with_open_ones_stays(tmp_path: Path) -> None:
    root, store = init_project(tmp_path)
    _run(root, "teams", "add", "billing")
    conv, _ = store.create_conversation()
    hid = int(store.open_handoff(conv.id, "customer_request").id or 0)
    assert _run(root, "teams", "move", str(hid), "billing") == (
        0,
        f"handoff #{hid} now waits in team 'billing'\n",
    )
    assert store.get_handoff(hid).team == "billing"  # type: ignore[union-attr]
    code, out = _run(root, "teams", "remove", "billing")
    assert code == 2 and "1 open handoff(s)" in out
    code, out = _run(root, "teams", "move", "999", "billing")
    assert code == 2 and "no handoff 999" in out


def test_routed_teams_exist_and_are_not_removed(tmp_path: Path) -> None:
    root, store = init_project(
        tmp_path, "teams:\n  routes:\n    security: {intents: [card_lost]}\n"
    )
    assert _run(root, "teams", "list")[1] == "general (default)\t0 open\t-\nsecurity\t0 open\t-\n"
    code, out = _run(root, "teams", "remove", "security")
    assert code == 2 and "routes handoffs to 'security'" in out
    assert [t.name for t in store.teams()] == ["general", "security"]
