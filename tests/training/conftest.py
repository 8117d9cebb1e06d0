"""Shared set-up of the learning-loop tests (retrain, quarantine, erasure)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import pytest

from deskbot.bot.nlu.registry import ModelRegistry
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.training.data.datasets import IntentDataset, load_intents
from deskbot.training.data.export import text_key
from deskbot.training.nightly.job import RetrainJob
from deskbot.training.nightly.settings import RetrainSettings
from tests.conftest import BANKING_TEST, BANKING_TRAIN, TEST_INTENTS

# A few optimiser steps and no gate on quality: a 3-step model is noise, the point of
# these tests is what a night does, not how good its model is.
TINY_NIGHT: dict[str, Any] = {
    "epochs": 1,
    "train_args": {"max_steps": 3, "batch_size": 16, "patience": 0},
    "accuracy_tolerance": 1.0,
    "f1_margin": 1.0,
    "oos_tolerance": 1.0,
    # The tests' nights are a handful of examples: no minimum validation window.
    "gate_min_examples": 0,
}


@pytest.fixture
def store(database_url: str) -> SqlConversationStore:
    """An empty, migrated store (SQLite, and PostgreSQL where there is one)."""
    engine = create_store_engine(database_url)
    migrate(engine)
    return SqlConversationStore(engine)


def nightly_job(
    store: SqlConversationStore,
    registry: ModelRegistry,
    base_data: IntentDataset,
    heldout: IntentDataset,
    settings: RetrainSettings,
    reports_dir: Path,
) -> RetrainJob:
    return RetrainJob(
        store=store,
        registry=registry,
        base_data=base_data,
        test_data=heldout,
        settings=settings,
        reports_dir=reports_dir,
    )


def tiny_night(**settings: Any) -> RetrainSettings:
    """`TINY_NIGHT` settings with `settings` over them."""
    return RetrainSettings(**{**TINY_NIGHT, **settings})


def labelled(
    store: SqlConversationStore,
    text: str,
    intent: str,
    agent: str = "ann",
    *,
    customer_id: str | None = None,
    channel: str = "web",
    **label: Any,
) -> tuple[int, int, int]:
    """A customer message the bot did not understand, its reply, and an agent's label on
    the reply: (label id, user turn id, bot turn id)."""
    conv, _ = store.create_conversation(customer_id=customer_id, channel=channel)
    user = store.append_turn(conv.id, "user", text, intent="out_of_scope", confidence=0.1)
    bot = store.append_turn(conv.id, "bot", "reply", intent="out_of_scope", confidence=0.1)
    assert bot.id is not None and user.id is not None
    row = store.add_label(bot.id, agent, intent=intent, **label)
    assert row.id is not None
    return row.id, user.id, bot.id


@functools.cache
def banking_splits() -> tuple[IntentDataset, IntentDataset]:
    """BANKING77's train and test splits (read once per session)."""
    return load_intents(BANKING_TRAIN), load_intents(BANKING_TEST)


def retrain_world(
    tmp_path: Path, model_dir: Path, small_intents: IntentDataset, *, heldout_per_intent: int
) -> tuple[ModelRegistry, SqlConversationStore, IntentDataset, list[tuple[str, str]]]:
    """A registry with `model_dir` live as v1, an empty SQLite store, a held-out set of the
    test intents, and train messages of those intents the model was not trained on."""
    _, test = banking_splits()
    registry = ModelRegistry(tmp_path / "registry")
    shutil.copytree(model_dir, registry.versions_dir / "v1")
    registry.set_live("v1")
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    store = SqlConversationStore(engine)
    keep = set(TEST_INTENTS)
    heldout = test.without_intents(set(test.intents) - keep, as_oos=False).few_shot(
        heldout_per_intent, seed=0
    )
    return registry, store, heldout, unseen_rows(small_intents)


def unseen_rows(small_intents: IntentDataset) -> list[tuple[str, str]]:
    """BANKING77 train messages of the test intents that `small_intents` does not hold."""
    train, _ = banking_splits()
    keep = set(TEST_INTENTS)
    used = {text_key(t) for t in small_intents.texts}
    return [
        (t, y)
        for t, y in zip(train.texts, train.labels, strict=True)
        if y in keep and text_key(t) not in used
    ]
