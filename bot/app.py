"""The composition root: the one place that turns a config into working objects.

Example:
    >>> bot = build_bot(load_config("deskbot.yaml"))   # doctest: +SKIP
    >>> conv, token = bot.store.create_conversation()  # doctest: +SKIP
    >>> bot.pipeline.handle(conv.id, "hello").kind     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from deskbot.bot.config import BotConfig
from deskbot.bot.intents import TransformerIntentClassifier
from deskbot.bot.pipeline import PipelineSettings, TurnPipeline
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.knowledge.embedder import SentenceTransformerEmbedder
from deskbot.knowledge.retriever import FaissRetriever


@dataclass
class Bot:
    """Everything a running bot needs, built once per process."""

    config: BotConfig
    store: SqlConversationStore
    classifier: TransformerIntentClassifier
    retriever: FaissRetriever
    pipeline: TurnPipeline

    def warm_up(self) -> None:
        """Load every model now rather than on the first customer's turn."""
        self.classifier.warm_up()
        self.retriever.warm_up()
        self.classifier.predict(["hello"])
        self.retriever.retrieve("hello", top_k=1)


def build_store(config: BotConfig, *, run_migrations: bool = True) -> SqlConversationStore:
    engine = create_store_engine(config.database.url)
    if config.database.url.startswith("sqlite:///"):
        path = config.database.url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if run_migrations:
        migrate(engine)
    return SqlConversationStore(engine)


def build_bot(config: BotConfig, *, store: SqlConversationStore | None = None) -> Bot:
    """Build the bot described by `config` (models are loaded lazily; call `warm_up`)."""
    store = store or build_store(config)
    classifier = TransformerIntentClassifier.from_registry(config.intents.registry)
    embedder = SentenceTransformerEmbedder(config.knowledge.embedder)
    retriever = FaissRetriever(config.knowledge.index_dir, embedder)
    pipeline = TurnPipeline(
        store,
        classifier,
        retriever,
        PipelineSettings(
            top_k=config.knowledge.top_k,
            min_score=config.knowledge.min_score,
            clarify_below=config.intents.clarify_below,
        ),
    )
    return Bot(
        config=config, store=store, classifier=classifier, retriever=retriever, pipeline=pipeline
    )
