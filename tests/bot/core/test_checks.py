"""Checked settings (deskbot.bot.core.checks) and the config classes built on them: a
failed check is one `ConfigError` line naming the key, however the settings are made."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import pytest

from deskbot.bot.core.checks import Count, Integer, Text, TextList, one_of, settings, within
from deskbot.bot.core.config import (
    ActionsConfig,
    BotConfig,
    DialogueConfig,
    GeneratorConfig,
    KnowledgeConfig,
    LimitsConfig,
    config_from_dict,
    load_config,
)
from deskbot.bot.core.errors import ConfigError


@settings("example")
class Example:
    count: Count = 1
    share: Annotated[float, within(0, 1)] = 0.5
    mode: Annotated[Text, one_of("a", "b")] = "a"
    names: TextList = ()
    size: Integer = 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "example.count must be at least 1, got 0"),
        ({"share": 2}, "example.share must be within 0..1, got 2"),
        ({"mode": "c"}, "example.mode must be 'a' or 'b', got 'c'"),
        ({"size": "3"}, "example.size must be an integer, got '3'"),
        ({"size": True}, "example.size must be an integer, got True"),
        ({"names": [1]}, "example.names[0] must be a string, got 1"),
        ({"nope": 1}, "unknown key(s) ['nope'] in section 'example'"),
    ],
)
def test_a_failed_check_is_one_line_naming_the_key(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Example(**kwargs)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_settings_are_frozen_and_replace_is_checked() -> None:
    example = Example(names=["x"])
    assert example.names == ("x",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.count = 2
    assert dataclasses.replace(example, count=5).count == 5
    with pytest.raises(ConfigError, match="example.count must be at least 1"):
        dataclasses.replace(example, count=0)


def test_config_classes_check_themselves_when_built_by_code() -> None:
    with pytest.raises(ConfigError, match="dialogue.max_clarifications must be at least 1"):
        DialogueConfig(max_clarifications=0)
    with pytest.raises(ConfigError, match="knowledge.query_encoder must be 'embedder' or"):
        dataclasses.replace(KnowledgeConfig(), query_encoder="bert")
    with pytest.raises(ConfigError, match=r"actions.url is not set"):
        ActionsConfig(intent_actions={"a": "action_a"})
    with pytest.raises(ConfigError, match="max_body_bytes must be at least 4 x"):
        LimitsConfig(max_message_chars=10_000, max_body_bytes=16_384)
    # What tests and benchmarks do with a loaded config keeps working.
    cfg = dataclasses.replace(BotConfig(), dialogue=DialogueConfig(max_out_of_scope=10**6))
    assert cfg.dialogue.max_out_of_scope == 10**6


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"server": {"prot": 80, "hots": "x"}},
            "unknown key(s) ['hots', 'prot'] in section 'server'; known: "
            "['console_idle_minutes', 'console_session_hours', 'host', 'port', 'rest_channel',"
            " 'rest_tokens', 'secure_cookies']",
        ),
        ({"server": {1: 80}}, "unknown key(s) [1] in section 'server'"),
        (
            {"actions": {"intent_actions": {1: "a"}}},
            "actions.intent_actions must be a mapping with string keys, got key 1",
        ),
        ({"actions": {"intent_actions": {"a": 1}}}, "actions.intent_actions.a must be a string"),
        ({"knowledge": {"sources": ["a", 3]}}, "knowledge.sources[1] must be a path string, got 3"),
        ({"generator": {"timeout_s": 10**400}}, "generator.timeout_s must be a finite number"),
        ({"limits": {"micro_batching": "yes"}}, "limits.micro_batching must be true or false"),
        ({"limits": {"trusted_proxies": "nginx"}}, "limits.trusted_proxies: 'nginx' is not an IP"),
        ({"privacy": {"retention_days": 0}}, "privacy.retention_days must be positive"),
        ({"name": " "}, "'name' must be a non-empty string"),
        ({"training": [1]}, "section 'training' must be a mapping, got list"),
    ],
)
def test_file_problems_name_the_key(
    tmp_path: Path, raw: dict[object, object], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw, root=tmp_path)
    assert str(err.value).startswith(message), str(err.value)


PREVIOUS_RELEASE = """\
name: Acme
database: {url: "sqlite:///var/bot.db"}
intents: {train_data: data/train.csv, test_data: data/test.csv, registry: models,
          clarify_below: 0.4}
knowledge: {sources: faq.yaml, examples: [data/train.csv], index_dir: idx, embedder: e,
            top_k: 5, min_score: 0, query_encoder: intents}
actions: {url: "http://127.0.0.1:5055/webhook", module: acts, timeout_s: 3,
          intent_actions: {lost_card: action_freeze_card},
          required_slots: {action_order: order_number}, handoff_action: action_person}
dialogue: {session_expiry_minutes: 30, max_out_of_scope: 3, max_clarifications: 1,
           max_negative_feedback: 4, form_max_attempts: 2, answer_score: 0.7,
           classify_timeout_s: 1, retrieve_timeout_s: 1.5, generate_timeout_s: 20}
limits: {max_message_chars: 1000, max_body_bytes: 4000, micro_batching: false, max_batch: 8,
         batch_wait_ms: 0, inference_threads: 2, inference_runtime: torch,
         inference_precision: int8, query_precision: int8, ip_requests_per_minute: 0,
         ip_burst: 1, session_requests_per_minute: 30, session_burst: 5,
         trusted_proxies: [10.0.0.0/8], rate_limit_redis_url: "redis://r:6379/0"}
server: {host: 0.0.0.0, port: 8080, secure_cookies: always}
generator: {backend: openai, model: m, url: "http://127.0.0.1:8001", device: cpu,
            cache_dir: cache, max_new_tokens: 64, max_history_tokens: 128, timeout_s: 10,
            retries: 0, backoff_s: 0, breaker_failures: 1, breaker_reset_s: 0,
            compile: false, stream_mode: buffer, min_similarity: 0.4, min_coverage: 0.6}
privacy: {retention_days: 90}
training: {epochs: 2}
"""


def test_a_file_of_the_previous_release_with_every_key_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "ACTIONS_TOKEN", "GENERATOR_API_KEY", "CUSTOMER_KEY"):
        monkeypatch.delenv(f"DESKBOT_{name}", raising=False)
    monkeypatch.delenv("DESKBOT_TRUSTED_PROXIES", raising=False)
    (tmp_path / "deskbot.yaml").write_text(PREVIOUS_RELEASE, encoding="utf-8")
    cfg = load_config(tmp_path)
    root = tmp_path.resolve()
    assert cfg.name == "Acme" and cfg.root == root and cfg.training == {"epochs": 2}
    assert cfg.database.url == f"sqlite:///{root / 'var' / 'bot.db'}"
    assert cfg.intents.registry == root / "models" and cfg.intents.clarify_below == 0.4
    assert cfg.knowledge.sources == (root / "faq.yaml",)
    assert cfg.knowledge.min_score == 0.0 and isinstance(cfg.knowledge.min_score, float)
    assert cfg.actions.required_slots == {"action_order": ("order_number",)}
    assert cfg.actions.timeout_s == 3.0 and isinstance(cfg.actions.timeout_s, float)
    assert cfg.limits.trusted_proxies == ("10.0.0.0/8",) and cfg.limits.inference_threads == 2
    assert cfg.generator.cache_dir == root / "cache" and cfg.generator.stream_mode == "buffer"
    assert cfg.privacy.retention_days == 90.0 and cfg.server.port == 8080


def test_secrets_come_from_the_environment_and_stay_out_of_reprs(tmp_path: Path) -> None:
    env = {
        "DESKBOT_ACTIONS_TOKEN": "tok-XYZZY",
        "DESKBOT_GENERATOR_API_KEY": "sk-XYZZY",
        "DESKBOT_CUSTOMER_KEY": "k-XYZZY",
        "DESKBOT_DATABASE_URL": "postgresql://bot@db:5432/prod",
    }
    cfg = config_from_dict({}, root=tmp_path, environ=env)
    assert cfg.actions.token == "tok-XYZZY" and cfg.generator.api_key == "sk-XYZZY"
    assert cfg.privacy.customer_key == "k-XYZZY"
    assert cfg.database.url == "postgresql://bot@db:5432/prod"
    assert "XYZZY" not in repr(cfg)
    assert "XYZZY" not in repr(GeneratorConfig(api_key="sk-XYZZY"))
    with pytest.raises(ConfigError, match="must not be written in the file"):
        config_from_dict({"generator": {"api_key": "k"}}, root=tmp_path)


def test_the_demo_config_loads_as_it_did(tmp_path: Path) -> None:
    demo = Path(__file__).parents[3] / "bot" / "demo" / "deskbot.yaml"
    (tmp_path / "deskbot.yaml").write_bytes(demo.read_bytes())
    cfg = load_config(tmp_path)
    assert cfg.name == "Northwind Bank"
    assert cfg.actions.required_slots == {"action_card_order_status": ("order_number",)}
    assert cfg.actions.intent_actions["lost_or_stolen_card"] == "action_freeze_card"
    assert cfg.knowledge.sources == ((tmp_path / "data" / "faq.yaml").resolve(),)
    assert cfg.privacy.retention_days == 90.0
