"""The composition root: the one place that turns a config into working objects.

Example:
    >>> bot = build_bot(load_config("deskbot.yaml"))   # doctest: +SKIP
    >>> conv, token = bot.store.create_conversation()  # doctest: +SKIP
    >>> bot.pipeline.handle(conv.id, "hello").kind     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deskbot.bot.actions.client import RasaActionClient
from deskbot.bot.core.config import BotConfig
from deskbot.bot.core.metrics import BotMetrics
from deskbot.bot.dialogue.pipeline import TurnPipeline
from deskbot.bot.dialogue.policy import DialogueRules
from deskbot.bot.dialogue.turn import Responder
from deskbot.bot.nlu.classifier import IntentClassifier, IntentSharedEncoder
from deskbot.bot.nlu.context import ContextRules
from deskbot.bot.nlu.retrieval import RetrievalIntentClassifier
from deskbot.bot.nlu.serving import (
    BatchingEmbedder,
    BatchingIntentClassifier,
    ReloadingIntentClassifier,
)
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.knowledge.embedding.embedder import Embedder, build_embedder
from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.indexing.index import read_pointer
from deskbot.knowledge.retrieval.retriever import FaissRetriever

if TYPE_CHECKING:
    from deskbot.bot.generation.protocol import AdaptedGenerator

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
    # The model that follows the registry's LIVE pointer (its watcher stops on `close`).
    live_model: ReloadingIntentClassifier | None = None
    # The reply generator of the `generator` section (None: backend "none", or a
    # responder given by the caller); it follows the adapter registry's LIVE pointer.
    generator: AdaptedGenerator | None = None

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
        self.classifier.warm_up()
        with contextlib.suppress(IndexCorrupt):  # FAQ-only: reported just below
            self.classifier.predict(["hello"])
        unknown = self.config.teams.unknown_intents(self.classifier.labels)
        if unknown:
            logger.warning(
                "teams.routes names intents the live model does not predict, which route "
                "nothing until a model does: %s",
                unknown,
            )
        single_threaded_blas()
        try:
            self.retriever.warm_up()
            self.retriever.retrieve("hello", top_k=1)
        except IndexCorrupt as exc:
            if read_pointer(self.retriever.index_dir) is None:
                raise
            logger.error("serving without FAQ answers until the index is rebuilt: %s", exc)
        if self.generator is not None:
            # The live adapter merged (local) or loaded on the model server (openai)
            # before the first customer, and followed from then on.
            self.generator.warm_up()
            self.generator.watch()
        self._warmed = True

    @property
    def faq_only(self) -> bool:
        """True while the FAQ's entries are the intents (no intent model live yet)."""
        return self.live_model is not None and not self.live_model.has_model

    @property
    def ready(self) -> bool:
        """True once the models are loaded (by `warm_up`, or by a first turn)."""
        return self._warmed or self.retriever.version is not None

    @property
    def generator_adapter(self) -> str | None:
        """The generator's live LoRA adapter version (None: the base model, or no generator)."""
        return self.generator.live_adapter if self.generator is not None else None

    @property
    def degraded(self) -> list[str]:
        """What the bot is serving without right now (empty when nothing)."""
        out: list[str] = []
        problem = self.retriever.problem
        if problem is not None and self.retriever.version is None:
            out.append(f"faq_index: no FAQ answers ({problem})")
        elif problem is not None:
            out.append(f"faq_index: still serving {self.retriever.version} ({problem})")
        refused = self.generator.adapter_problem if self.generator is not None else None
        if refused is not None:
            serving = self.generator_adapter or "the base model"
            out.append(f"generator_adapter: still serving {serving} ({refused})")
        return out

    def close(self) -> None:
        """Stop the step pools and the model watcher, close the action client, the change
        feed's listener and the database connections (safe to call twice; the store reconnects if used again)."""
        self.pipeline.close()
        if self.actions is not None:
            self.actions.close()
        if self.live_model is not None:
            self.live_model.close()
        if self.generator is not None:
            self.generator.close()
        self.store.changes.close()  # its LISTEN thread, on PostgreSQL
        self.store.engine.dispose()


def build_store(config: BotConfig, *, run_migrations: bool = True) -> SqlConversationStore:
    engine = create_store_engine(config.database.url)
    if config.database.url.startswith("sqlite:///"):
        path = config.database.url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if run_migrations:
        migrate(engine)
    store = SqlConversationStore(engine, default_team=config.teams.default)
    if run_migrations:
        store.ensure_teams(config.teams.names)  # the teams the config routes handoffs to
    return store


def dialogue_rules(config: BotConfig) -> DialogueRules:
    """The turn's rules from the `knowledge`, `intents`, `actions` and `dialogue` sections:
    built once, read by the policy and the pipeline alike."""
    d = config.dialogue
    return DialogueRules(
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
        confirm=dict(config.actions.confirm),
        handoff_action=config.actions.handoff_action,
        max_out_of_scope=d.max_out_of_scope,
        max_clarifications=d.max_clarifications,
        max_negative_feedback=d.max_negative_feedback,
        form_max_attempts=d.form_max_attempts,
        bot_name=config.name,
        teams=config.teams,
        context=ContextRules(
            enabled=d.context.enabled,
            keep_alone_above=d.context.keep_alone_above,
            thread_weight=d.context.thread_weight,
            topic_weight=d.context.topic_weight,
            only_leaning=d.context.only_leaning,
        ),
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


@dataclass(frozen=True)
class _Models:
    """The served models: the live intent model, the classifier and embedder the turn
    calls (batched when `limits.micro_batching`), and the embedder's prefetch."""

    live: ReloadingIntentClassifier
    classifier: IntentClassifier
    embedder: Embedder
    prefetch: Callable[[str], None] | None


def _embedder(config: BotConfig) -> tuple[Embedder, Callable[[str], None] | None]:
    """The query embedder (batched when `limits.micro_batching`) and its prefetch."""
    limits = config.limits
    embedder = build_embedder(
        config.knowledge.embedder,
        runtime=limits.inference_runtime,
        num_threads=limits.inference_threads,
        precision=limits.query_precision,
    )
    if not limits.micro_batching:
        return embedder, None
    batched = BatchingEmbedder(
        embedder, max_batch=limits.max_batch, max_wait_ms=limits.batch_wait_ms
    )
    return batched, batched.prefetch


def _models(
    config: BotConfig,
    embedder: Embedder,
    prefetch: Callable[[str], None] | None,
    faq: RetrievalIntentClassifier,
) -> _Models:
    limits = config.limits
    # Follows the registry's LIVE pointer: a promoted model serves without a restart.
    # Until the first is promoted, the FAQ's entries are the intents (`faq`).
    live = ReloadingIntentClassifier(
        config.intents.registry,
        num_threads=limits.inference_threads,
        runtime=limits.inference_runtime,
        precision=limits.inference_precision,
        fallback=faq,
    )
    if not live.has_model:
        logger.warning(
            "%s: no live intent model: the FAQ's entries are the intents until one is "
            "promoted (picked up without a restart)",
            config.intents.registry,
        )
    if not limits.micro_batching:
        return _Models(live, live, embedder, prefetch)
    classifier = BatchingIntentClassifier(
        live, max_batch=limits.max_batch, max_wait_ms=limits.batch_wait_ms
    )
    return _Models(live, classifier, embedder, prefetch)


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
    embedder, prefetch = _embedder(config)
    retriever = FaissRetriever(
        config.knowledge.index_dir,
        embedder,
        main_weight=config.knowledge.main_weight,
        distinct_sections=config.knowledge.distinct_sections,
    )
    faq = RetrievalIntentClassifier(
        retriever, min_score=config.knowledge.min_score, top_k=config.knowledge.top_k
    )
    models = _models(config, embedder, prefetch, faq)
    if config.knowledge.query_encoder == "intents":
        if models.live.has_model:
            retriever.shared_encoder = IntentSharedEncoder(models.live)
        else:  # it needs a model's encoder: the embedder embeds queries until a restart
            logger.warning("knowledge.query_encoder 'intents' needs a live intent model")
    actions = (
        RasaActionClient(
            config.actions.url, token=config.actions.token, timeout_s=config.actions.timeout_s
        )
        if config.actions.url
        else None
    )
    generator: AdaptedGenerator | None = None
    if responder is None and config.generator.backend != "none":
        from deskbot.bot.generation.generator import build_generator
        from deskbot.bot.generation.responder import build_responder

        generator = build_generator(config.generator, bot_name=config.name)
        responder = build_responder(
            config.generator,
            embedder=models.embedder,
            min_score=config.knowledge.min_score,
            generator=generator,
        )
    metrics = BotMetrics()
    pipeline = TurnPipeline(
        store,
        models.classifier,
        retriever,
        dialogue_rules(config),
        responder=responder,
        actions=actions,
        metrics=metrics,
        prefetch=models.prefetch,
    )
    return Bot(
        config=config,
        store=store,
        classifier=models.classifier,
        retriever=retriever,
        pipeline=pipeline,
        metrics=metrics,
        actions=actions,
        live_model=models.live,
        generator=generator,
    )
