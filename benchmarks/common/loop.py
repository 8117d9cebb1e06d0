"""Shared set-up of the learning-loop benchmarks (learning_month, poisoning, retrain_100k, hot_swap).

The starting point is the BANKING77 10-shot model (`few_shot(10, seed=0)` of the train
split, default `TrainingArgs`), trained once and cached under the work folder.
Logged turns are inserted as real conversations, bot turns and agent labels into a real
SQLite store, and the real `RetrainJob` runs on them.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from benchmarks.common import banking, log
from deskbot.bot.nlu.classifier import TransformerIntentClassifier
from deskbot.bot.nlu.registry import ModelRegistry
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.knowledge.files.fsutil import file_lock
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.data.export import text_key
from deskbot.training.intents.trainer import IntentTrainer, TrainingArgs

# Full fine-tune on all of BANKING77's train split, 6 epochs (shared/MODELS.md, this machine kind).
FULL_DATA_ACCURACY = 0.928


def banking_loop() -> tuple[IntentDataset, IntentDataset, IntentDataset, list[tuple[str, str]]]:
    """(train, test, the 10-shot base set, the rest of train shuffled: the 'logged turns')."""
    train, test = banking()
    base = train.few_shot(10, seed=0)
    used = {text_key(t) for t in base.texts}
    rest = [
        (t, y) for t, y in zip(train.texts, train.labels, strict=True) if text_key(t) not in used
    ]
    random.Random(0).shuffle(rest)
    return train, test, base, rest


def base_model(cache: Path, base: IntentDataset) -> Path:
    """The 10-shot model, trained once per cache folder.

    Benchmarks run side by side share the cache: the first trains under a lock, the
    others wait and reuse its model (the trainer writes the folder atomically, so a run
    killed while training leaves no half-written model behind)."""
    out = cache / "banking77-10shot"
    with file_lock(cache / ".banking77-10shot.lock"):
        if not out.is_dir():
            log(f"training the 10-shot model on {len(base)} examples (once; cached in {out})")
            IntentTrainer(TrainingArgs()).train(base, out, version="base-10shot", progress=False)
    return out


def fresh_registry(work: Path, model: Path) -> ModelRegistry:
    registry = ModelRegistry(work / "registry")
    if registry.root.exists():
        shutil.rmtree(registry.root)
    shutil.copytree(model, registry.versions_dir / "base-10shot")
    registry.set_live("base-10shot", reason="benchmark start")
    return registry


def fresh_store(work: Path) -> SqlConversationStore:
    db = work / "store.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    engine = create_store_engine(f"sqlite:///{db}")
    migrate(engine)
    return SqlConversationStore(engine)


def log_night(
    store: SqlConversationStore,
    classifier: TransformerIntentClassifier | None,
    rows: list[tuple[str, str]],
    *,
    agent: str = "agent-1",
) -> None:
    """Each row: a conversation, the customer's message, the bot's reply with the live
    model's prediction, and an agent's label naming the (given) intent."""
    preds = classifier.predict([t for t, _ in rows]) if classifier else None
    for i, (text, intent) in enumerate(rows):
        conv, _ = store.create_conversation()
        p_intent = preds[i].intent if preds else None
        p_conf = preds[i].confidence if preds else None
        store.append_turn(conv.id, "user", text, intent=p_intent, confidence=p_conf)
        bot = store.append_turn(
            conv.id, "bot", "reply", intent=p_intent, confidence=p_conf, kind="faq"
        )
        assert bot.id is not None
        store.add_label(bot.id, agent, intent=intent)
