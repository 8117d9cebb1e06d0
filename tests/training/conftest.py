"""Shared set-up of the learning-loop tests (retrain, quarantine)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from deskbot.bot.nlu.registry import ModelRegistry
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.training.data.datasets import IntentDataset, load_intents
from deskbot.training.data.export import text_key
from tests.conftest import BANKING_TEST, BANKING_TRAIN, TEST_INTENTS


@functools.cache
def banking_splits() -> tuple[IntentDataset, IntentDataset]:
    """BANKING77's train and test splits (read once per session)."""
    return load_intents(BANKING_TRAIN), load_intents(BANKING_TEST)


def retrain_world(
    tmp_path: Path, model_dir: Path, small_intents: IntentDataset, *, heldout_per_intent: int
) -> tuple[ModelRegistry, SqlConversationStore, IntentDataset, list[tuple[str, str]]]:
    """A registry with `model_dir` live as v1, an empty SQLite store, a held-out set of the
    test intents, and train messages of those intents the model was not trained on."""
    train, test = banking_splits()
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
    used = {text_key(t) for t in small_intents.texts}
    rows = [
        (t, y)
        for t, y in zip(train.texts, train.labels, strict=True)
        if y in keep and text_key(t) not in used
    ]
    return registry, store, heldout, rows
