"""The fuzz suite's shared parts: hypothesis profiles, hostile inputs, a hang guard and
per-target counts.

Profiles (`DESKBOT_FUZZ_PROFILE`): `ci` (the default; fixed seeds, so CI sees the same
cases every run) and `ci-full` (new random cases each run, 10,000 per target; run by
`benchmarks/robustness/fuzz.py`). `DESKBOT_FUZZ_CASES=N` overrides the count of every target.

Hostile inputs are built from fragments that break parsers in practice (YAML alias
bombs, deep nesting, integers past Python's digit limit, impossible dates, tags, bare
carriage returns, NULs, 130 kB CSV fields, byte-order marks, invalid UTF-8), mixed with
arbitrary text and bytes, so that the search reaches them in thousands of cases rather
than by luck.
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

PROFILE_ENV = "DESKBOT_FUZZ_PROFILE"
CASES_ENV = "DESKBOT_FUZZ_CASES"

settings.register_profile(
    "ci",
    deadline=None,  # time is checked by `guard`, whose limit is a hang, not a slow case
    database=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile("ci-full", settings.get_profile("ci"), derandomize=False)

# Cases per target. The parsers are fast enough for 10,000 in CI; the API runs the real
# app (and its models for accepted messages), so CI runs fewer of its cases.
CASES = {
    "ci": {"parser": 500, "api": 50},
    "ci-full": {"parser": 10_000, "api": 10_000},
}
# A case slower than this is a hang (the limits are minutes of CPU below a real hang,
# but well above any case on a loaded 2-core CI machine).
HANG_S = {"parser": 10.0, "api": 20.0}


def profile() -> str:
    """The active fuzz profile's name."""
    name = os.environ.get(PROFILE_ENV, "ci")
    if name not in CASES:
        raise ValueError(f"{PROFILE_ENV} must be one of {sorted(CASES)}, got {name!r}")
    return name


def fuzz_settings(kind: str) -> settings:
    """The hypothesis settings of a target of `kind` ("parser" or "api").

    `DESKBOT_FUZZ_SHRINK=0` reports a failing case as found, without minimising it
    (shrinking a 140 kB input can take minutes)."""
    cases = int(os.environ.get(CASES_ENV) or CASES[profile()][kind])
    extra: dict[str, Any] = {}
    if os.environ.get("DESKBOT_FUZZ_SHRINK") == "0":
        extra["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(settings.get_profile(profile()), max_examples=cases, **extra)


# -- counts --------------------------------------------------------------------------------


@dataclass
class TargetStats:
    """What one target ran: cases, the slowest one, the cases' total time, and each
    distinct failure (exception type and where it was raised) with one message."""

    cases: int = 0
    failed_cases: int = 0
    slowest_s: float = 0.0
    busy_s: float = 0.0
    test: str = ""
    failures: dict[str, str] = field(default_factory=dict)


STATS: dict[str, TargetStats] = {}


class Hang(Exception):
    """A case ran past its time limit."""


@contextmanager
def guard(target: str, kind: str) -> Iterator[None]:
    """Count one case of `target` and fail it (`Hang`) when it runs past `HANG_S[kind]`."""
    stats = STATS.setdefault(target, TargetStats())
    limit = HANG_S[kind]

    def on_alarm(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"{target}: a case ran for more than {limit} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    stats.test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        stats.failed_cases += 1
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        key = f"{type(exc).__name__} at {where.filename}:{where.lineno}" if where else repr(exc)
        stats.failures.setdefault(key, " ".join(str(exc).split())[:200])
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        took = time.perf_counter() - started
        stats.cases += 1
        stats.busy_s += took
        stats.slowest_s = max(stats.slowest_s, took)


# -- hostile text ----------------------------------------------------------------------------

# Pieces of markup of every format read here, and characters parsers trip on.
MARKUP = [
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "\x00",
    "\x07",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\u2028",
    "\ufeff",
    "\ufffd",
    "\u202e",
    "\U0001f600",
    "e\u0301",
    ",",
    ";",
    "|",
    '"',
    "'",
    '""',
    "\\",
    "#",
    "## ",
    "# Title?\n",
    "===\n",
    "---\n",
    "...\n",
    "```\n",
    "~~~",
    "<!--",
    "-->",
    "<!-- id: x; intent: y; tags: a, b -->",
    "<h1>",
    "</h1>",
    "<h2>Q?</h2>",
    "<p>",
    "<pre>",
    "</pre>",
    "<script>",
    "</script>",
    "<title>",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "<![CDATA[",
    "[a](b)",
    "[x]{y}",
    "- ",
    "? ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "!!binary ",
    "!!python/object/apply:os.system ['true']",
    "!!set ",
    "!!omap ",
    "!!timestamp ",
    "!!float ",
    "!!int ",
    "<<: ",
    "%YAML 1.1\n",
    "~",
    "~root/",
    "null",
    "true",
    "0x1F",
    "1e999",
    "-.inf",
    ".nan",
    "2001-13-45",
    "2001-02-30 25:61:00",
    "text",
    "category",
    "question",
    "answer",
    "intent",
    "tags",
    "id",
    "url",
    "entries",
    "nlu",
    "examples",
    "alternatives",
    "sqlite:///",
    "postgresql://",
    "http://127.0.0.1:1/",
    "../",
    "/dev/zero",
]


def alias_bomb(width: int, depth: int) -> str:
    """A YAML alias bomb ("billion laughs"): width**depth leaves from a few lines."""
    parts = [f"&l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, depth):
        refs = ", ".join([f"*l{level - 1}"] * width)
        parts.append(f"&l{level} [{refs}]")
    return "[" + ", ".join(parts) + "]"


_bomb = alias_bomb  # the name the intents and config fuzz tests import


def assert_short_error(
    error: type[Exception], read: Callable[[Path], object], path: Path, data: bytes, says: str
) -> None:
    """Write `data` to `path` and check that `read(path)` fails with an `error` that says
    `says` in under 1,000 characters (a hostile file's message stays short)."""
    path.write_bytes(data)
    with pytest.raises(error) as info:
        read(path)
    message = str(info.value)
    assert says in message and len(message) < 1000, message[:300]


T = TypeVar("T")


def read_or_short_error(
    error: type[Exception], read: Callable[[Path], T], path: Path, data: bytes
) -> T | None:
    """Write `data` to `path` and read it: what `read` returns, or None where it fails with
    an `error` that names the file in under 2,000 characters (any other exception escapes)."""
    path.write_bytes(data)
    try:
        return read(path)
    except error as exc:
        message = str(exc)
        assert str(path) in message and len(message) < 2000, message[:300]
        return None


RAW_YAML = [
    alias_bomb(9, 9),
    alias_bomb(30, 6),
    "&r [*r]",
    "&m {a: *m}",
    "[" * 3000 + "]" * 3000,
    "{a: " * 3000 + "1" + "}" * 3000,
    "- " * 2000 + "x",
    "0b" + "1" * 20_000,
    "1" * 5000,
    "0o" + "7" * 8000,
    "2001-13-45",
    "2001-02-30",
    "!!binary '@@@'",
    "!!python/object/apply:os.system ['true']",
    "!!timestamp 'not a date'",
    "!!int 'x'",
    "!!float 'x'",
    "!!set {a, b}",
    "!!omap [a, b]",
    "{<<: [1, 2]}",
    "{<<: *nope}",
    "{? [a, b] : c}",
    "{[a]: b}",
    "'\\x00'",
    '"\\0\\x07\\u202e"',
    '"~nosuchuser/x"',
    ".nan",
    ".inf",
    "-.inf",
    "1e400",
    "null",
    "~",
    "''",
    "[]",
    "{}",
]

# Repeat counts of a fragment: mostly small, sometimes long.
REPEATS = st.sampled_from([1, 1, 1, 2, 3, 10, 50, 200, 1000])
# Now and then one run past csv's 131,072-character field limit (few: they are slow).
HUGE = st.sampled_from(["x", "a b", " ", "\t", "<!--", "<a ", "#", "é", ",", '"'])
_CHARS = st.characters(codec="utf-8")  # any character a UTF-8 file can hold


@st.composite
def hostile_text(draw: st.DrawFn, max_pieces: int = 24) -> str:
    """Arbitrary text, markup fragments and long runs, mixed."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.text(_CHARS, max_size=12),
                st.sampled_from(MARKUP),
                st.tuples(st.sampled_from([*MARKUP, "x", "a b", "é"]), REPEATS).map(
                    lambda t: t[0] * t[1]
                ),
            ),
            max_size=max_pieces,
        )
    )
    if draw(st.integers(0, 60)) == 0:
        pieces.insert(draw(st.integers(0, len(pieces))), draw(HUGE) * 140_000)
    return "".join(pieces)


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Hostile text as UTF-8, sometimes with a BOM or broken by invalid bytes; or any bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    data = draw(hostile_text()).encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x00"]))
        data = data[:at] + bad + data[at:]
    return data


# -- structured documents -----------------------------------------------------------------------


def scalars() -> st.SearchStrategy[Any]:
    """Scalars YAML and JSON can hold, edge values included."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([0, -1, 1, 2**31, -(2**63), 10**4300 - 1]),
        st.floats(allow_nan=True, allow_infinity=True),
        hostile_text(max_pieces=6),
    )


def values(keys: list[str] | None = None) -> st.SearchStrategy[Any]:
    """Nested lists and mappings of scalars (mapping keys from `keys` or any text)."""
    key = st.one_of(st.sampled_from(keys), hostile_text(max_pieces=3)) if keys else st.text()
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(key, inner, max_size=4),
        ),
        max_leaves=12,
    )


@st.composite
def mapping_of(
    draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]], extra: bool = True
) -> dict[str, Any]:
    """A mapping of some of `fields` (each with its strategy), maybe an unknown key."""
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=len(fields)))
    out = {name: draw(fields[name]) for name in chosen}
    if extra and draw(st.integers(0, 7)) == 0:
        out[draw(hostile_text(max_pieces=2))] = draw(scalars())
    return out


_RAW_MARK = "RAWYAML{}X"


@st.composite
def yaml_document(draw: st.DrawFn, value: Any) -> str:
    """`value` as YAML (block or flow style), with some scalars swapped for raw hostile
    YAML (bombs, tags, deep nesting) and, sometimes, hostile text spliced in."""
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        if draw(st.integers(0, 5)) == 0:
            raws.append(draw(st.sampled_from(RAW_YAML)))
            return _RAW_MARK.format(len(raws) - 1)
        return v

    value = swap(value)
    try:
        text = yaml.dump(
            value,
            Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),  # libyaml's: faster
            allow_unicode=draw(st.booleans()),
            default_flow_style=draw(st.sampled_from([False, None, True])),
            sort_keys=False,
            width=draw(st.sampled_from([80, 10_000])),
        )
    except (yaml.YAMLError, ValueError):
        text = json.dumps(value, default=str)
    for i, raw in enumerate(raws):
        text = text.replace(_RAW_MARK.format(i), raw, 1)
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(hostile_text(max_pieces=4)) + text[at:]
    return text
