"""YAML from untrusted files: alias bombs, self-containing aliases, deep nesting, huge
integers and impossible values are refused with a short `YamlError`, quickly; ordinary
YAML (anchors included) loads as `yaml.safe_load` reads it. Each case below is one the
fuzz suite found, or one of its kind."""

from __future__ import annotations

import time

import pytest
import yaml

from deskbot.knowledge.files.safe_yaml import MAX_MESSAGE_CHARS, YamlError, brief, load_yaml
from tests.fuzzing import RAW_YAML, _bomb


def test_ordinary_yaml_loads_as_safe_load_does() -> None:
    text = "base: &b {a: 1, when: 2024-01-02}\nitems: [*b, *b, {<<: *b, c: 3}]\nn: 0x1F\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml("") is None and load_yaml("# only a comment\n") is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("a: " + _bomb(9, 9), "expand to more than", id="billion-laughs"),
        pytest.param("a: &r [*r]", "contains it", id="self-alias"),
        pytest.param("a: &m {b: *m}", "contains it", id="self-alias-mapping"),
        pytest.param("a: " + "[" * 3000 + "]" * 3000, "nested", id="deep-nesting"),
        pytest.param("a: 0b" + "1" * 20_000, "integer", id="binary-int-past-4300-digits"),
        pytest.param("a: " + "1" * 5000, "", id="decimal-int-past-4300-digits"),
        pytest.param("a: 2001-13-45", "month", id="impossible-date"),
        pytest.param("a: !!timestamp 'not a date'", "", id="bad-timestamp-tag"),
        pytest.param("a: !!int 'x'", "", id="bad-int-tag"),
        pytest.param("a: !!int ''", "", id="empty-int-tag"),
        pytest.param("a: !!float 'x'", "", id="bad-float-tag"),
        pytest.param("a: !!python/object/apply:os.system ['true']", "constructor", id="python-tag"),
    ],
)
def test_hostile_yaml_is_refused_quickly_with_a_short_message(text: str, says: str) -> None:
    started = time.perf_counter()
    with pytest.raises(YamlError) as info:
        load_yaml(text)
    assert time.perf_counter() - started < 10.0  # a hang, not a speed figure
    message = str(info.value)
    assert says in message and 0 < len(message) <= MAX_MESSAGE_CHARS + 10, message


def test_every_raw_fragment_of_the_fuzz_suite_loads_or_is_a_yaml_error() -> None:
    for fragment in RAW_YAML:
        try:
            load_yaml(f"a: {fragment}\n")
        except yaml.YAMLError as exc:
            assert str(exc)


def test_brief_cuts_long_values_in_the_middle() -> None:
    assert brief("abc") == "'abc'"
    cut = brief("x" * 10_000)
    assert len(cut) < 100 and "10,002 characters" in cut
