"""Notebook display of runs: progress views and output renderers."""

from .progress import progress_view
from .outputs import render_outputs

__all__ = ["progress_view", "render_outputs"]
