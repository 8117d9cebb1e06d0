"""`deskbot train generator`: LoRA fine-tuning of the reply generator (added to `train`)."""

from __future__ import annotations

import typer


def register(train_app: typer.Typer) -> None:
    """Add `generator` to the `deskbot train` group."""
    # Filled in by the generator's training work (issue #23).
    del train_app
