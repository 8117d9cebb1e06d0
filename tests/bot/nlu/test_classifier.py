"""The intent classifier's ONNX Runtime path predicts what its PyTorch path predicts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEXTS = [
    "my card hasn't arrived yet",
    "hi",
    "I was charged twice for the same coffee this morning, can you refund one of them? " * 12,
    "Why is there a fee on my transfer?",
    "what is the exchange rate",
    "I want my money back",
]


def test_intent_classifier_gives_the_same_predictions_on_onnx(
    trained_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deskbot.bot.nlu.classifier import TransformerIntentClassifier

    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("DESKBOT_CACHE_DIR", str(cache_dir))
    texts = TEXTS
    fast = TransformerIntentClassifier(trained_model_dir, runtime="onnx", num_threads=1)
    slow = TransformerIntentClassifier(trained_model_dir, runtime="torch", num_threads=1)
    assert fast.runtime == "onnx" and slow.runtime == "torch"
    # ONNX Runtime serving: the PyTorch copy of the encoder's weights is never loaded
    assert fast._encoder is None and slow._encoder is not None
    assert os.listdir(cache_dir / "onnx")
    for a, b in zip(fast.predict(texts), slow.predict(texts), strict=True):
        assert a.intent == b.intent
        assert a.confidence == pytest.approx(b.confidence, abs=1e-3)
        assert [label for label, _ in a.ranking] == [label for label, _ in b.ranking]
    with pytest.raises(ValueError, match="runtime"):
        TransformerIntentClassifier(trained_model_dir, runtime="tvm")


def test_int8_classifier_runs_the_quantised_graph_and_ranks_alike(
    trained_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deskbot.bot.nlu.classifier import TransformerIntentClassifier

    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("DESKBOT_CACHE_DIR", str(cache_dir))
    fp32 = TransformerIntentClassifier(trained_model_dir, num_threads=1)
    int8 = TransformerIntentClassifier(trained_model_dir, num_threads=1, precision="int8")
    assert int8.runtime == "onnx" and int8._onnx.precision == "int8"
    assert any(name.endswith(".int8.onnx") for name in os.listdir(cache_dir / "onnx"))
    pairs = list(zip(fp32.predict(TEXTS), int8.predict(TEXTS), strict=True))
    # on average int8 stays within the old per-text bound
    assert sum(abs(a.confidence - b.confidence) for a, b in pairs) / len(pairs) <= 0.05
    for a, b in pairs:
        # int8 moves a confidence by up to 0.07 on this test's 36-step model on the current
        # CI machine (0.96 -> 0.89; the test failed at 0.05 before any code changed): 0.1
        # still catches a wrong graph, and the next line checks the ranking directly.
        assert b.confidence == pytest.approx(a.confidence, abs=0.1)
        assert b.ranking[0][0] in [label for label, _ in a.ranking[:2]]
    # quantised arithmetic, not the float graph under another name
    assert [p.confidence for p in int8.predict(TEXTS)] != [
        p.confidence for p in fp32.predict(TEXTS)
    ]
    torch_int8 = TransformerIntentClassifier(
        trained_model_dir, runtime="torch", num_threads=1, precision="int8"
    )
    assert torch_int8.runtime == "torch" and torch_int8.predict(TEXTS[:1])[0].ranking
    with pytest.raises(ValueError, match="precision"):
        TransformerIntentClassifier(trained_model_dir, precision="fp16")
