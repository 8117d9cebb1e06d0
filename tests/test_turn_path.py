"""One customer turn passes through few files, each step in one home (README: Follow one turn).

A profiler records which of the package's source files run while `POST /api/messages`
answers an FAQ question with the default config of `deskbot init`. The list is the
README's "Follow one turn"; the test holds the count so that a new indirection shows up
here, not in a newcomer's afternoon.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deskbot.bot.core.config import load_config
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import build_bot

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = tuple(str(ROOT / name) + "/" for name in ("bot", "knowledge", "training", "ui"))
# Issue #18's goal is 10; the test holds what is reached so the count can only go down
# (README: Follow one turn says what stands between). 22 at the end of #18; since then a
# turn also writes through recording.py (idempotent messages), wakes the consoles
# through store/changes.py (push), reads its message in the thread through
# nlu/context.py (follow-ups, issue #19), and runs `DialogueState`'s code in
# dialogue/decision.py (moved out of policy.py, which had reached 493 of 500 lines),
# and follows the LIVE pointer through core/following.py (issue #23: shared by the
# intent model and the generator's adapters instead of written twice), and ranks
# through knowledge/retrieval/ranking.py (one piece per document section, issue #21;
# retriever.py has no room for it under the 500-line limit).
MAX_FILES = 28
STEPS = {
    "bot/server/routers/chat.py",
    "bot/dialogue/pipeline.py",
    "bot/dialogue/policy.py",
    "bot/nlu/serving.py",
    "bot/nlu/classifier.py",
    "bot/store/conversations.py",
    "knowledge/retrieval/retriever.py",
    "knowledge/indexing/index.py",
}


class FileRecorder:
    """Which package files have a function called while `recording` is set (all threads
    started after `installed()`; the bot's pools and batcher threads are among them)."""

    def __init__(self) -> None:
        self.recording = False
        self.files: set[str] = set()

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if self.recording and event == "call":
            name = os.path.realpath(frame.f_code.co_filename)
            if name.startswith(PACKAGE_DIRS):
                self.files.add(str(Path(name).relative_to(ROOT)))

    @contextmanager
    def installed(self) -> Iterator[None]:
        threading.setprofile(self)
        sys.setprofile(self)
        try:
            yield
        finally:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]


def turn_files(project: Path) -> list[str]:
    """The package files one FAQ turn runs, after a first turn has warmed everything up."""
    recorder = FileRecorder()
    with recorder.installed():
        bot = build_bot(load_config(project / "deskbot.yaml"))
        try:
            bot.warm_up()
            with TestClient(create_api(bot)) as client:
                token = client.post("/api/sessions").json()["session_token"]
                auth = {"Authorization": f"Bearer {token}"}
                first = client.post("/api/messages", json={"text": "hello"}, headers=auth)
                assert first.status_code == 200, first.text
                recorder.recording = True
                reply = client.post(
                    "/api/messages", json={"text": "What exchange rates do you use?"}, headers=auth
                )
                recorder.recording = False
            assert reply.status_code == 200 and reply.json()["kind"] == "faq", reply.text
        finally:
            bot.close()
    return sorted(recorder.files)


@pytest.mark.slow
def test_one_turn_passes_no_more_files_than_it_did(bot_project: Path) -> None:
    files = turn_files(bot_project)
    print("\n".join(files))
    # The recorder saw the turn: the route, the pipeline, and the steps that run on the
    # bot's own threads (the classifier's batcher, the retrieval step's pool).
    assert set(files) >= STEPS, f"not recorded: {STEPS - set(files)}"
    assert len(files) <= MAX_FILES, f"{len(files)} files: {files}"
