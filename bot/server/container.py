"""The composition root: the one place that turns a config into working objects.

Example:
    >>> bot = build_bot(load_config("deskbot.yaml"))   # doctest: +SKIP
    >>> conv, token = bot.store.create_conversation()  # doctest: +SKIP
    >>> bot.pipeline.handle(conv.id, "hello").kind     # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from deskbot.bot.actions.client import RasaActionClient
from deskbot.bot.core.config import BotConfig
from deskbot.bot.core.metrics import BotMetrics
from deskbot.bot.dialogue.pipeline import PipelineSettings, Responder, TurnPipeline
from deskbot.bot.nlu.batching import BatchingEmbedder, BatchingIntentClassifier
from deskbot.bot.nlu.classifier import IntentClassifier, IntentSharedEncoder
from deskbot.bot.nlu.reloading import ReloadingIntentClassifier
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.knowledge.embedding.embedder import Embedder, build_embedder
from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.indexing.index import read_pointer
from deskbot.knowledge.retrieval.retriever import FaissRetriever

logger = logging.getLogger(__name__)


@dataclass
class Bot:
    """Everything a running bot needs, built once per process."""

    config: BotConfig
    store: SqlConversationStore
    classifier: IntentClassifier
    retriever: FaissRetriever
    pipeline: TurnPipeline
    metrics: BotMetrics
    actions: RasaActionClient | None = None

    _warmed: bool = field(default=False, init=False, repr=False)

    def warm_up(self) -> None:
        """Load every model now rather than on the first customer's turn.

        A live FAQ index version that cannot be loaded (damaged on disk) does not stop
        the bot: it serves without FAQ answers (it clarifies, then hands off) and reports
        itself `degraded` until a readable version is made live (`deskbot ingest`), which
        it picks up by itself. No index at all is a set-up mistake and raises.

        Raises:
            IndexCorrupt: the index directory has no live version.
        """
        warm = getattr(self.classifier, "warm_up", None)
        if warm is not None:
            warm()
        self.classifier.predict(["hello"])
        single_threaded_blas()
        try:
            self.retriever.warm_up()
            self.retriever.retrieve("hello", top_k=1)
        except IndexCorrupt as exc:
            if read_pointer(self.retriever.index_dir) is None:
                raise
            logger.error("serving without FAQ answers until the index is rebuilt: %s", exc)
        self._warmed = True

    @property
    def ready(self) -> bool:
        """True once the models are loaded (by `warm_up`, or by a first turn)."""
        return self._warmed or self.retriever.version is not None

    @property
    def degraded(self) -> list[str]:
        """What the bot is serving without right now (empty when nothing)."""
        problem = self.retriever.problem
        if problem is None:
            return []
        if self.retriever.version is None:
            return [f"faq_index: no FAQ answers ({problem})"]
        return [f"faq_index: still serving {self.retriever.version} ({problem})"]

    def close(self) -> None:
        """Stop the step pools and the model watcher, close the action client and the
        database connections (safe to call twice; the store reconnects if used again)."""
        self.pipeline.close()
        if self.actions is not None:
            self.actions.close()
        stop_watching = getattr(self.classifier, "close", None)
        if callable(stop_watching):
            stop_watching()
        self.store.engine.dispose()


def build_store(config: BotConfig, *, run_migrations: bool = True) -> SqlConversationStore:
    engine = create_store_engine(config.database.url)
    if config.database.url.startswith("sqlite:///"):
        path = config.database.url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if run_migrations:
        migrate(engine)
    return SqlConversationStore(engine)


def pipeline_settings(config: BotConfig) -> PipelineSettings:
    """The pipeline's settings from the `knowledge`, `intents`, `actions` and `dialogue` sections."""
    d = config.dialogue
    return PipelineSettings(
        top_k=config.knowledge.top_k,
        min_score=config.knowledge.min_score,
        clarify_below=config.intents.clarify_below,
        answer_score=d.answer_score,
        classify_timeout_s=d.classify_timeout_s,
        retrieve_timeout_s=d.retrieve_timeout_s,
        generate_timeout_s=d.generate_timeout_s,
        session_expiry_s=d.session_expiry_minutes * 60.0,
        intent_actions=dict(config.actions.intent_actions),
        required_slots=dict(config.actions.required_slots),
        handoff_action=config.actions.handoff_action,
        max_out_of_scope=d.max_out_of_scope,
        max_clarifications=d.max_clarifications,
        max_negative_feedback=d.max_negative_feedback,
        form_max_attempts=d.form_max_attempts,
        bot_name=config.name,
    )


def single_threaded_blas() -> None:
    """One BLAS thread in a process that serves turns.

    A turn's BLAS work is small (one query against the FAQ's vectors); spread over the
    cores, OpenBLAS's workers then spin waiting for more and took half the CPU of a
    whole turn (measured: 56 against 29 ms of CPU per turn on 2 cores). The cores are
    better used by concurrent turns. Applies to the BLAS libraries loaded so far
    (numpy's and faiss's, once the models are warm).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def build_bot(
    config: BotConfig,
    *,
    store: SqlConversationStore | None = None,
    responder: Responder | None = None,
) -> Bot:
    """Build the bot described by `config` (models are loaded lazily; call `warm_up`).

    Args:
        config: the bot's configuration.
        store: an existing store (default: one on `config.database.url`, migrated).
        responder: composes FAQ replies; None builds the grounded generator of the
            `generator` section, or, for backend "none", answers with the best FAQ
            passage verbatim.
    """
    store = store or build_store(config)
    limits = config.limits
    # Follows the registry's LIVE pointer: a promoted model serves without a restart.
    base_classifier = ReloadingIntentClassifier(
        config.intents.registry,
        num_threads=limits.inference_threads,
        runtime=limits.inference_runtime,
        precision=limits.inference_precision,
    )
    base_embedder = build_embedder(
        config.knowledge.embedder,
        runtime=limits.inference_runtime,
        num_threads=limits.inference_threads,
        precision=limits.query_precision,
    )
    classifier: IntentClassifier = base_classifier
    embedder: Embedder = base_embedder
    if limits.micro_batching:
        classifier = BatchingIntentClassifier(
            base_classifier, max_batch=limits.max_batch, max_wait_ms=limits.batch_wait_ms
        )
        embedder = BatchingEmbedder(
            base_embedder, max_batch=limits.max_batch, max_wait_ms=limits.batch_wait_ms
        )
    retriever = FaissRetriever(
        config.knowledge.index_dir,
        embedder,
        shared_encoder=(
            IntentSharedEncoder(base_classifier)
            if config.knowledge.query_encoder == "intents"
            else None
        ),
    )
    actions = (
        RasaActionClient(
            config.actions.url, token=config.actions.token, timeout_s=config.actions.timeout_s
        )
        if config.actions.url
        else None
    )
    if responder is None and config.generator.backend != "none":
        from deskbot.bot.generation.responder import build_responder

        responder = build_responder(
            config.generator,
            embedder=embedder,
            min_score=config.knowledge.min_score,
            bot_name=config.name,
        )
    metrics = BotMetrics()
    pipeline = TurnPipeline(
        store,
        classifier,
        retriever,
        pipeline_settings(config),
        responder=responder,
        actions=actions,
        metrics=metrics,
    )
    return Bot(
        config=config,
        store=store,
        classifier=classifier,
        retriever=retriever,
        pipeline=pipeline,
        metrics=metrics,
        actions=actions,
    )
