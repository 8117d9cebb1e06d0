"""The bot's configuration: one YAML file loaded into checked settings.

Paths in the file are relative to the file's folder. Only secrets and the database
URL come from the environment (`DESKBOT_DATABASE_URL`), so one file describes a bot
and the same file runs on a laptop (SQLite) and in production (PostgreSQL).

Each key is documented next to its field: the sections about the bot's data and
dialogue in `config_sections`, those about serving it in `config_serving`. The checks
are pydantic's (`deskbot.bot.core.checks`); a failed one is a `ConfigError` naming the
file, the key and what to fix.

Example:
    >>> cfg = load_config("deskbot.yaml")          # doctest: +SKIP
    >>> cfg.database.url                            # doctest: +SKIP
    'sqlite:////srv/bot/var/deskbot.db'
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import PlainValidator, TypeAdapter, ValidationError

from deskbot.bot.core.checks import Text, describe, fail, settings
from deskbot.bot.core.config_sections import (
    DATABASE_URL_ENV,
    ActionsConfig,
    ConfirmConfig,
    ContextConfig,
    DatabaseConfig,
    DialogueConfig,
    IntentsConfig,
    KnowledgeConfig,
    PrivacyConfig,
    ServerConfig,
)
from deskbot.bot.core.config_serving import GeneratorConfig, LimitsConfig
from deskbot.bot.core.config_teams import TeamRoute, TeamsConfig
from deskbot.bot.core.errors import ConfigError
from deskbot.knowledge.files.safe_yaml import brief, load_yaml, shorten

__all__ = [
    "ACTIONS_TOKEN_ENV",
    "CUSTOMER_KEY_ENV",
    "DATABASE_URL_ENV",
    "DEFAULT_CONFIG_NAME",
    "GENERATOR_API_KEY_ENV",
    "REST_TOKENS_ENV",
    "TRUSTED_PROXIES_ENV",
    "ActionsConfig",
    "BotConfig",
    "ConfigError",
    "ConfirmConfig",
    "DatabaseConfig",
    "DialogueConfig",
    "GeneratorConfig",
    "IntentsConfig",
    "KnowledgeConfig",
    "LimitsConfig",
    "PrivacyConfig",
    "ServerConfig",
    "TeamsConfig",
    "config_from_dict",
    "load_config",
]

ACTIONS_TOKEN_ENV = "DESKBOT_ACTIONS_TOKEN"
GENERATOR_API_KEY_ENV = "DESKBOT_GENERATOR_API_KEY"
CUSTOMER_KEY_ENV = "DESKBOT_CUSTOMER_KEY"
# Comma-separated; set by the deployment (the proxy's network is known there, not in
# the bot project's file).
TRUSTED_PROXIES_ENV = "DESKBOT_TRUSTED_PROXIES"
# The Rasa REST channel's tokens (server.rest_channel: token), comma-separated.
REST_TOKENS_ENV = "DESKBOT_REST_TOKENS"
DEFAULT_CONFIG_NAME = "deskbot.yaml"


def _training(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"must be a mapping, got {type(value).__name__}")
    return dict(value)


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail("'name' must be a non-empty string", whole=True)
    return value


@settings("")
class BotConfig:
    """The whole bot. `root` is the folder relative paths were resolved against."""

    name: Annotated[Text, PlainValidator(_name)] = "deskbot"
    root: Path = Path(".")
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    intents: IntentsConfig = field(default_factory=IntentsConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    actions: ActionsConfig = field(default_factory=ActionsConfig)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    teams: TeamsConfig = field(default_factory=TeamsConfig)
    # Arguments for `deskbot train intents`, checked by the training layer, not here.
    training: Annotated[dict[str, Any], PlainValidator(_training)] = field(default_factory=dict)


_SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseConfig,
    "intents": IntentsConfig,
    "knowledge": KnowledgeConfig,
    "actions": ActionsConfig,
    "dialogue": DialogueConfig,
    "limits": LimitsConfig,
    "server": ServerConfig,
    "generator": GeneratorConfig,
    "privacy": PrivacyConfig,
    "teams": TeamsConfig,
}
_FILE_KEYS = ["name", "training", *_SECTIONS]
# The secrets the environment gives: section -> (key, variable). The file may not
# write the generator's or the privacy section's (the previous release took a token).
_SECRETS = {
    "actions": ("token", ACTIONS_TOKEN_ENV),
    "privacy": ("customer_key", CUSTOMER_KEY_ENV),
    "generator": ("api_key", GENERATOR_API_KEY_ENV),
}
_ONLY_FROM_ENVIRONMENT = ("privacy", "generator")


def load_config(path: str | os.PathLike[str]) -> BotConfig:
    """Read a config file, resolve its paths and apply the environment.

    Raises:
        ConfigError: naming the file and what to fix.
    """
    file = Path(path)
    if file.is_dir():
        file = file / DEFAULT_CONFIG_NAME
    if not file.is_file():
        raise ConfigError(f"{file}: no such config file (create one with `deskbot init DIR`)")
    try:
        raw = load_yaml(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{file}: the top level must be a mapping of sections, got {type(raw).__name__}"
        )
    try:
        return config_from_dict(raw, root=file.parent.resolve(), environ=os.environ)
    except ConfigError as exc:
        # Shortened: a message may quote a value of the file, which can be of any size.
        raise ConfigError(f"{file}: {shorten(str(exc))}") from None


def config_from_dict(
    raw: dict[str, Any], *, root: Path, environ: Mapping[str, str] | None = None
) -> BotConfig:
    """Build a `BotConfig` from a parsed mapping; relative paths are resolved against `root`."""
    data: dict[str, Any] = {**_sections(raw), "root": root}
    for section in _ONLY_FROM_ENVIRONMENT:
        key, variable = _SECRETS[section]
        if key in data[section]:
            raise ConfigError(f"{section}.{key} must not be written in the file: set {variable}")
    if "rest_tokens" in data["server"]:
        raise ConfigError(
            f"server.rest_tokens must not be written in the file: set {REST_TOKENS_ENV}"
        )
    try:
        config = _reader().validate_python(data, context={"root": root})
    except ValidationError as exc:
        raise ConfigError(describe(exc, known=_known_keys)) from None
    return _with_environment(config, environ or {})


@functools.cache
def _reader() -> TypeAdapter[BotConfig]:
    return TypeAdapter(BotConfig)


def _sections(raw: dict[Any, Any]) -> dict[str, Any]:
    """The file's top level: known sections, each a mapping (empty when left out)."""
    unknown = set(raw) - set(_FILE_KEYS)
    if unknown:
        names = "[" + ", ".join(sorted(brief(k, 40) for k in unknown)) + "]"
        raise ConfigError(f"unknown section(s) {names}; known: {sorted(_FILE_KEYS)}")
    data = {k: v for k, v in raw.items() if k == "name"}
    for key in ("training", *_SECTIONS):
        value = raw.get(key) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"section '{key}' must be a mapping, got {type(value).__name__}")
        data[key] = value
    return data


def _known_keys(section: str) -> list[str]:
    if section.startswith("actions.confirm."):  # one action's confirmation
        return sorted(f.name for f in dataclasses.fields(ConfirmConfig))
    if section == "dialogue.context":
        return sorted(f.name for f in dataclasses.fields(ContextConfig))
    if section.startswith("teams.routes."):  # one team's route
        return sorted(f.name for f in dataclasses.fields(TeamRoute))
    cls = _SECTIONS.get(section)
    return sorted(f.name for f in dataclasses.fields(cls)) if cls else sorted(_FILE_KEYS)


def _with_environment(config: BotConfig, env: Mapping[str, str]) -> BotConfig:
    """`config` with what the deployment's environment gives (it wins over the file)."""
    changes: dict[str, Any] = {}
    if env.get(DATABASE_URL_ENV):
        changes["database"] = DatabaseConfig(url=env[DATABASE_URL_ENV])
    for section, (key, name) in _SECRETS.items():
        if env.get(name):
            changes[section] = dataclasses.replace(getattr(config, section), **{key: env[name]})
    if env.get(TRUSTED_PROXIES_ENV):
        proxies = tuple(p.strip() for p in env[TRUSTED_PROXIES_ENV].split(",") if p.strip())
        try:
            changes["limits"] = dataclasses.replace(config.limits, trusted_proxies=proxies)
        except ConfigError as exc:
            raise ConfigError(f"{TRUSTED_PROXIES_ENV}: {exc}") from None
    if env.get(REST_TOKENS_ENV):
        tokens = tuple(t.strip() for t in env[REST_TOKENS_ENV].split(",") if t.strip())
        if any(len(t) < 16 for t in tokens):
            raise ConfigError(f"{REST_TOKENS_ENV}: each token needs 16 characters or more")
        changes["server"] = dataclasses.replace(config.server, rest_tokens=tokens)
    return dataclasses.replace(config, **changes) if changes else config
