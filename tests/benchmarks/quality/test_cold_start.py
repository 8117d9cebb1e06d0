"""The cold-start benchmark's simulated agent, on the console's real review code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from benchmarks.quality.cold_start import agent_name, review

# Three candidates: "a" is mostly card_arrival with two of exchange_rate; "b" is
# change_pin with one top_up_failed; "c" is all exchange_rate. top_up_failed is no
# candidate's majority.
CANDIDATES = {
    "a": [("m1", "card_arrival"), ("m2", "card_arrival"), ("m3", "card_arrival"),
          ("m4", "exchange_rate"), ("m5", "exchange_rate")],
    "b": [("m6", "change_pin"), ("m7", "change_pin"), ("m8", "top_up_failed")],
    "c": [("m9", "exchange_rate"), ("m10", "exchange_rate")],
}  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "var" / "discovery"
    folder.mkdir(parents=True)
    doc = {
        "candidates": [
            {
                "name": name,
                "size": len(members),
                "member_ids": [m for m, _ in members],
                "member_texts": [f"text of {m}" for m, _ in members],
            }
            for name, members in CANDIDATES.items()
        ]
    }
    (folder / "candidates.json").write_text(json.dumps(doc), encoding="utf-8")
    truth = {m: y for members in CANDIDATES.values() for m, y in members}
    return tmp_path, truth


def approved(root: Path) -> dict[str, str]:
    with open(root / "data" / "intents" / "discovered.csv", encoding="utf-8") as fh:
        return {row["ref"]: row["category"] for row in csv.DictReader(fh)}


def test_names_approves_each_candidate_as_its_majority(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, truth = project
    did = review(root, truth, budget=10, strategy="names")
    assert (did["actions"], did["approved"], did["intents_named"]) == (3, 3, 3)
    rows = approved(root)
    assert len(rows) == 10 and did["examples_mislabelled"] == 3
    assert rows["m4"] == "card_arrival" and rows["m8"] == "change_pin"


def test_removals_spend_the_spare_actions_on_the_most_wrong_members_first(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, truth = project
    did = review(root, truth, budget=4, strategy="removals")
    assert (did["actions"], did["removals"]) == (4, 1)
    rows = approved(root)
    assert "m4" not in rows and "m5" not in rows  # candidate a's two wrong members
    assert rows["m8"] == "change_pin"  # no action left for b's one


def test_splits_give_an_intent_no_candidate_is_about_its_own_candidate(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, truth = project
    did = review(root, truth, budget=6, strategy="splits")
    assert (did["splits"], did["approved"], did["removals"], did["actions"]) == (1, 4, 1, 6)
    assert did["intents_named"] == 4
    rows = approved(root)
    assert rows["m8"] == "top_up_failed"
    assert set(rows.values()) == {"card_arrival", "change_pin", "exchange_rate", "top_up_failed"}


def test_a_budget_under_the_candidates_leaves_the_smallest_unreviewed(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, truth = project
    did = review(root, truth, budget=2, strategy="splits")
    assert (did["approved"], did["splits"], did["left_unreviewed"]) == (2, 0, 1)
    assert "m9" not in approved(root)


def test_the_agent_names_a_category_the_review_refuses_without_the_odd_characters() -> None:
    assert agent_name("reverted_card_payment?") == "reverted_card_payment"
    assert agent_name("card_arrival") == "card_arrival"
