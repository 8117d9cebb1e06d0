"""Slots: values the bot reads from what the customer wrote (order number, e-mail, amount).

Each slot has a regular expression that finds it in a message and a normaliser that
gives the value actions receive. A slot asked for by a form is *validated*: a reply
that holds no such value is not taken as one.

Example:
    >>> extract_slots("my order NW123456 for 25.50 EUR, mail me at ann@example.com")
    {'order_number': 'NW123456', 'email': 'ann@example.com', 'amount': '25.50'}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["SLOT_PATTERNS", "SlotSpec", "extract_slots", "slot_prompt"]


@dataclass(frozen=True)
class SlotSpec:
    """How to find one slot in a message, normalise it, and ask for it.

    Attributes:
        pattern: finds the value (group 1 if it has one, else the whole match).
        normalise: turns the match into the stored value.
        prompt: the question the form asks when the slot is missing.
        retry: what the bot says when the customer's reply holds no valid value.
    """

    pattern: re.Pattern[str]
    normalise: Callable[[str], str]
    prompt: str
    retry: str


def _amount(raw: str) -> str:
    digits = raw.replace(",", "").replace(" ", "")
    return f"{float(digits):.2f}"


SLOT_PATTERNS: dict[str, SlotSpec] = {
    # Northwind card orders: NW and six digits ("nw 123456" and "NW-123456" too).
    "order_number": SlotSpec(
        re.compile(r"\b(nw[\s-]?\d{6})\b", re.IGNORECASE),
        lambda s: re.sub(r"[\s-]", "", s).upper(),
        "What is your card order number? It starts with NW followed by 6 digits.",
        "That doesn't look like a card order number: it is NW followed by 6 digits, "
        "for example NW123456.",
    ),
    "email": SlotSpec(
        re.compile(r"\b([a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,})\b", re.IGNORECASE),
        str.lower,
        "What e-mail address should we use?",
        "That doesn't look like an e-mail address; please type it like name@example.com.",
    ),
    # An amount needs a currency sign or word so that order numbers, dates and card
    # digits are not read as money.
    "amount": SlotSpec(
        re.compile(
            r"(?:[£$€]\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?)"
            r"|(?:\b(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s?"
            r"(?:gbp|eur|usd|pounds?|euros?|dollars?)\b)",
            re.IGNORECASE,
        ),
        _amount,
        "What amount is it about?",
        "Please give the amount with its currency, for example £25.50.",
    ),
}


def _value(name: str, match: re.Match[str]) -> str:
    if name == "amount":
        whole = match.group(1) or match.group(3)
        cents = match.group(2) or match.group(4)
        return _amount(f"{whole}.{cents}" if cents else whole)
    return SLOT_PATTERNS[name].normalise(match.group(1))


def extract_slots(text: str, names: Iterable[str] | None = None) -> dict[str, str]:
    """The slot values found in `text` (only `names` if given), by slot name."""
    found: dict[str, str] = {}
    for name in names if names is not None else SLOT_PATTERNS:
        spec = SLOT_PATTERNS.get(name)
        if spec is None:
            continue
        match = spec.pattern.search(text)
        if match is not None:
            found[name] = _value(name, match)
    return found


def slot_prompt(name: str, *, retry: bool = False) -> str:
    """The question that asks for slot `name` (or asks again after an invalid reply)."""
    spec = SLOT_PATTERNS[name]
    return spec.retry if retry else spec.prompt
