"""A retraining run killed while training leaves the live model untouched."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deskbot.training.nightly.job import PROMOTED
from tests.training.nightly.test_job import job_for, log_labels, setup  # noqa: F401

KILL_SCRIPT = """
import sys
from deskbot.bot.nlu.registry import ModelRegistry
from deskbot.bot.store import SqlConversationStore, create_store_engine
from deskbot.training.data.datasets import load_intents
from deskbot.training.nightly.job import RetrainJob, RetrainSettings
root, db, base, heldout = sys.argv[1:5]
job = RetrainJob(
    store=SqlConversationStore(create_store_engine("sqlite:///" + db)),
    registry=ModelRegistry(root), base_data=load_intents(base), test_data=load_intents(heldout),
    settings=RetrainSettings(
        epochs=50, audit_margin=None, gate_min_examples=0,
        train_args={"batch_size": 2, "patience": 50},
    ),
)
job.run()
"""


@pytest.mark.slow
def test_a_run_killed_while_training_leaves_live_untouched(
    setup,  # noqa: F811
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    registry, store, base, heldout, rows, _ = setup
    log_labels(store, rows[:16])
    base_csv, heldout_csv = tmp_path / "base.csv", tmp_path / "heldout.csv"
    for path, data in ((base_csv, base), (heldout_csv, heldout)):
        path.write_text(
            "text,category\n"
            + "".join(f'"{t}",{y}\n' for t, y in zip(data.texts, data.labels, strict=True))
        )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILL_SCRIPT,
            str(registry.root),
            str(tmp_path / "store.db"),
            str(base_csv),
            str(heldout_csv),
        ]
    )
    candidates = registry.root / ".retrain" / "candidates"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (candidates.is_dir() and any(candidates.iterdir())):
        assert proc.poll() is None, "the run ended before it was killed"
        time.sleep(0.2)
    time.sleep(1.0)  # inside the training loop by now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert registry.live_version() == "v1" and registry.versions() == ["v1"]
    job = job_for(setup, tmp_path)
    assert job.clean_leftovers()  # the half-trained candidate is discarded ...
    assert not any(candidates.iterdir())
    assert job.run().decision == PROMOTED  # ... and the lock did not outlive its holder
