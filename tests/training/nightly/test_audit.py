"""The label audit's reference: the validation window's agent labels, per intent, and
nobody's own labels set their bar. The real tiny live model, no training."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskbot.training.data.datasets import IntentDataset
from deskbot.training.data.export import AGENT, CONFIRMED, Example
from deskbot.training.nightly.audit import audit_labels
from deskbot.training.nightly.settings import RetrainSettings
from tests.conftest import TEST_INTENTS
from tests.training.conftest import unseen_rows
from tests.training.nightly.sides import TRAIN, VALIDATION, on_side

SHIFT = {y: TEST_INTENTS[(i + 1) % len(TEST_INTENTS)] for i, y in enumerate(TEST_INTENTS)}
AUDIT = RetrainSettings(audit_margin=0.1, audit_min_examples=20)


def examples(rows: list[tuple[str, str]], agent: str, first_id: int) -> list[Example]:
    return [
        Example(text, intent, AGENT, first_id + i, ((first_id + i, agent),))
        for i, (text, intent) in enumerate(rows)
    ]


@pytest.mark.slow
def test_an_agent_who_poisons_the_validation_stream_too_is_held_to_the_others_labels(
    trained_model_dir: Path, small_intents: IntentDataset
) -> None:
    rows = unseen_rows(small_intents)
    learn, validating = on_side(rows, TRAIN), on_side(rows, VALIDATION)
    per_intent = [r for y in TEST_INTENTS for r in [v for v in validating if v[1] == y][:6]]
    rest = [r for r in validating if r not in per_intent][:40]
    ann_ref = examples(per_intent, "ann", 1000)
    # mallory's labels land on both sides: 40 wrong ones in the window as well
    mallory_ref = examples([(t, SHIFT[y]) for t, y in rest], "mallory", 2000)
    confirmed = [Example(t, y, CONFIRMED, 3000 + i) for i, (t, y) in enumerate(rest)]
    night = examples(learn[:30], "ann", 1) + examples(
        [(t, SHIFT[y]) for t, y in learn[30:70]], "mallory", 100
    )
    window = ann_ref + mallory_ref + confirmed
    audit, best = audit_labels(night, trained_model_dir, window, AUDIT)
    assert audit["checked"] and set(best) == {e.key for e in night}
    mallory, ann = audit["agents"]["mallory"], audit["agents"]["ann"]
    assert mallory["flagged"] and not ann["flagged"]
    assert audit["agreement"] < audit["floor"]  # the night fails the audit
    # the night is held to the unflagged agents' labels; confirmed turns never count
    assert audit["reference"]["n"] == len(ann_ref)
    # the same without mallory's window labels: the same verdicts
    clean, _ = audit_labels(night, trained_model_dir, ann_ref, AUDIT)
    assert clean["agents"]["mallory"] == mallory and clean["floor"] == audit["floor"]

    # labels from before the night are the reference when there are enough of them
    older, _ = audit_labels(night, trained_model_dir, window, AUDIT, before_label=1999)
    assert older["reference"] == {**audit["reference"], "source": older["reference"]["source"]}
    assert "from before this night" in older["reference"]["source"]
    assert "this night's too" in audit["reference"]["source"]

    # too few agent labels in the window: no audit, and why
    few, _ = audit_labels(night, trained_model_dir, ann_ref[:19] + confirmed, AUDIT)
    assert not few["checked"] and "holds 19 agent labels" in few["reason"]
