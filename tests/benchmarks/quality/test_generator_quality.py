"""The generator quality benchmark's pure parts: quantiles, the figures, the audit file.

ROUGE-L is the generator gate's (tests/training/generator/test_scoring.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.quality.generator_quality import (
    audit_rows,
    quantile,
    read_audit_labels,
    summarize,
)


def test_quantile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert quantile(values, 0.95) == 19.0
    assert quantile(values, 0.5) == 10.0
    assert quantile([3.0], 0.95) == 3.0
    assert quantile([], 0.5) is None


def _turn(kind: str, **kw: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": kw.pop("id", 0), "kind": kind, "question": "q?", "passages": [],
        "reply": "r.", "reason": "ok", "top_gold": False, "load_1m": 1.0,
        "stream": {"ttft_s": None, "tokens_per_s": None, "prompt_tokens": None},
        "sentences": [], "cited_gold": False, "gold_cited": False, "rouge_l": 0.0, "cosine": 0.0,
    }  # fmt: skip
    record.update(kw)
    return record


def _stream(ttft: float, tps: float | None) -> dict[str, Any]:
    return {"ttft_s": ttft, "tokens_per_s": tps, "prompt_tokens": 500}


def test_summary_counts_sent_replies_of_the_answered_questions() -> None:
    ok = {"guard_ok": True, "verifier": "supported"}
    records = [
        _turn("no_answer", top_gold=True),
        _turn("generated", cited_gold=True, gold_cited=True, top_gold=True, rouge_l=0.5,
              cosine=0.9, sentences=[ok, {"guard_ok": True}], stream=_stream(0.8, 10.0)),
        _turn("generated", gold_cited=True, rouge_l=0.3, cosine=0.7,
              sentences=[ok, {"guard_ok": False, "verifier": "unsupported"}],
              stream=_stream(1.2, 8.0)),
        _turn("faq", reason="unsupported facts: £15", top_gold=True, stream=_stream(0.9, None)),
        _turn("faq", reason="unsupported sentence (similarity 0.31, coverage 0.2)"),
    ]  # fmt: skip
    s = summarize(records)
    assert (s["questions"], s["answered_from_faq"], s["no_answer_below_min_score"]) == (5, 4, 1)
    assert (s["sent"], s["fell_back"], s["sent_rate"]) == (2, 2, 0.5)
    assert s["sent_rate_of_all_questions"] == 0.4
    assert s["fallback_reasons"] == {"unsupported facts": 1, "unsupported sentence": 1}
    sentences = s["sent_sentences"]
    assert sentences["sentences"] == 4 and sentences["guard_refuses_on_recheck"] == 1
    assert sentences["verifier"] == {
        "supported": 2, "unsupported": 1, "not judged (courtesy, or no verifier)": 1
    }  # fmt: skip
    c = s["correctness"]
    assert c["sent_first_citation_is_gold"] == 0.5
    assert c["sent_gold_among_citations"] == 1.0
    assert c["fell_back_top_passage_is_gold"] == 0.5
    assert c["answered_top_passage_is_gold"] == 0.5
    assert c["all_top_passage_is_gold"] == 0.6
    assert c["sent_rouge_l_to_gold_answer"]["mean"] == 0.4
    assert c["sent_cosine_to_gold_answer"]["median"] == 0.8
    speed = s["speed"]
    # The stream of the question under min_score never ran: three streams.
    assert speed["time_to_first_token_s"] == {"n": 3, "mean": 0.967, "median": 0.9, "p95": 1.2}
    assert speed["tokens_per_s_per_stream"]["n"] == 2


def test_summary_of_no_answered_question_has_no_rates() -> None:
    s = summarize([_turn("no_answer")])
    assert s["sent_rate"] is None
    assert s["correctness"]["sent_first_citation_is_gold"] is None
    assert s["speed"]["time_to_first_token_s"]["median"] is None


def test_audit_rows_hold_sent_replies_and_read_back_as_counts(tmp_path: Path) -> None:
    passages = [{"id": "card-arrival", "score": 0.8, "text": "Cards arrive in 3 days."}]
    records = [
        _turn("generated", id=0, reply="Cards arrive in 3 days [1].", passages=passages),
        _turn("faq", id=1, passages=passages),
        _turn("generated", id=2, reply="They are free.", passages=passages),
        _turn("generated", id=3, reply="Within 3 days.", passages=passages),
    ]
    rows = audit_rows(records, "base")
    assert [r["id"] for r in rows] == ["base-0", "base-2", "base-3"]
    assert rows[0]["passages"] == [{"id": "card-arrival", "text": "Cards arrive in 3 days."}]
    assert all(r["label"] == "" for r in rows)
    rows[0]["label"], rows[1]["label"] = "supported", " Contradicted "
    labelled = tmp_path / "audit.jsonl"
    lines = [json.dumps(r) for r in rows]
    lines.append(
        json.dumps({**rows[0], "id": "adapter-0", "run": "adapter", "label": "unsupported"})
    )
    labelled.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    counts = read_audit_labels(labelled)
    assert counts["base"] == {
        "replies": 3, "labelled": 2, "not_labelled": 1, "supported": 1, "contradicted": 1,
        "unsupported": 0, "contradicted_or_unsupported_rate": 0.5,
    }  # fmt: skip
    assert counts["adapter"]["unsupported"] == 1
    assert counts["adapter"]["contradicted_or_unsupported_rate"] == 1.0


def test_a_misspelt_label_or_a_broken_line_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "audit.jsonl"
    bad.write_text('{"run": "base", "label": "supported"}\n{"run": "base", "label": "wrong"}\n')
    with pytest.raises(ValueError, match=r"audit.jsonl:2: label 'wrong'"):
        read_audit_labels(bad)
    bad.write_text('{"run": "base", "label": ""}\n{not json\n')
    with pytest.raises(ValueError, match=r"audit.jsonl:2: not JSON"):
        read_audit_labels(bad)
