"""Choosing and making the progress view of a run (kept apart from the views' common base in
progress.py, which each view imports: no import cycle)."""

from __future__ import annotations

from typing import Any, Optional

from .. import config
from .modes import resolve_mode
from .progress import NoView, ProgressView


def progress_view(run: Any, mode: Optional[str] = None) -> ProgressView:
    """A view of `run` that has displayed itself. `mode`: auto, widget, html, text or none
    (None: `[jupyter] progress`). `run` is a `Run` or anything with .state, .poll(), .cancel(),
    .run_dir, .outputs and .status."""
    if mode is None and getattr(run, "cfg", None) is not None:
        mode = config.option(run.cfg, "jupyter", "progress")  # the run's own configuration (e.g. --cfg)
    resolved = resolve_mode(mode)
    if resolved == "widget":
        from .widget import WidgetView

        return WidgetView(run)
    if resolved == "html":
        from .html_board import HtmlBoard

        return HtmlBoard(run)
    if resolved == "text":
        from .text import TextLine

        return TextLine(run)
    return NoView(run)
