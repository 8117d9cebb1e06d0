"""PII redaction: measured on the labelled examples in tests/data/pii_examples.jsonl."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from deskbot.training.data.pii import PII_KINDS, PiiRedactor, iban_valid, luhn_valid

EXAMPLES = Path(__file__).parents[2] / "data" / "pii_examples.jsonl"


def _examples() -> list[dict[str, object]]:
    return [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines()]


def test_the_example_set_is_large_and_covers_every_kind() -> None:
    examples = _examples()
    assert len(examples) >= 200
    kinds = Counter(p["kind"] for e in examples for p in e["pii"])  # type: ignore[attr-defined]
    assert set(kinds) == set(PII_KINDS)
    assert sum(1 for e in examples if not e["pii"]) >= 50  # look-alikes that must stay


def test_recall_on_the_labelled_set_and_no_look_alike_is_redacted() -> None:
    redactor = PiiRedactor()
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    kept_wrongly = []
    for ex in _examples():
        out = redactor(str(ex["text"]))
        for p in ex["pii"]:  # type: ignore[attr-defined]
            total[p["kind"]] += 1
            found[p["kind"]] += p["value"] not in out
        kept_wrongly += [v for v in ex["keep"] if v not in out]  # type: ignore[attr-defined]
    recall = sum(found.values()) / sum(total.values())
    assert recall >= 0.95, {k: f"{found[k]}/{total[k]}" for k in total}
    for kind in ("card", "iban", "email"):
        assert found[kind] / total[kind] >= 0.95, kind
    assert kept_wrongly == []


def test_placeholders_name_the_kind_and_counts_carry_no_values() -> None:
    r = PiiRedactor().redact(
        "my name is Sarah Thompson, card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, "
        "mail sarah.t@example.com or call +44 7700 900123 about the £12.50 charge on 01/02/2024"
    )
    assert r.text == (
        "my name is <NAME>, card <CARD>, IBAN <IBAN>, mail <EMAIL> or call <PHONE> "
        "about the £12.50 charge on 01/02/2024"
    )
    assert r.counts == Counter(name=1, card=1, iban=1, email=1, phone=1)


def test_only_the_chosen_kinds_are_redacted() -> None:
    text = "mail ann@example.com, card 4111111111111111"
    assert PiiRedactor(["email"])(text) == "mail <EMAIL>, card 4111111111111111"
    with pytest.raises(ValueError, match="unknown PII kinds"):
        PiiRedactor(["passport"])


def test_luhn_and_iban_checks() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB83 WEST 1234 5698 7654 32")
    # An ungrouped 16-digit number that fails Luhn is an order number, not a card.
    assert PiiRedactor()("order 4111111111111112 is late") == "order 4111111111111112 is late"
    assert PiiRedactor(card_requires_luhn=True)("card 4111 1111 1111 1112") == (
        "card 4111 1111 1111 1112"
    )
