"""Render a run's outputs: each output's name and value, files with their size."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any


def _describe(value: Any) -> str:
    if isinstance(value, Path):
        try:
            return f"{value} ({value.stat().st_size} bytes)"
        except OSError:
            return f"{value} (missing)"
    if isinstance(value, list):
        return "[" + ", ".join(_describe(v) for v in value) + "]"
    return repr(value)


class _Outputs:
    def __init__(self, outputs: dict):
        self.outputs = outputs

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><b>{html.escape(k)}</b></td><td><code>{html.escape(_describe(v))}</code></td></tr>"
            for k, v in self.outputs.items()
        )
        return f"<table>{rows}</table>"

    def __repr__(self) -> str:
        return "\n".join(f"{k}: {_describe(v)}" for k, v in self.outputs.items())


def render_outputs(run: Any) -> None:
    from IPython.display import display

    display(_Outputs(run.outputs))
