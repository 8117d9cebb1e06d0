"""The checkable facts of a text: numbers, amounts, percentages, times, durations, addresses.

The grounding guard (`deskbot.bot.generation.guard`) refuses a reply sentence with a
fact that no retrieved passage states. Facts are normalised before they are
compared: "£1,000" and "1000 pounds" are both ("gbp", "1000"); "7 working days" is
("7", "working", "day") and is not supported by "7 days"; a range "3 to 5 working
days" states both ends.

Example:
    >>> sorted(extract_facts("Express delivery costs £10 and takes 1-2 working days.").money)
    [('gbp', '10')]
    >>> missing_facts(extract_facts("It costs £15."), extract_facts("It costs £10."))
    ['£15']
"""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass, field

from deskbot.bot.generation.prompting import strip_citations

__all__ = ["Facts", "clean_text", "extract_facts", "missing_facts"]

_NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "million": 1000000,
    "a": 1, "an": 1, "one": 1, "single": 1,
}  # fmt: skip
# "one", "a" and "an" count only before a unit ("a day", "one week"), never alone.
_WEAK_NUMBER_WORDS = {"a", "an", "one", "single"}
_NUM = r"(?:\d[\d,]*(?:\.\d+)?|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
_UNITS = {
    "second": "second", "sec": "second", "minute": "minute", "min": "minute", "hour": "hour",
    "hr": "hour", "day": "day", "week": "week", "month": "month", "year": "year",
    "night": "night", "weekday": "day",
}  # fmt: skip
_DURATION = re.compile(
    rf"\b(?P<num>{_NUM})(?:(?:\s*(?:-|–|to|or|and)\s*)(?P<num2>{_NUM}))?"
    r"\s*(?:-\s*)?(?P<qual>working|business|calendar|banking|full)?\s*(?:-\s*)?"
    r"(?P<unit>seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weekdays?|weeks?|months?|years?|nights?)\b",
    re.IGNORECASE,
)
_MONEY = re.compile(
    r"(?P<cur>[£$€])\s?(?P<val>\d[\d,]*(?:\.\d+)?)\s?(?P<mult>k|m|bn|million|billion)?\b"
    r"|\b(?P<val2>\d[\d,]*(?:\.\d+)?)\s?(?P<cur2>gbp|eur|usd|chf|pounds?|euros?|dollars?|pence|p)\b",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"(?P<val>\d+(?:\.\d+)?)\s?(?:%|per\s?cent\b)", re.IGNORECASE)
_TIME = re.compile(
    r"\b(?P<h>\d{1,2})[:.](?P<m>\d{2})\s?(?P<ampm>am|pm)?\b|\b(?P<h2>\d{1,2})\s?(?P<ampm2>am|pm)\b",
    re.IGNORECASE,
)
_URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"')\]]+"
    r"|\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co\.uk|uk|eu|example|bank|app|help)\b(?:/[^\s<>\"')\]]*)?",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d ()-]{6,}\d(?![\w.])")
_BARE_NUMBER = re.compile(rf"\b{_NUM}\b", re.IGNORECASE)


def _num(token: str) -> str:
    t = token.lower().replace(",", "")
    if t in _NUMBER_WORDS:
        return str(_NUMBER_WORDS[t])
    try:
        value = float(t)
    except ValueError:
        return t
    return str(int(value)) if value == int(value) else repr(value)


def _norm_url(url: str) -> str:
    u = url.lower().rstrip(".,;:!?/")
    u = re.sub(r"^https?://", "", u)
    return u.removeprefix("www.")


def clean_text(text: str) -> str:
    """`text` without citation markers, with plain spaces, dashes and apostrophes."""
    text = strip_citations(text)
    return (
        text.replace("\u00a0", " ")
        .replace("\u2013", "-")
        .replace("\u2014", "-")
        .replace("\u2019", "'")
    )


@dataclass
class Facts:
    """The facts of a text, normalised, each kind in its own set."""

    durations: set[tuple[str, str, str]] = field(default_factory=set)  # (number, qualifier, unit)
    money: set[tuple[str, str]] = field(default_factory=set)  # (currency, amount)
    percents: set[str] = field(default_factory=set)
    times: set[str] = field(default_factory=set)  # "HH:MM"
    urls: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)  # digits only
    numbers: set[str] = field(default_factory=set)
    # Display forms, for messages.
    shown: dict[tuple[str, object], str] = field(default_factory=dict)

    def shown_as(self, kind: str, key: object) -> str:
        """How the text wrote the fact `key` of `kind`."""
        return self.shown.get((kind, key), str(key))


_CURRENCY = {
    "£": "gbp", "gbp": "gbp", "pound": "gbp", "pounds": "gbp", "p": "gbp-p", "pence": "gbp-p",
    "€": "eur", "eur": "eur", "euro": "eur", "euros": "eur",
    "$": "usd", "usd": "usd", "dollar": "usd", "dollars": "usd", "chf": "chf",
}  # fmt: skip
_MULT = {"k": 1000, "m": 1000000, "million": 1000000, "bn": 10**9, "billion": 10**9}


def extract_facts(text: str) -> Facts:
    """The checkable facts of `text` (numbers normalised: "£1,000" -> ("gbp", "1000"))."""
    facts = Facts()
    text = clean_text(text)
    masked = _take_addresses(facts, text)
    _take_phones(facts, masked)
    _take_money(facts, masked)
    _take_percents(facts, masked)
    _take_times(facts, masked)
    _take_durations(facts, masked)
    _take_numbers(facts, masked)
    return facts


def missing_facts(got: Facts, have: Facts) -> list[str]:
    """The facts of `got` that `have` does not state, as `got` writes them.

    A number may be stated as part of another fact (the "2" of "2 working days"), a
    phone number as digits anywhere, an hour or minute as part of a time.
    """
    numbers = have.numbers | {d[0] for d in have.durations} | {m[1] for m in have.money}
    numbers |= have.percents
    digits = {re.sub(r"\D", "", n) for n in numbers}
    clock = {t.split(":")[0].lstrip("0") or "0" for t in have.times}
    clock |= {t.split(":")[1] for t in have.times}
    exact: list[tuple[str, Set[object], Set[object]]] = [
        ("duration", got.durations, have.durations),
        ("money", got.money, have.money),
        ("percent", got.percents, have.percents),
        ("time", got.times, have.times),
    ]
    missing = [
        got.shown_as(kind, k) for kind, mine, theirs in exact for k in mine if k not in theirs
    ]
    missing += [got.shown_as("url", u) for u in got.urls if not _url_stated(u, have.urls)]
    missing += [got.shown_as("email", e) for e in got.emails if e not in have.emails]
    missing += [
        got.shown_as("phone", p) for p in got.phones if p not in have.phones and p not in digits
    ]
    stated = numbers | digits | clock
    missing += [got.shown_as("number", n) for n in got.numbers if n not in stated]
    return missing


def _url_stated(url: str, stated: Set[str]) -> bool:
    # The same address, a part of a stated one, or a page under it.
    return any(url == h or h.startswith(url + "/") or url.startswith(h) for h in stated)


def _take_addresses(facts: Facts, text: str) -> str:
    """E-mail addresses and URLs, then the text with them blanked out (their digits are
    no amounts)."""
    masked = text
    for m in _EMAIL.finditer(text):
        facts.emails.add(m.group(0).lower())
        facts.shown[("email", m.group(0).lower())] = m.group(0)
        masked = masked.replace(m.group(0), " ")
    for m in _URL.finditer(masked):
        if "@" in m.group(0):
            continue
        facts.urls.add(_norm_url(m.group(0)))
        facts.shown[("url", _norm_url(m.group(0)))] = m.group(0)
        masked = masked.replace(m.group(0), " ")
    return masked


def _take_phones(facts: Facts, text: str) -> None:
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if len(digits) >= 7:
            facts.phones.add(digits)
            facts.shown[("phone", digits)] = m.group(0)


def _take_money(facts: Facts, text: str) -> None:
    for m in _MONEY.finditer(text):
        cur = (m.group("cur") or m.group("cur2") or "").lower()
        raw = m.group("val") or m.group("val2")
        value = float(raw.replace(",", ""))
        if m.group("mult"):
            value *= _MULT[m.group("mult").lower()]
        key = (_CURRENCY.get(cur, cur), _num(str(value)))
        facts.money.add(key)
        facts.shown[("money", key)] = m.group(0).strip()


def _take_percents(facts: Facts, text: str) -> None:
    for m in _PERCENT.finditer(text):
        facts.percents.add(_num(m.group("val")))
        facts.shown[("percent", _num(m.group("val")))] = m.group(0)


def _take_times(facts: Facts, text: str) -> None:
    for m in _TIME.finditer(text):
        h = int(m.group("h") or m.group("h2"))
        minutes = m.group("m") or "00"
        ampm = (m.group("ampm") or m.group("ampm2") or "").lower()
        if ampm == "pm" and h < 12:
            h += 12
        if ampm == "am" and h == 12:
            h = 0
        key = f"{h:02d}:{minutes}"
        facts.times.add(key)
        facts.shown[("time", key)] = m.group(0)


def _take_durations(facts: Facts, text: str) -> None:
    for m in _DURATION.finditer(text):
        unit = m.group("unit").lower().rstrip("s")
        unit = _UNITS.get(unit, unit)
        qual = (m.group("qual") or "").lower().replace("business", "working")
        for g in ("num", "num2"):
            if m.group(g):
                key = (_num(m.group(g)), qual, unit)
                facts.durations.add(key)
                facts.shown[("duration", key)] = m.group(0)


def _take_numbers(facts: Facts, text: str) -> None:
    for m in _BARE_NUMBER.finditer(text):
        word = m.group(0).lower()
        if word in _WEAK_NUMBER_WORDS:
            continue
        facts.numbers.add(_num(word))
        facts.shown[("number", _num(word))] = m.group(0)
