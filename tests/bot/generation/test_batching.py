"""`MicroBatchingGenerator`: concurrent replies share one decoding batch.

The fast tests use a scripted batch generator (each reply is its question, a word a
step) so that they can say exactly which calls shared a batch; the slow one shares a
batch of the real offline model.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence

import pytest

from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import (
    GeneratorUnavailable,
    MicroBatchingGenerator,
    TransformersGenerator,
)
from deskbot.bot.generation.prompting import ChatMessage

PASSAGE = Passage(
    id="card-arrival",
    text="Cards are posted within 2 working days of ordering and usually arrive 3 to 5 working days later.",
    score=0.8,
    source="faq",
)


class EchoBatches:
    """Replies to each conversation with its last message, one word a decoding step."""

    name = "echo"

    def __init__(self, *, fail_at: int | None = None, step_s: float = 0.0) -> None:
        self.batches: list[int] = []
        self.steps = 0
        self.fail_at = fail_at
        self.step_s = step_s

    def warm_up(self) -> None:
        pass

    def messages(self, history: Sequence[Turn], passages: Sequence[Passage]) -> list[ChatMessage]:
        return [{"role": "user", "content": history[-1].text}]

    def stream_batch(
        self, conversations: Sequence[Sequence[ChatMessage]], *, max_new_tokens: int | None = None
    ) -> Iterator[list[str]]:
        self.batches.append(len(conversations))
        replies = [c[-1]["content"].split(" ") for c in conversations]
        for step in range(max(len(r) for r in replies)):
            if step == self.fail_at:
                raise RuntimeError("the model broke")
            self.steps += 1
            yield [(" " if step else "") + r[step] if step < len(r) else "" for r in replies]
            time.sleep(self.step_s)


def ask(batcher: MicroBatchingGenerator, question: str) -> Iterator[str]:
    return batcher.compose([Turn("user", question)], [PASSAGE])


def test_calls_waiting_together_share_one_batch() -> None:
    echo = EchoBatches()
    batcher = MicroBatchingGenerator(echo, max_batch=2, wait_ms=5000)
    first = ask(batcher, "where is my card")
    second = ask(batcher, "how long does delivery take")
    assert "".join(second) == "how long does delivery take"
    assert "".join(first) == "where is my card"
    assert echo.batches == [2]
    batcher.join(timeout=5)
    assert not batcher.busy


def test_a_full_batch_leaves_the_rest_for_the_next() -> None:
    echo = EchoBatches()
    batcher = MicroBatchingGenerator(echo, max_batch=2, wait_ms=100)
    streams = [ask(batcher, f"question number {i}") for i in range(3)]
    assert ["".join(s) for s in streams] == [f"question number {i}" for i in range(3)]
    assert echo.batches == [2, 1]


def test_a_caller_that_stops_reading_stops_the_batch() -> None:
    echo = EchoBatches(step_s=0.01)
    batcher = MicroBatchingGenerator(echo, max_batch=1, wait_ms=0)
    stream = ask(batcher, " ".join(["word"] * 200))
    assert next(stream) == "word"
    assert isinstance(stream, Generator)
    stream.close()
    batcher.join(timeout=5)
    assert not batcher.busy
    assert echo.steps < 200


def test_a_failing_batch_reaches_every_caller() -> None:
    batcher = MicroBatchingGenerator(EchoBatches(fail_at=1), max_batch=2, wait_ms=5000)
    streams = [ask(batcher, "where is my card"), ask(batcher, "when")]
    for stream in streams:
        with pytest.raises(GeneratorUnavailable, match="the model broke"):
            list(stream)


@pytest.mark.slow
def test_concurrent_calls_share_one_batch_of_the_real_model(
    smollm2: TransformersGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    stream_batch = smollm2.stream_batch

    def counted(
        conversations: Sequence[Sequence[ChatMessage]], *, max_new_tokens: int | None = None
    ) -> Iterator[list[str]]:
        sizes.append(len(conversations))
        return stream_batch(conversations, max_new_tokens=max_new_tokens)

    questions = ["where is my card?", "how long does delivery take?"]
    # Each alone, unbatched (greedy): what the shared batch must give each caller.
    alone = ["".join(smollm2.compose([Turn("user", q)], [PASSAGE])) for q in questions]
    monkeypatch.setattr(smollm2, "stream_batch", counted)
    batcher = MicroBatchingGenerator(smollm2, max_batch=2, wait_ms=5000)
    first = ask(batcher, questions[0])
    second = ask(batcher, questions[1])
    replies = ["".join(first), "".join(second)]
    assert sizes == [2]  # two callers, one decoding batch
    assert replies == alone and alone[0] != alone[1] and all(r.strip() for r in replies)
    # A caller that stops reading early does not hang the next batch.
    stream = ask(batcher, "card?")
    assert isinstance(next(stream), str)
    assert isinstance(stream, Generator)
    stream.close()
    batcher.join(timeout=60)
    assert not batcher.busy and sizes == [2, 1]
