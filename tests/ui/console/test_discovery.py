"""The Discover tab's review files (#20 item 3): candidates named, merged, split and
cleaned, and approved into the examples `deskbot train intents` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deskbot.training.data.datasets import load_project_intents
from deskbot.ui.console.discovery import DiscoveryReview, ReviewError


def _candidate(name: str, texts: list[str], prefix: str) -> dict[str, Any]:
    return {
        "name": name,
        "size": len(texts),
        "cohesion": 0.7,
        "keywords": [name],
        "representatives": texts[:5],
        "member_ids": [f"{prefix}{i}" for i in range(len(texts))],
        "member_texts": texts,
    }


CARD = ["my card has not arrived", "when will my card come", "still waiting for the card"]
RATE = ["which exchange rate do you use", "is your currency rate fair"]
PIN = ["how do I unblock my pin", "my pin is blocked", "pin locked after three tries"]


@pytest.fixture
def review(tmp_path: Path) -> DiscoveryReview:
    folder = tmp_path / "var" / "discovery"
    folder.mkdir(parents=True)
    doc = {"candidates": [_candidate("card", CARD, "a"), _candidate("rate", RATE, "r")]}
    (folder / "candidates.json").write_text(json.dumps(doc), encoding="utf-8")
    return DiscoveryReview(folder, tmp_path / "data" / "intents" / "discovered.csv")


def test_candidates_by_size_then_merged_split_and_cleaned(review: DiscoveryReview) -> None:
    assert [g["name"] for g in review.groups()] == ["card", "rate"]
    merged = review.merge("c1", "c2")
    assert len(merged["members"]) == 5 and [g["id"] for g in review.groups()] == ["c1"]
    a, b = review.split("c1", ["r0", "r1"])
    assert {m["text"] for m in b["members"]} == set(RATE) and len(a["members"]) == 3
    assert review.remove("c1", ["a2"]) == 1
    assert [m["id"] for m in review.group("c1")["members"]] == ["a0", "a1"]
    assert review.rename(b["id"], "exchange_rate")["name"] == "exchange_rate"


def test_a_split_with_nothing_ticked_follows_the_embeddings(
    review: DiscoveryReview, embedder: Any
) -> None:
    review.merge("c1", "c2")
    a, b = review.split("c1", [], embedder.embed)
    sides = [{m["text"] for m in a["members"]}, {m["text"] for m in b["members"]}]
    assert set(CARD) in sides and set(RATE) in sides


def test_approved_members_become_training_examples_once(
    review: DiscoveryReview, tmp_path: Path
) -> None:
    calls: list[str] = []
    assert (
        review.approve("c1", "card_arrival", by="alice", before_write=lambda: calls.append("x"))
        == 3
    )
    assert calls == ["x"] and [g["id"] for g in review.groups()] == ["c2"]
    train = tmp_path / "train.csv"
    train.write_text("text,category\nhello,greet\nhi there,greet\n", encoding="utf-8")
    data = load_project_intents(train, review.discovered)
    assert data.counts() == {"card_arrival": 3, "greet": 2}
    assert review.approved()[0]["intent"] == "card_arrival"


def test_a_refused_change_writes_nothing(review: DiscoveryReview) -> None:
    with pytest.raises(ReviewError, match="letters, digits"):
        review.approve("c1", "card arrival!", by="alice", before_write=lambda: None)

    def audit_fails() -> None:
        raise ReviewError("the audit row could not be written")

    with pytest.raises(ReviewError, match="audit"):
        review.approve("c1", "card_arrival", by="alice", before_write=audit_fails)
    assert not review.discovered.exists() and len(review.groups()) == 2
    with pytest.raises(ReviewError, match="every member"):
        review.remove("c2", ["r0", "r1"])
    assert len(review.group("c2")["members"]) == 2
    with pytest.raises(ReviewError, match="two different"):
        review.merge("c1", "c1")


def test_an_intent_the_bot_knows_is_taken_as_named_even_where_a_typed_one_is_refused(
    review: DiscoveryReview, tmp_path: Path
) -> None:
    # BANKING77's own name, which the demo's model has: picked from the list, it was
    # refused ("letters, digits ...") and the candidate could not be approved.
    name = "reverted_card_payment?"
    with pytest.raises(ReviewError, match="letters, digits"):
        review.approve("c2", name, by="alice", before_write=lambda: None)
    with pytest.raises(ReviewError, match="letters, digits"):
        review.rename("c2", "card payment?", known=[name])
    assert review.rename("c2", name, known=[name])["name"] == name
    assert review.approve("c2", name, by="alice", before_write=lambda: None, known=[name]) == 2
    data = load_project_intents(None, review.discovered)
    assert data.counts() == {name: 2}


def test_a_new_discovery_run_starts_a_new_review(review: DiscoveryReview) -> None:
    review.rename("c1", "card_arrival")
    doc = {"candidates": [_candidate("pin", PIN, "p")]}
    review.candidates_file.write_text(json.dumps(doc), encoding="utf-8")
    assert [g["name"] for g in review.groups()] == ["pin"]
    review.candidates_file.write_text("{not json", encoding="utf-8")
    with pytest.raises(ReviewError, match="not JSON"):
        review.groups()
