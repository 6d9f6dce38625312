"""Notebook display of runs: live progress views and output renderers (the notebook layer).

    view = progress_view(run, mode)   # auto | widget | html | text | none; displays itself
    run.wait(on_poll=view.update)
    view.finish(run.state)
    render_outputs(run)
"""

from .progress import ProgressView
from .views import progress_view
from .renderers import render_outputs

__all__ = ["ProgressView", "progress_view", "render_outputs"]
