"""`GroundedResponder`: a generated reply that passed the guard, or the FAQ answer.

The interface the dialogue pipeline calls::

    @dataclass(frozen=True)
    class GuardDecision: ok: bool; reason: str; unsupported: tuple[str, ...] = ()

    @dataclass(frozen=True)
    class ResponderResult:
        text: str                                  # exactly what the customer was sent
        kind: Literal["generated", "faq"]
        citations: tuple[str, ...]                 # passage ids, cited first
        decision: GuardDecision                    # the guard's verdict, logged with the turn
        generator: str | None                      # the generator's name, None when none ran
        latency_ms: dict[str, float]

    class GroundedResponder:
        def __init__(self, generator: Generator | None, guard: GroundingGuard, *,
                     min_score: float, ...): ...
        def respond(self, history: Sequence[Turn], passages: Sequence[Passage], *,
                    on_token: Callable[[str], None] | None = None,
                    deadline: float | None = None) -> ResponderResult
        def stream(self, history, passages, *, deadline=None) -> Iterator[str | ResponderResult]
            # text pieces as they may be shown, then the result last

The pieces `stream` yields (and `respond` passes to `on_token`) always join to the
result's `text`: nothing the customer sees is taken back.

The responder composes an answer; it routes nothing. Whether the passages answer at all
(or the bot clarifies) is the dialogue policy's decision (`DialoguePolicy.ground`),
made before the responder is called. What it does:

- Only passages of at least `min_score` ground the reply (the policy passes none
  weaker as the best); with none at all, `ValueError`.
- No generator, or it fails (down, timeout, open circuit, error): the best passage's
  answer verbatim, kind "faq", and not a word to the customer about the failure.
- Otherwise **a reply is whole or not sent**: every sentence is checked by the guard as
  soon as the generator finishes it, and the first that fails stops the generator; the
  customer sees nothing until the whole reply has passed, then all of it at once. A
  reply with a failing sentence, one that ends on a lead-in with nothing after it
  ("To activate a new card, follow these steps:"), or one with no substantive
  sentence (only courtesy) is replaced by the FAQ answer verbatim (kind "faq", the
  guard's decision logged). A last sentence cut off by the token limit is dropped, the
  sentences before it stand: they passed. Streaming sentence by sentence left the
  customer with half a reply whenever a later sentence failed (46 of 52 generated
  replies in `benchmarks/quality/generator_grounding.py`'s run ended that way), and
  text once shown cannot be taken back. `stream_mode="buffer"` checks the whole reply
  only once it is complete (no early stop).

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
from collections.abc import Generator as Generator_
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deskbot.bot.core.config import GeneratorConfig
from deskbot.bot.core.metrics import ms_since
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import Generator, build_generator
from deskbot.bot.generation.guard import GroundingGuard, GuardDecision, split_sentences
from deskbot.bot.generation.prompting import cited_passage_ids, drop_invalid_citations
from deskbot.bot.generation.verifier import ClaimVerifier, find_verifier_dir
from deskbot.knowledge.embedding.embedder import Embedder

logger = logging.getLogger(__name__)

__all__ = [
    "GroundedResponder",
    "GuardDecision",
    "ResponderResult",
    "build_responder",
    "load_verifier",
]


@dataclass(frozen=True)
class ResponderResult:
    """The reply to one customer turn (see the module docstring)."""

    text: str
    kind: Literal["generated", "faq"]
    citations: tuple[str, ...]
    decision: GuardDecision
    generator: str | None
    latency_ms: dict[str, float] = field(default_factory=dict)


class GroundedResponder:
    """Generator + guard + fallback: the reply a customer may see.

    Args:
        generator: streams replies; None answers every turn from the FAQ.
        guard: checks every sentence before it is shown.
        min_score: passages under this retrieval score do not ground the reply.
        stream_mode: "sentence" (check each sentence as it is finished, stopping the
            generator at the first that fails) or "buffer" (check the whole reply once
            it is complete). Either way the customer sees the reply only whole.
        timeout_s: stop waiting for the generator after this long (None: no limit; the
            turn pipeline passes its one generate deadline to each call instead); what
            passed by then is kept, or the FAQ answer is given.
        max_reply_chars: stop the generator once the reply is this long.
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
    ) -> None:
        if stream_mode not in ("sentence", "buffer"):
            raise ValueError(f"stream_mode must be 'sentence' or 'buffer', got {stream_mode!r}")
        self.generator = generator
        self.guard = guard
        self.min_score = min_score
        self.stream_mode = stream_mode
        self.timeout_s = timeout_s
        self.max_reply_chars = max_reply_chars

    def respond(
        self,
        history: Sequence[Turn],
        passages: Sequence[Passage],
        *,
        on_token: Callable[[str], None] | None = None,
        deadline: float | None = None,
    ) -> ResponderResult:
        """The reply to the customer's latest turn; `on_token` gets each released piece."""
        result: ResponderResult | None = None
        for item in self.stream(history, passages, deadline=deadline):
            if isinstance(item, ResponderResult):
                result = item
            elif on_token is not None:
                on_token(item)
        assert result is not None
        return result

    def stream(
        self,
        history: Sequence[Turn],
        passages: Sequence[Passage],
        *,
        deadline: float | None = None,
    ) -> Iterator[str | ResponderResult]:
        """Yield the reply's pieces as they may be shown, then the `ResponderResult`.

        `deadline`: a `time.perf_counter()` value after which the generator is stopped
        (what passed the guard by then is kept), besides `timeout_s`.

        Raises:
            ValueError: no passage of at least `min_score` (the policy clarifies then).
        """
        started = time.perf_counter()
        latency: dict[str, float] = {}
        ranked = sorted(passages, key=lambda p: -p.score)
        best = ranked[0] if ranked else None
        if best is None or best.score < self.min_score:
            raise ValueError("no passage grounds an answer: the dialogue policy clarifies")
        if self.timeout_s is not None:
            own = started + self.timeout_s
            deadline = own if deadline is None else min(deadline, own)
        if self.generator is None:
            yield best.text
            yield self._finish(
                "faq", best.text, (best.id,), GuardDecision(True, "no generator"), None,
                latency, started,
            )  # fmt: skip
            return
        yield from self._generate(
            self.generator, history, list(passages), best, latency, (started, deadline)
        )

    # - internals -

    def _generate(
        self,
        generator: Generator,
        history: Sequence[Turn],
        passages: list[Passage],
        best: Passage,
        latency: dict[str, float],
        clock: tuple[float, float | None],
    ) -> Iterator[str | ResponderResult]:
        started = clock[0]
        release = _Release(self.guard, passages)
        name = getattr(generator, "name", None)
        reading = (str(name), generator.compose(history, passages))
        # Sentences are checked as they come but held back: nothing is shown before
        # the whole reply has passed.
        held, buffer = _drain(self._read(reading, release, latency, clock))
        latency["generate"] = ms_since(started)
        if release.failure is None:
            held += _drain(self._release_rest(buffer, release, latency, started))[0]
            if release.substantive and release.pending:  # a closing courtesy sentence
                held.append(" " + " ".join(release.pending))
        latency["guard"] = round(release.guard_s * 1000.0, 3)
        failure = release.failure
        text = "".join(held).strip()
        if failure is None and text.endswith(":"):
            failure = GuardDecision(False, "ends on a lead-in with nothing after it", (text,))
        if failure is not None or not release.substantive:
            decision = failure or GuardDecision(False, "no substantive sentence")
            yield best.text
            yield self._finish("faq", best.text, (best.id,), decision, name, latency, started)
            return
        latency["first_release"] = ms_since(started)
        yield text
        cited = cited_passage_ids(text, passages)
        citations = tuple(dict.fromkeys([*cited, *release.support]))
        decision = GuardDecision(True, "ok")
        yield self._finish("generated", text, citations, decision, name, latency, started)

    def _read(
        self,
        reading: tuple[str, Iterator[str]],
        release: _Release,
        latency: dict[str, float],
        clock: tuple[float, float | None],
    ) -> Generator_[str, None, str]:
        """Read the generator, releasing each finished sentence (sentence mode) until
        it ends, fails, runs long or passes the deadline; returns the unreleased text."""
        started, deadline = clock
        name, pieces = reading
        buffer = ""
        try:
            for piece in pieces:
                latency.setdefault("first_token", ms_since(started))
                buffer += piece
                if self.stream_mode == "sentence":
                    buffer = yield from self._release_finished(buffer, release)
                    if release.failure is not None:
                        break
                if len(buffer) + sum(len(s) for s in release.released) > self.max_reply_chars:
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    release.failure = release.failure or GuardDecision(False, "generator timed out")
                    break
        except Exception as exc:  # GeneratorUnavailable or a model error: never lose the turn
            logger.warning("generator %s failed: %s", name, type(exc).__name__)
            release.failure = GuardDecision(False, f"generator failed: {type(exc).__name__}")
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        return buffer

    @staticmethod
    def _release_finished(buffer: str, release: _Release) -> Generator_[str, None, str]:
        """Check the finished sentences of `buffer`; returns the unfinished rest."""
        parts = split_sentences(buffer)
        # All but the last part are finished sentences.
        if len(parts) > 1 and _ends_sentence(buffer, parts[-1]):
            yield from release.sentences(parts[:-1])
            if release.failure is None:
                # Keep the unfinished sentence as streamed (its trailing space too).
                return buffer[buffer.rfind(parts[-1]) :]
        return buffer

    def _release_rest(
        self, buffer: str, release: _Release, latency: dict[str, float], started: float
    ) -> Iterator[str]:
        """The generator is done: check what is left (all of it in buffer mode)."""
        whole = _finished(split_sentences(buffer))
        if self.stream_mode == "buffer":
            decision = self.guard.check_echo(buffer, release.passages)
            if not decision.ok:
                release.failure = decision
                return
        yield from release.sentences(whole)

    def _finish(
        self,
        kind: Literal["generated", "faq"],
        text: str,
        citations: tuple[str, ...],
        decision: GuardDecision,
        generator: str | None,
        latency: dict[str, float],
        started: float,
    ) -> ResponderResult:
        latency["total"] = ms_since(started)
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


class _Release:
    """The sentences of one reply as the guard lets them out: substantive ones at once,
    courtesy ones held back until a substantive one passes."""

    def __init__(self, guard: GroundingGuard, passages: list[Passage]) -> None:
        self.guard = guard
        self.passages = passages
        self.released: list[str] = []  # sentences the customer has seen
        self.pending: list[str] = []  # courtesy sentences held back
        self.support: list[str] = []
        self.failure: GuardDecision | None = None
        self.guard_s = 0.0
        self.substantive = False

    def sentences(self, sentences: list[str]) -> Iterator[str]:
        """The text to show for each sentence that passes, until one fails."""
        for sentence in sentences:
            ok, out = self.check(sentence)
            if not ok:
                return
            if out:
                yield out

    def check(self, sentence: str) -> tuple[bool, str]:
        """Guard one sentence; release it (with held-back ones) when it passes."""
        t = time.perf_counter()
        sentence = drop_invalid_citations(sentence, len(self.passages))
        shown = " ".join([*self.released, *self.pending, sentence])
        echo = self.guard.check_echo(shown, self.passages)
        verdict = self.guard.check_sentence(sentence, self.passages) if echo.ok else None
        self.guard_s += time.perf_counter() - t
        if verdict is None or not verdict.decision.ok:
            self.failure = echo if verdict is None else verdict.decision
            return False, ""
        if verdict.decision.reason == "ok (courtesy)":
            self.pending.append(sentence)
            return True, ""
        self.substantive = True
        if verdict.passage_id:
            self.support.append(verdict.passage_id)
        out = " ".join([*self.pending, sentence])
        prefix = " " if self.released else ""
        self.released.extend([*self.pending, sentence])
        self.pending.clear()
        return True, prefix + out


def _drain(pieces: Generator_[str, None, str] | Iterator[str]) -> tuple[list[str], str]:
    """Everything `pieces` yields, and what it returns ("" for a plain iterator)."""
    out: list[str] = []
    while True:
        try:
            out.append(next(pieces))
        except StopIteration as stop:
            return out, stop.value if isinstance(stop.value, str) else ""


def _finished(sentences: list[str]) -> list[str]:
    """Drop a last sentence the token limit cut off mid-way: half a claim is not shown."""
    if sentences and not re.search(r"[.!?…][\"')\]]*$|\[\d{1,2}\]$", sentences[-1]):
        return sentences[:-1]
    return sentences


def _ends_sentence(buffer: str, last: str) -> bool:
    # The split is final once the text after the boundary has started.
    return buffer.rstrip().endswith(last) and bool(last)


def load_verifier(path: Path) -> ClaimVerifier | None:
    """The live claim verifier under `path`, or None (and a warning) when none is trained:
    the guard then checks facts, names and word support only.

    Raises:
        ArtifactError: something is there but it is no usable verifier.
    """
    found = find_verifier_dir(path)
    if found is None:
        logger.warning(
            "guard: no claim verifier under %s (train one with `deskbot train verifier`); "
            "checking numbers, names and word overlap only: a reply that contradicts its "
            "passage in the passage's own words can pass",
            path,
        )
        return None
    verifier = ClaimVerifier(found)
    verifier.warm_up()
    logger.info("guard: claim verifier %s from %s", verifier.version, found)
    return verifier


def build_guard(config: GeneratorConfig, *, embedder: Embedder) -> GroundingGuard:
    """The guard a bot's config serves with: its thresholds, and the claim verifier when
    a generator is configured (`generator.verifier`)."""
    return GroundingGuard(
        embedder,
        min_similarity=config.min_similarity,
        min_coverage=config.min_coverage,
        verifier=load_verifier(config.verifier) if config.backend != "none" else None,
    )


def build_responder(
    config: GeneratorConfig,
    *,
    embedder: Embedder,
    min_score: float,
    bot_name: str = "our company",
    generator: Generator | None = None,
) -> GroundedResponder:
    """The responder for a bot's config (`BotConfig.generator`, `knowledge.min_score`),
    around `generator` (default: the one `build_generator` makes of `config`).

    Example:
        >>> responder = build_responder(cfg.generator, embedder=embedder,
        ...                             min_score=cfg.knowledge.min_score, bot_name=cfg.name)  # doctest: +SKIP
    """
    guard = build_guard(config, embedder=embedder)
    mode: Literal["sentence", "buffer"] = "buffer" if config.stream_mode == "buffer" else "sentence"
    # No timeout of its own: the turn pipeline gives each call its one generate deadline
    # (`dialogue.generate_timeout_s`); `generator.timeout_s` bounds the HTTP calls.
    return GroundedResponder(
        generator or build_generator(config, bot_name=bot_name),
        guard,
        min_score=min_score,
        stream_mode=mode,
        timeout_s=None,
    )
