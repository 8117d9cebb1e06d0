"""Component builders the console's tabs share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

__all__ = ["read_only_table"]


def read_only_table(
    headers: Sequence[str],
    *,
    label: str,
    elem_id: str,
    max_height: int = 500,
    datatype: Sequence[str] | None = None,
    **more: Any,
) -> Any:
    """A table the agent reads and clicks but does not edit, its cells wrapped; its
    columns are text unless `datatype` says otherwise. `more`: other `gr.Dataframe`
    settings (`column_widths`)."""
    return gr.Dataframe(
        headers=list(headers),
        datatype=list(datatype or ["str"] * len(headers)),
        interactive=False,
        label=label,
        elem_id=elem_id,
        wrap=True,
        max_height=max_height,
        **more,
    )
