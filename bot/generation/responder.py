"""`GroundedResponder`: a generated reply that passed the guard, or the FAQ answer.

The interface the dialogue pipeline calls::

    @dataclass(frozen=True)
    class GuardDecision: ok: bool; reason: str; unsupported: tuple[str, ...] = ()

    @dataclass(frozen=True)
    class ResponderResult:
        text: str                                  # exactly what the customer was sent
        kind: Literal["generated", "faq", "clarify"]
        citations: tuple[str, ...]                 # passage ids, cited first
        decision: GuardDecision                    # the guard's verdict, logged with the turn
        generator: str | None                      # the generator's name, None when none ran
        latency_ms: dict[str, float]

    class GroundedResponder:
        def __init__(self, generator: Generator | None, guard: GroundingGuard, *,
                     min_score: float, ...): ...
        def respond(self, history: Sequence[Turn], passages: Sequence[Passage], *,
                    on_token: Callable[[str], None] | None = None) -> ResponderResult
        def stream(self, history, passages) -> Iterator[str | ResponderResult]
            # text pieces as they may be shown, then the result last

The pieces `stream` yields (and `respond` passes to `on_token`) always join to the
result's `text`: nothing the customer sees is taken back.

Decisions:

- Retrieval weak (no passage, or the best score under `min_score`): a clarifying
  question, kind "clarify"; the generator is not called.
- No generator, or it fails before anything was shown (down, timeout, open circuit,
  error): the best passage's answer verbatim, kind "faq", and not a word to the
  customer about the failure.
- Otherwise the reply streams **sentence by sentence**: each sentence is released only
  after it passed the guard, so unsupported content never reaches the customer. The
  first sentence that fails stops the generator. If no substantive sentence was shown
  yet, the customer gets the FAQ answer verbatim (courtesy sentences such as
  "I'm sorry to hear that." are held back until a substantive one passes, so a
  fallback never follows a half-answer); if some were, the reply ends after them
  (kind "generated", decision not ok, reason "truncated: ..."). `stream_mode="buffer"`
  instead checks the whole reply before showing any of it (simpler, slower to first
  text; `benchmarks/generator_grounding.py` measures both).

Example:
    >>> responder = GroundedResponder(generator, GroundingGuard(embedder), min_score=0.35)  # doctest: +SKIP
    >>> result = responder.respond(history, passages, on_token=send)                      # doctest: +SKIP
    >>> result.kind, result.citations                                                     # doctest: +SKIP
    ('generated', ('card-arrival',))
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from deskbot.bot.core.config import GeneratorConfig
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import (
    CircuitBreaker,
    Generator,
    OpenAICompatibleGenerator,
    TransformersGenerator,
)
from deskbot.bot.generation.guard import GroundingGuard, GuardDecision, split_sentences
from deskbot.bot.generation.prompting import cited_passage_ids
from deskbot.knowledge.embedding.embedder import Embedder

logger = logging.getLogger(__name__)

__all__ = [
    "CLARIFY_TEXT",
    "GroundedResponder",
    "GuardDecision",
    "ResponderResult",
    "build_generator",
    "build_responder",
]

CLARIFY_TEXT = (
    "I'm not sure I understood. Could you tell me a bit more about what you need help with?"
)
_CITATION = re.compile(r"\s?\[(\d{1,2})\]")


@dataclass(frozen=True)
class ResponderResult:
    """The reply to one customer turn (see the module docstring)."""

    text: str
    kind: Literal["generated", "faq", "clarify"]
    citations: tuple[str, ...]
    decision: GuardDecision
    generator: str | None
    latency_ms: dict[str, float] = field(default_factory=dict)


class GroundedResponder:
    """Generator + guard + fallback: the reply a customer may see.

    Args:
        generator: streams replies; None answers every turn from the FAQ.
        guard: checks every sentence before it is shown.
        min_score: under this best retrieval score the reply is a clarifying question.
        stream_mode: "sentence" (release each sentence once it passes the guard) or
            "buffer" (check the whole reply, then release it).
        timeout_s: stop waiting for the generator after this long (None: no limit);
            what passed by then is kept, or the FAQ answer is given.
        max_reply_chars: stop the generator once the reply is this long.
        clarify_text: the clarifying question.
    """

    def __init__(
        self,
        generator: Generator | None,
        guard: GroundingGuard,
        *,
        min_score: float,
        stream_mode: Literal["sentence", "buffer"] = "sentence",
        timeout_s: float | None = 30.0,
        max_reply_chars: int = 1200,
        clarify_text: str = CLARIFY_TEXT,
    ) -> None:
        if stream_mode not in ("sentence", "buffer"):
            raise ValueError(f"stream_mode must be 'sentence' or 'buffer', got {stream_mode!r}")
        self.generator = generator
        self.guard = guard
        self.min_score = min_score
        self.stream_mode = stream_mode
        self.timeout_s = timeout_s
        self.max_reply_chars = max_reply_chars
        self.clarify_text = clarify_text

    def respond(
        self,
        history: Sequence[Turn],
        passages: Sequence[Passage],
        *,
        on_token: Callable[[str], None] | None = None,
    ) -> ResponderResult:
        """The reply to the customer's latest turn; `on_token` gets each released piece."""
        result: ResponderResult | None = None
        for item in self.stream(history, passages):
            if isinstance(item, ResponderResult):
                result = item
            elif on_token is not None:
                on_token(item)
        assert result is not None
        return result

    def stream(
        self, history: Sequence[Turn], passages: Sequence[Passage]
    ) -> Iterator[str | ResponderResult]:
        """Yield the reply's pieces as they may be shown, then the `ResponderResult`."""
        started = time.perf_counter()
        latency: dict[str, float] = {}
        ranked = sorted(passages, key=lambda p: -p.score)
        best = ranked[0] if ranked else None
        if best is None or best.score < self.min_score:
            decision = GuardDecision(True, "weak retrieval: clarify")
            yield self.clarify_text
            yield self._finish("clarify", self.clarify_text, (), decision, None, latency, started)
            return
        if self.generator is None:
            yield best.text
            yield self._finish(
                "faq", best.text, (best.id,), GuardDecision(True, "no generator"), None,
                latency, started,
            )  # fmt: skip
            return
        yield from self._generate(self.generator, history, list(passages), best, latency, started)

    # - internals -

    def _generate(
        self,
        generator: Generator,
        history: Sequence[Turn],
        passages: list[Passage],
        best: Passage,
        latency: dict[str, float],
        started: float,
    ) -> Iterator[str | ResponderResult]:
        released: list[str] = []  # sentences the customer has seen
        pending: list[str] = []  # courtesy sentences held back until a substantive one
        support: list[str] = []
        failure: GuardDecision | None = None
        guard_s = 0.0
        buffer = ""
        substantive = False
        pieces = generator.compose(history, passages)
        deadline = None if self.timeout_s is None else started + self.timeout_s

        def check(sentence: str) -> tuple[bool, str]:
            """Guard one sentence; release it (with held-back ones) when it passes."""
            nonlocal guard_s, failure, substantive
            t = time.perf_counter()
            sentence = _drop_bad_citations(sentence, len(passages))
            shown = " ".join([*released, *pending, sentence])
            echo = self.guard.check_echo(shown, passages)
            verdict = self.guard.check_sentence(sentence, passages) if echo.ok else None
            guard_s += time.perf_counter() - t
            if verdict is None or not verdict.decision.ok:
                failure = echo if verdict is None else verdict.decision
                return False, ""
            if verdict.decision.reason == "ok (courtesy)":
                pending.append(sentence)
                return True, ""
            substantive = True
            if verdict.passage_id:
                support.append(verdict.passage_id)
            out = " ".join([*pending, sentence])
            prefix = " " if released else ""
            released.extend([*pending, sentence])
            pending.clear()
            return True, prefix + out

        try:
            for piece in pieces:
                if "first_token" not in latency:
                    latency["first_token"] = _ms(started)
                buffer += piece
                if self.stream_mode == "sentence":
                    parts = split_sentences(buffer)
                    # All but the last part are finished sentences.
                    if len(parts) > 1 and _ends_sentence(buffer, parts[-1]):
                        for sentence in parts[:-1]:
                            ok, out = check(sentence)
                            if not ok:
                                break
                            if out:
                                latency.setdefault("first_release", _ms(started))
                                yield out
                        if failure is not None:
                            break
                        # Keep the unfinished sentence as streamed (its trailing space too).
                        buffer = buffer[buffer.rfind(parts[-1]) :]
                if len(buffer) + sum(len(s) for s in released) > self.max_reply_chars:
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    failure = failure or GuardDecision(False, "generator timed out")
                    break
        except Exception as exc:  # GeneratorUnavailable or a model error: never lose the turn
            logger.warning(
                "generator %s failed: %s", getattr(generator, "name", "?"), type(exc).__name__
            )
            failure = GuardDecision(False, f"generator failed: {type(exc).__name__}")
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        latency["generate"] = _ms(started)
        if failure is None:
            if self.stream_mode == "buffer":
                whole = _finished(split_sentences(buffer))
                decision = self.guard.check_echo(buffer, passages)
                if not decision.ok:
                    failure = decision
                else:
                    outs: list[str] = []
                    for sentence in whole:
                        ok, out = check(sentence)
                        if not ok:
                            break
                        if out:
                            outs.append(out)
                    if failure is None and outs:
                        latency["first_release"] = _ms(started)
                        yield "".join(outs)
            else:
                for sentence in _finished(split_sentences(buffer)):
                    ok, out = check(sentence)
                    if not ok:
                        break
                    if out:
                        latency.setdefault("first_release", _ms(started))
                        yield out
        latency["guard"] = round(guard_s * 1000.0, 3)
        name = getattr(generator, "name", None)
        if self.stream_mode == "buffer" and failure is not None:
            # Nothing was shown in buffer mode: the whole reply falls back.
            released.clear()
            substantive = False
        if not substantive:
            decision = failure or GuardDecision(False, "no substantive sentence")
            yield best.text
            yield self._finish("faq", best.text, (best.id,), decision, name, latency, started)
            return
        text = " ".join(released)
        cited = cited_passage_ids(text, passages)
        citations = tuple(dict.fromkeys([*cited, *support]))
        if failure is not None:
            decision = GuardDecision(False, f"truncated: {failure.reason}", failure.unsupported)
        else:
            decision = GuardDecision(True, "ok")
        yield self._finish("generated", text, citations, decision, name, latency, started)

    def _finish(
        self,
        kind: Literal["generated", "faq", "clarify"],
        text: str,
        citations: tuple[str, ...],
        decision: GuardDecision,
        generator: str | None,
        latency: dict[str, float],
        started: float,
    ) -> ResponderResult:
        latency["total"] = _ms(started)
        logger.info(
            "responder: kind=%s guard_ok=%s reason=%s generator=%s citations=%s %.1fms",
            kind,
            decision.ok,
            decision.reason,
            generator,
            ",".join(citations),
            latency["total"],
        )
        return ResponderResult(text, kind, citations, decision, generator, dict(latency))


def _finished(sentences: list[str]) -> list[str]:
    """Drop a last sentence the token limit cut off mid-way: half a claim is not shown."""
    if sentences and not re.search(r"[.!?…][\"')\]]*$|\[\d{1,2}\]$", sentences[-1]):
        return sentences[:-1]
    return sentences


def _ends_sentence(buffer: str, last: str) -> bool:
    # The split is final once the text after the boundary has started.
    return buffer.rstrip().endswith(last) and bool(last)


def _drop_bad_citations(sentence: str, n_passages: int) -> str:
    return _CITATION.sub(
        lambda m: m.group(0) if 1 <= int(m.group(1)) <= n_passages else "", sentence
    )


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)


def build_generator(config: GeneratorConfig, *, bot_name: str = "our company") -> Generator | None:
    """The generator `config` describes (None for backend "none"); models load lazily."""
    if config.backend == "transformers":
        return TransformersGenerator(
            config.model,
            device=config.device,
            max_new_tokens=config.max_new_tokens,
            max_history_tokens=config.max_history_tokens,
            cache_dir=config.cache_dir,
            compile=config.compile,
            bot_name=bot_name,
        )
    if config.backend == "openai":
        assert config.url is not None  # checked by GeneratorConfig
        return OpenAICompatibleGenerator(
            config.url,
            model=config.model,
            api_key=config.api_key,
            timeout_s=config.timeout_s,
            retries=config.retries,
            backoff_s=config.backoff_s,
            max_new_tokens=config.max_new_tokens,
            max_history_tokens=config.max_history_tokens,
            breaker=CircuitBreaker(config.breaker_failures, config.breaker_reset_s),
            bot_name=bot_name,
        )
    return None


def build_responder(
    config: GeneratorConfig, *, embedder: Embedder, min_score: float, bot_name: str = "our company"
) -> GroundedResponder:
    """The responder for a bot's config (`BotConfig.generator`, `knowledge.min_score`).

    Example:
        >>> responder = build_responder(cfg.generator, embedder=embedder,
        ...                             min_score=cfg.knowledge.min_score, bot_name=cfg.name)  # doctest: +SKIP
    """
    guard = GroundingGuard(
        embedder, min_similarity=config.min_similarity, min_coverage=config.min_coverage
    )
    mode: Literal["sentence", "buffer"] = "buffer" if config.stream_mode == "buffer" else "sentence"
    return GroundedResponder(
        build_generator(config, bot_name=bot_name),
        guard,
        min_score=min_score,
        stream_mode=mode,
        timeout_s=config.timeout_s,
    )
