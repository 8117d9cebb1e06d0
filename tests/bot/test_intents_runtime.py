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
    from deskbot.bot.intents import TransformerIntentClassifier

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
