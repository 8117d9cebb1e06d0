"""A bot project's generator examples, made with the parts the bot serves with.

The retriever is built as `bot.server.container.build_bot` builds it (the project's
index, embedder and weights), the token counter is the generator's tokenizer, and the
prompt settings (top-k, history window and budget, the bot's name) are the config's:
what the served generator would be given for each message.

Example:
    >>> export = export_project_examples(load_config("deskbot.yaml"))  # doctest: +SKIP
    >>> export.summary()["train"]                                       # doctest: +SKIP
    2140
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from deskbot.bot.core.config import BotConfig
from deskbot.bot.generation.model_files import model_folder
from deskbot.bot.store import SqlConversationStore
from deskbot.knowledge.retrieval.retriever import FaissRetriever
from deskbot.knowledge.sources.loading import read_examples
from deskbot.training.generator.examples import ExampleSettings, GeneratorExport, export_examples

__all__ = ["export_project_examples", "project_settings", "token_counter"]


def project_settings(config: BotConfig, **overrides: Any) -> ExampleSettings:
    """The example settings that match how `config`'s bot prompts its generator."""
    from deskbot.bot.server.container import dialogue_rules

    settings = ExampleSettings(
        top_k=config.knowledge.top_k,
        history_turns=dialogue_rules(config).history_turns,
        max_history_tokens=config.generator.max_history_tokens,
        bot_name=config.name,
    )
    return replace(settings, **overrides)


def token_counter(model: str, cache_dir: Path | None = None) -> Callable[[str], int]:
    """The generator's token count of a text, as the served local generator counts it."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_folder(model, cache_dir))

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    return count


def export_project_examples(
    config: BotConfig,
    *,
    settings: ExampleSettings | None = None,
    store: SqlConversationStore | None = None,
    exclude_labels: tuple[int, ...] = (),
    progress: bool = True,
) -> GeneratorExport:
    """The examples of `config`'s project: its store, FAQ index and intents file.

    Args:
        config: the bot's config.
        settings: default `project_settings(config)`.
        store: default the config's database (migrated).
        exclude_labels: agent labels in quarantine.
        progress: show a progress bar.
    """
    from deskbot.bot.server.container import build_store
    from deskbot.knowledge.embedding.embedder import build_embedder

    # Embedded as `deskbot ingest` embeds the index: the query vectors it was built for.
    embedder = build_embedder(config.knowledge.embedder, runtime=config.limits.inference_runtime)
    retriever = FaissRetriever(
        config.knowledge.index_dir,
        embedder,
        main_weight=config.knowledge.main_weight,
        distinct_sections=config.knowledge.distinct_sections,
    )
    utterances: dict[str, list[str]] = {}
    if config.intents.train_data is not None and config.intents.train_data.is_file():
        utterances, _ = read_examples(config.intents.train_data)
    return export_examples(
        store if store is not None else build_store(config),
        retriever,
        settings=settings or project_settings(config),
        count_tokens=token_counter(config.generator.model, config.generator.cache_dir),
        utterances=utterances,
        exclude_labels=exclude_labels,
        progress=progress,
    )
