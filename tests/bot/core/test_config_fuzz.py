"""Fuzzing the config reader: any bytes, text or YAML structure give a checked `BotConfig`
or a `ConfigError` naming the file, never another exception and never a hang."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskbot.bot.core import config as config_module
from deskbot.bot.core.config import BotConfig, ConfigError, load_config
from tests.fuzzing import (
    _bomb,
    fuzz_settings,
    guard,
    hostile_bytes,
    hostile_text,
    mapping_of,
    read_or_short_error,
    scalars,
    values,
    yaml_document,
)

pytestmark = pytest.mark.fuzz

SECTIONS: dict[str, type[Any]] = config_module._SECTIONS


def plausible(hint: Any) -> st.SearchStrategy[Any]:
    """Values of about the right type for a field (edge values included)."""
    text = hostile_text(4)
    numbers = st.one_of(
        st.integers(-5, 100_000), st.floats(allow_nan=True, allow_infinity=True), st.booleans()
    )
    origin = typing.get_origin(hint)
    if origin is tuple:
        return st.one_of(st.lists(text, max_size=3), text)
    if origin is dict:
        return st.dictionaries(text, st.one_of(text, st.lists(text, max_size=2)), max_size=3)
    if hint in (int, float) or "int" in str(hint) or "float" in str(hint):
        return numbers
    return text


def section(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    return mapping_of(
        {
            f.name: st.one_of(plausible(hints[f.name]), scalars(), values())
            for f in dataclasses.fields(cls)
        }
    )


@st.composite
def config_yaml(draw: st.DrawFn) -> bytes:
    fields: dict[str, st.SearchStrategy[Any]] = {k: section(cls) for k, cls in SECTIONS.items()}
    fields["name"] = st.one_of(hostile_text(3), scalars())
    fields["training"] = st.one_of(
        st.dictionaries(st.text(max_size=5), scalars(), max_size=3), values()
    )
    doc = draw(st.one_of(mapping_of(fields), values(sorted(fields))))
    return draw(yaml_document(doc)).encode("utf-8")


def finite_numbers(value: Any) -> bool:
    if dataclasses.is_dataclass(value):
        # `training` is passed on unchecked: the training layer's TrainingArgs checks it.
        return all(
            finite_numbers(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name != "training"
        )
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, tuple | list):
        return all(finite_numbers(v) for v in value)
    return True


@fuzz_settings("parser")
@given(data=st.one_of(config_yaml(), hostile_bytes()))
def test_config_never_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    for name in ("DESKBOT_DATABASE_URL", "DESKBOT_ACTIONS_TOKEN", "DESKBOT_GENERATOR_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with guard("config-yaml", "parser"):
        config = read_or_short_error(ConfigError, load_config, tmp_path / "deskbot.yaml", data)
        if config is None:
            return
        assert isinstance(config, BotConfig)
        assert finite_numbers(config)


# -- what the fuzzing found, kept as plain cases -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("1: a\nb: c\n", "unknown section(s) ['b', 1]", id="mixed-key-types"),
        pytest.param(
            "intents:\n  registry: ~nosuchuser-x/models\n", "not a usable path", id="tilde-user"
        ),
        pytest.param('intents:\n  registry: "a\\0b"\n', "NUL", id="nul-in-path"),
        pytest.param('database:\n  url: "sqlite:///a\\0b"\n', "database.url", id="nul-in-db-url"),
        pytest.param("dialogue:\n  generate_timeout_s: .nan\n", "finite", id="nan"),
        pytest.param("generator:\n  timeout_s: .inf\n", "finite", id="inf"),
        pytest.param("limits:\n  micro_batching: [1]\n", "true or false", id="bool-list"),
        pytest.param("server:\n  host: " + _bomb(9, 9) + "\n", "expand", id="bomb"),
        pytest.param(
            "server:\n  host: [" + "x" * 100_000 + "]\n", "must be a string", id="long-value"
        ),
        pytest.param("server:\n  port: 2001-13-45\n", "month", id="bad-date"),
    ],
)
def test_hostile_configs_are_a_short_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, says: str
) -> None:
    monkeypatch.delenv("DESKBOT_DATABASE_URL", raising=False)
    path = tmp_path / "deskbot.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert says in message and str(path) in message and len(message) < 1000, message[:300]
