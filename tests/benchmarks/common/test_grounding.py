"""The generator benchmarks' question sample: seeded, stratified, from the test split only."""

from __future__ import annotations

import csv
from collections import Counter

from benchmarks.common import DATA
from benchmarks.common.grounding import sample_questions


def test_the_sample_takes_per_intent_test_questions_of_the_intents_asked_for() -> None:
    intents = {"card_arrival", "exchange_rate", "top_up_failed"}
    sample = sample_questions(3, seed=1, intents=intents)
    assert Counter(i for i, _ in sample) == dict.fromkeys(intents, 3)
    test_rows = {(r["category"], r["text"]) for r in csv.DictReader((DATA / "test.csv").open())}
    assert set(sample) <= test_rows
    assert len(set(sample)) == len(sample)


def test_the_sample_is_fixed_by_its_seed_and_shuffled_across_intents() -> None:
    intents = {"card_arrival", "exchange_rate", "top_up_failed", "age_limit"}
    first = sample_questions(4, seed=7, intents=intents)
    assert sample_questions(4, seed=7, intents=intents) == first
    assert sample_questions(4, seed=8, intents=intents) != first
    # Not grouped by intent: a `--limit` cut keeps several intents.
    assert len({i for i, _ in first[:6]}) > 1
