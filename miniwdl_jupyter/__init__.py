"""miniwdl-jupyter: run WDL workflows from Jupyter with miniwdl.

`%load_ext miniwdl_jupyter` adds the `%%wdl` and `%wdl` magics; the runs API below works from plain
Python too (no IPython needed).
"""

from .errors import BackendError, Cancelled, InputError, RunFailed, TaskFailed, WDLSourceError
from .runs import Run, attach, list_runs, run

__all__ = [
    "run",
    "attach",
    "list_runs",
    "Run",
    "BackendError",
    "Cancelled",
    "InputError",
    "RunFailed",
    "TaskFailed",
    "WDLSourceError",
    "load_ipython_extension",
]
__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:  # type: ignore[no-untyped-def]
    from .magics import register

    register(ipython)
