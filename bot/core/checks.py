"""Checked settings: pydantic types with the messages an operator can act on.

A settings class declares what each key accepts next to the key, with the strict types
and constraints below; a failed check is one line naming the key and what to fix, e.g.
``knowledge.top_k must be at least 1, got 0``. `settings` makes a frozen pydantic
dataclass of a class that raises `ConfigError` with that line, whether it is built from
a file or by a caller (``LimitsConfig(ip_burst=0)``, ``dataclasses.replace(...)``).

Example:
    >>> @settings("retrain")
    ... class Retrain:
    ...     epochs: Annotated[Integer, at_least(1)] = 2
    >>> Retrain(epochs=0)                          # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ConfigError: retrain.epochs must be at least 1, got 0
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import field
from typing import Annotated, Any, TypeVar, cast, dataclass_transform

import pydantic
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Strict, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from deskbot.bot.core.errors import ConfigError
from deskbot.knowledge.files.safe_yaml import brief

__all__ = [
    "Count",
    "Flag",
    "Integer",
    "Number",
    "PositiveNumber",
    "Text",
    "TextList",
    "at_least",
    "describe",
    "fail",
    "not_below",
    "one_of",
    "positive",
    "settings",
    "within",
]

T = TypeVar("T")
V = TypeVar("V")

# YAML's types as they are: "5" is not a number, 1 is not true, 3.0 is not an integer.
Integer = Annotated[int, Strict()]
Number = Annotated[float, Strict()]  # an integer is a number too; inf and nan are refused
Flag = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]


def _as_list(value: object) -> object:
    # One string is a list of one, as a YAML writer means by `sources: faq.yaml`.
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


TextList = Annotated[tuple[Text, ...], BeforeValidator(_as_list)]

RULE = "deskbot_rule"  # an error whose message names its keys itself
VALUE = "deskbot_value"  # an error about one value: the key path goes in front


def fail(message: str, *, whole: bool = False) -> PydanticCustomError:
    """The error to raise from a validator: `message` says what to fix. A `whole`
    message names its keys itself (a rule over several keys)."""
    return PydanticCustomError(RULE if whole else VALUE, "{message}", {"message": message})


def _check(test: Callable[[Any], bool], says: str) -> AfterValidator:
    def check(value: V) -> V:
        if not test(value):
            raise fail(f"{says}, got {brief(value)}")
        return value

    return AfterValidator(check)


def at_least(low: float) -> AfterValidator:
    """A number not under `low`."""
    return _check(lambda v: v >= low, f"must be at least {low:g}")


def not_below(low: float, note: str = "") -> AfterValidator:
    """A number not under `low` (said as ">= low", with a `note` on what `low` means)."""
    return _check(lambda v: v >= low, f"must be >= {low:g}{note}")


def positive() -> AfterValidator:
    """A number over 0."""
    return _check(lambda v: v > 0, "must be positive")


def within(low: float, high: float) -> AfterValidator:
    """A number from `low` to `high`, both included."""
    return _check(lambda v: low <= v <= high, f"must be within {low:g}..{high:g}")


def one_of(*choices: str) -> AfterValidator:
    """One of the `choices`."""
    names = [repr(c) for c in choices]
    said = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return _check(lambda v: v in choices, f"must be {said}")


Count = Annotated[Integer, at_least(1)]
PositiveNumber = Annotated[Number, positive()]


# -- a pydantic error as the line an operator reads ---------------------------------------

_PHRASES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "path_type": "must be a path string",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "dataclass_type": "must be a mapping",
    "dataclass_exact_type": "must be a mapping",
    "invalid_key": "must be a mapping with string keys",
}
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")


def _where(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unknown(errors: Sequence[ErrorDetails], known: Callable[[str], list[str]]) -> str | None:
    """All unknown keys of the first section that has any, in one message."""
    bad = [
        e
        for e in errors
        if e["type"] in _UNKNOWN or (e["type"] == "invalid_key" and e["loc"][-1] != "[key]")
    ]
    if not bad:
        return None
    parent = bad[0]["loc"][:-1]
    keys = sorted(brief(e["loc"][-1], 40) for e in bad if e["loc"][:-1] == parent)
    where = _where(parent)
    return (
        f"unknown key(s) [{', '.join(keys)}] in section '{where}'; known: {known(where)}"
        if where
        else f"unknown key(s) [{', '.join(keys)}]; known: {known(where)}"
    )


def describe(
    exc: ValidationError,
    prefix: Sequence[str] = (),
    known: Callable[[str], list[str]] = lambda _where: [],
) -> str:
    """The first problem of `exc` in one line: the key path and what to fix. Unknown keys
    come first (`known(section)` lists the keys there are), as a misspelt key is the
    likeliest cause of any other error."""
    errors: list[ErrorDetails] = [{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors()]
    unknown = _unknown(errors, known)
    if unknown:
        return unknown
    error = errors[0]
    loc, value = error["loc"], error["input"]
    if loc and loc[-1] == "[key]":  # a mapping's key, not a value, is wrong
        loc, value = loc[:-2], loc[-2]
        return f"{_where(loc)} must be a mapping with string keys, got key {brief(value)}"
    where = _where(loc)
    if error["type"] == RULE:
        return str(error["msg"])
    if error["type"] == VALUE:  # a message from `fail`: ": ..." follows the key directly
        message = str(error["msg"])
        return f"{where}{'' if message.startswith(':') else ' '}{message}"
    phrase = _PHRASES.get(str(error["type"]))
    if phrase is None:
        return f"{where}: {error['msg']}"
    if phrase == "must be a number" and isinstance(value, int) and not isinstance(value, bool):
        phrase = "must be a finite number"  # an integer too large for a float
    got = type(value).__name__ if "mapping" in phrase or "list" in phrase else brief(value)
    return f"{where} {phrase}, got {got}"


# -- classes of checked settings -----------------------------------------------------------

SETTINGS = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


@dataclass_transform(frozen_default=True, field_specifiers=(field, pydantic.Field))
def settings(section: str) -> Callable[[type[T]], type[T]]:
    """Make `cls` a frozen pydantic dataclass whose failed checks raise `ConfigError`
    naming `section` and the key (a `dataclasses.replace` is checked the same way)."""

    def make(cls: type[T]) -> type[T]:
        built = cast("type[T]", pydantic.dataclasses.dataclass(frozen=True, config=SETTINGS)(cls))
        init = built.__init__

        @functools.wraps(init)
        def checked_init(self: T, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except ValidationError as exc:
                raise ConfigError(describe(exc, (section,) if section else ())) from None

        setattr(built, "__init__", checked_init)  # noqa: B010 (mypy refuses a method assignment)
        return built

    return make
