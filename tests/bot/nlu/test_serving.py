"""The batching embedder: a prefetched query embedding is the same vector, computed once."""

from __future__ import annotations

import numpy as np

from deskbot.bot.nlu.serving import BatchingEmbedder


def test_prefetched_embedding_is_the_same_and_computed_once(embedder) -> None:  # type: ignore[no-untyped-def]
    batching = BatchingEmbedder(embedder, max_wait_ms=0)
    text = "my card hasn't arrived yet"
    direct = embedder.embed([text])
    batching.prefetch(text)
    got = batching.embed([text])
    assert got.shape == direct.shape and np.allclose(got, direct, atol=1e-5)
    assert batching.batcher.items == 1  # the prefetch's result was used, not recomputed
    assert np.allclose(batching.embed([text, "hello"])[0], direct[0], atol=1e-5)
    batching.batcher.close()
