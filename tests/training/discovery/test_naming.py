from __future__ import annotations

import numpy as np

from deskbot.training.discovery.naming import cohesion, keywords, representatives, suggested_name


def test_keywords_are_what_sets_a_cluster_apart() -> None:
    texts = [
        "my card has not arrived",
        "when will my card arrive",
        "the card still has not arrived",
        "how do I reset my pin",
        "I forgot my pin",
        "pin is blocked",
    ]
    words = keywords(texts, np.array([0, 0, 0, 1, 1, -1]))
    assert words[0][:2] == ["arrived", "card"] or set(words[0][:2]) == {"arrived", "card"}
    assert words[1][0] == "pin"
    assert "my" not in words[0]  # a stop word


def test_suggested_names_are_unique() -> None:
    taken: set[str] = set()
    assert suggested_name(["card", "arrived", "still", "late"], taken=taken) == "card_arrived_still"
    assert suggested_name(["card", "arrived", "still"], taken=taken) == "card_arrived_still_2"
    assert suggested_name([], taken=taken) == "unnamed"


def test_representatives_are_nearest_the_centroid() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.6, 0.8]])
    members = np.array([0, 1, 2, 3])
    centre = np.array([0.6, 0.8])
    assert representatives(vectors, members, centre, count=2) == [3, 2]
    assert cohesion(vectors, np.array([3]), centre) == 1.0
