"""What the index tests share: a small FAQ about cards, exchange rates and PINs."""

from __future__ import annotations

from pathlib import Path

import yaml

ENTRIES = [
    {
        "id": "card-arrival",
        "question": "My new card has not arrived yet",
        "answer": "Cards arrive in 3 to 5 days.",
        "intent": "card_arrival",
    },
    {
        "id": "exchange",
        "question": "What exchange rate do you use?",
        "answer": "The interbank rate.",
        "intent": "exchange_rate",
    },
    {
        "id": "pin",
        "question": "My PIN is blocked",
        "answer": "Unblock it at an ATM.",
        "intent": "pin_blocked",
    },
]


def write_faq(path: Path, entries: list[dict[str, str]]) -> Path:
    """`entries` as an FAQ YAML file at `path`."""
    path.write_text(yaml.safe_dump({"entries": entries}), encoding="utf-8")
    return path
