"""The learning loop's rows in the audit log (#22): model promotion and rollback from the
command line (by the operating-system user), FAQ proposal decisions seen by the loop
(one row each, however often it runs), the erasure that blanks a proposal's names."""

from __future__ import annotations

import getpass
from pathlib import Path

import yaml
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.config import load_config
from deskbot.bot.nlu.registry import MANIFEST, IntentModelManifest, ModelRegistry
from deskbot.bot.privacy.erasure import Eraser
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.bot.store.audit import NIGHTLY
from deskbot.training.data.faq_proposals import APPROVED, PENDING, REJECTED, FaqLoop


def _project(tmp_path: Path) -> tuple[Path, SqlConversationStore]:
    root = tmp_path / "b"
    assert CliRunner().invoke(load_plugins(), ["init", str(root)]).exit_code == 0
    engine = create_store_engine(f"sqlite:///{root / 'var' / 'deskbot.db'}")
    migrate(engine)
    return root, SqlConversationStore(engine)


def test_promote_and_rollback_are_recorded_with_the_operating_system_user(
    tmp_path: Path,
) -> None:
    root, store = _project(tmp_path)
    registry = ModelRegistry(load_config(root).intents.registry)
    for version in ("v1", "v2"):  # a promotion checks that the files are there
        folder = registry.versions_dir / version
        folder.mkdir(parents=True)
        manifest = IntentModelManifest(version=version, labels=("card_arrival",))
        (folder / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        for name in (
            "config.json",
            "head.safetensors",
            "knn_bank.safetensors",
            "model.safetensors",
        ):
            (folder / name).write_text("{}", encoding="utf-8")
    registry.set_live("v1")
    cfg = ["-c", str(root)]
    runner = CliRunner()
    for args in (["models", "promote", "v2"], ["models", "rollback"]):
        out = runner.invoke(load_plugins(), [*args, *cfg])
        assert out.exit_code == 0, out.output
    out = runner.invoke(load_plugins(), ["models", "promote", "nope", *cfg])
    assert out.exit_code == 2  # not done, not recorded
    actor = f"os:{getpass.getuser()}"
    assert [
        (e.actor, e.action, e.object_type, e.object_id, e.detail)
        for e in store.audit_events(limit=None, newest_first=False)
    ] == [
        (actor, "model_promoted", "model", "v2", "was v1"),
        (actor, "model_rolled_back", "model", "v1", "was v2"),
    ]


def test_each_faq_decision_is_recorded_once_and_an_erasure_blanks_its_names(
    tmp_path: Path,
) -> None:
    root, store = _project(tmp_path)
    conv, _ = store.create_conversation(customer_id="cust-9")
    turn = store.append_turn(conv.id, "user", "can I pay rent with a virtual card")
    loop = FaqLoop.from_config(load_config(root))
    entries = [
        {"id": f"proposed-{n}", "status": status, "question": "q", "answer": "a", "turn_id": t}
        for n, (status, t) in enumerate(
            [(APPROVED, turn.id), (REJECTED, turn.id), (PENDING, turn.id), (APPROVED, 999)]
        )
    ]
    loop._write(entries)
    assert loop.record_decisions(store, NIGHTLY) == 3
    assert loop.record_decisions(store, NIGHTLY) == 0  # once each
    rows = store.audit_events(limit=None, newest_first=False)
    assert [(e.actor, e.object_id, e.conversation_id, e.detail) for e in rows] == [
        (NIGHTLY, "proposed-0", conv.id, "approved"),
        (NIGHTLY, "proposed-1", conv.id, "rejected"),
        (NIGHTLY, "proposed-3", None, "approved"),  # its turn is gone
    ]
    assert {e.action for e in rows} == {"faq_proposal_decided"}
    assert "can I pay rent" not in yaml.safe_dump([r.model_dump() for r in rows])

    Eraser(store, load_config(root), hooks=[]).forget(customer_id="cust-9", actor="root")
    after = store.audit_events(limit=None, newest_first=False)
    assert [(e.object_id, e.conversation_id) for e in after[:2]] == [(None, None)] * 2
    assert after[2].object_id == "proposed-3"
