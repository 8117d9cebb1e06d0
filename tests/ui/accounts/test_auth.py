"""Agent accounts: argon2 hashes, signed session cookies, `deskbot agents add`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.errors import StoreError
from deskbot.bot.store import AgentSession, SqlConversationStore, create_store_engine
from deskbot.ui.accounts.auth import (
    AgentAccountError,
    SessionSigner,
    authenticate,
    create_agent,
    set_password,
    verify_password,
)


def test_agents_are_stored_with_an_argon2_hash_and_authenticate(
    store: SqlConversationStore,
) -> None:
    create_agent(store, "alice", "correct-horse", display_name="Alice")
    stored = store.get_agent("alice")
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert "correct-horse" not in stored.password_hash
    assert authenticate(store, "alice", "correct-horse") is not None
    assert authenticate(store, "alice", "wrong-horse") is None
    assert authenticate(store, "bob", "correct-horse") is None
    with pytest.raises(StoreError, match="already exists"):
        create_agent(store, "alice", "another-password")
    with pytest.raises(AgentAccountError, match="at least 8"):
        create_agent(store, "bob", "short")
    with pytest.raises(AgentAccountError, match="without spaces"):
        create_agent(store, "bob smith", "long-enough")
    # The audit log's other actors are "os:USER" and "system:nightly": no agent passes for one.
    for name in ("os:root", "system:nightly", "customer:self"):
        with pytest.raises(AgentAccountError, match="or ':'"):
            create_agent(store, name, "long-enough")


def test_session_cookies_are_signed_and_expire_after_their_age_or_idle_time(
    store: SqlConversationStore,
) -> None:
    agent = create_agent(store, "alice", "correct-horse")
    signer = SessionSigner(b"k" * 32, store, max_age=600, idle_s=120)
    cookie = signer.issue(agent, now=1000.0)
    assert signer.check(cookie, now=1030.0).username == "alice"  # type: ignore[union-attr]
    assert signer.check(cookie, now=1601.0) is None  # past its absolute expiry
    assert SessionSigner(b"other" * 8, store).check(cookie, now=1030.0) is None
    token, mac = cookie.rsplit(".", 1)
    assert signer.check(f"{token}.{mac[:-2]}", now=1030.0) is None
    other = signer.issue(agent, now=1000.0).rsplit(".", 1)[0]
    assert signer.check(f"{other}.{mac}", now=1030.0) is None  # another token, this MAC
    assert signer.check("garbage", now=1030.0) is None and signer.check(None) is None
    # Idle: each use keeps it alive (written at most every TOUCH_S), 120 s without ends it.
    assert signer.check(cookie, now=1100.0) is not None
    assert signer.check(cookie, now=1210.0) is not None
    assert signer.check(cookie, now=1331.0) is None
    with store.session() as s:
        assert s.exec(select(AgentSession)).first() is not None  # the table holds no token
        assert all(token not in row.id for row in s.exec(select(AgentSession)).all())


def test_logout_revoke_disable_and_a_new_password_end_sessions_on_the_server(
    store: SqlConversationStore,
) -> None:
    alice = create_agent(store, "alice", "correct-horse")
    bob = create_agent(store, "bob", "battery-staple")
    signer = SessionSigner(b"k" * 32, store)
    first, second, bobs = signer.issue(alice), signer.issue(alice), signer.issue(bob)
    assert signer.end(first) and signer.check(first) is None  # logout: the copy is dead
    assert signer.check(second) is not None and not signer.end("forged.cookie")
    # A password change ends the other sessions, keeping the one that asked.
    third = signer.issue(alice)
    assert set_password(store, "alice", "new-horse-123", keep=signer.session_of(third)) == 1
    assert signer.check(second) is None and signer.check(third) is not None
    assert authenticate(store, "alice", "new-horse-123") is not None
    assert store.end_agent_sessions("alice") == 1 and signer.check(third) is None  # revoke
    assert signer.check(bobs) is not None  # nobody else's
    store.update_agent("bob", disabled=True)
    assert signer.check(bobs) is None  # disabled: refused even before the rows go
    assert authenticate(store, "bob", "battery-staple") is None
    with pytest.raises(AgentAccountError, match="at least 8"):
        set_password(store, "alice", "short")


def test_cli_adds_an_agent_with_the_password_from_stdin(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(load_plugins(), ["init", str(tmp_path / "b")]).exit_code == 0
    result = runner.invoke(
        load_plugins(),
        [
            "agents",
            "add",
            "carol",
            "-c",
            str(tmp_path / "b"),
            "--name",
            "Carol",
            "--password-stdin",
        ],
        input="s3cret-password\n",
    )
    assert result.exit_code == 0, result.output
    assert "s3cret-password" not in result.output
    result = runner.invoke(load_plugins(), ["agents", "list", "-c", str(tmp_path / "b")])
    assert "carol\tCarol\tagent" in result.output
    db = create_store_engine(f"sqlite:///{tmp_path / 'b' / 'var' / 'deskbot.db'}")
    agent = SqlConversationStore(db).get_agent("carol")
    assert agent is not None and verify_password(agent.password_hash, "s3cret-password")
    again = runner.invoke(
        load_plugins(),
        ["agents", "add", "carol", "-c", str(tmp_path / "b"), "--password-stdin"],
        input="s3cret-password\n",
    )
    assert again.exit_code != 0 and "already exists" in again.output


def test_cli_prompts_for_the_password_twice(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(load_plugins(), ["init", str(tmp_path / "b")]).exit_code == 0
    result = runner.invoke(
        load_plugins(),
        ["agents", "add", "dan", "-c", str(tmp_path / "b")],
        input="long-password\nlong-password\n",
    )
    assert result.exit_code == 0, result.output
    assert "long-password" not in result.output
    short = runner.invoke(
        load_plugins(),
        ["agents", "add", "erin", "-c", str(tmp_path / "b")],
        input="short\nshort\n",
    )
    assert short.exit_code != 0 and "at least 8 characters" in short.output


def test_cli_lists_revokes_disables_sets_passwords_and_unlocks(tmp_path: Path) -> None:
    runner = CliRunner()
    project = str(tmp_path / "b")
    assert runner.invoke(load_plugins(), ["init", project]).exit_code == 0

    def run(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(load_plugins(), [*args, "-c", project], input=stdin)
        assert result.exit_code == 0, result.output
        return result.output

    run("agents", "add", "dan", "--password-stdin", stdin="first-password\n")
    store = SqlConversationStore(
        create_store_engine(f"sqlite:///{tmp_path / 'b' / 'var' / 'deskbot.db'}")
    )
    signer = SessionSigner(b"k" * 32, store)
    dan = store.get_agent("dan")
    assert dan is not None
    cookies = [signer.issue(dan, address="192.0.2.9") for _ in range(2)]
    listed = run("agents", "sessions", "dan").splitlines()
    assert len(listed) == 2 and all(line.endswith("192.0.2.9") for line in listed)
    assert "2 session(s) of 'dan' ended" in run("agents", "revoke", "dan")
    assert all(signer.check(c) is None for c in cookies)
    cookie = signer.issue(dan)
    assert "1 session(s) ended" in run(
        "agents", "passwd", "dan", "--password-stdin", stdin="second-password\n"
    )
    assert signer.check(cookie) is None and authenticate(store, "dan", "second-password")
    cookie = signer.issue(dan)
    assert "disabled; 1 session(s) ended" in run("agents", "disable", "dan")
    assert signer.check(cookie) is None and authenticate(store, "dan", "second-password") is None
    run("agents", "enable", "dan")
    assert authenticate(store, "dan", "second-password") is not None
    unknown = runner.invoke(load_plugins(), ["agents", "revoke", "nobody", "-c", project])
    assert unknown.exit_code != 0 and "no agent 'nobody'" in unknown.output
    # Without Redis the servers' counts are out of the command's reach, and it says so.
    unlock = runner.invoke(load_plugins(), ["agents", "unlock", "dan", "-c", project])
    assert unlock.exit_code != 0 and "rate_limit_redis_url" in unlock.output


def test_a_login_clears_ended_sessions_out_of_the_table(store: SqlConversationStore) -> None:
    agent = create_agent(store, "erin", "correct-horse")
    signer = SessionSigner(b"k" * 32, store, max_age=600, idle_s=120)
    signer.issue(agent, now=1000.0)
    signer.issue(agent, now=1500.0)  # the first is idle past 120 s: deleted
    assert len(store.agent_sessions("erin")) == 1
