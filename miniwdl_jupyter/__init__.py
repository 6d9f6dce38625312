"""miniwdl-jupyter: run WDL workflows from Jupyter with miniwdl.

`%load_ext miniwdl_jupyter` adds the `%%wdl` and `%wdl` magics; the runs API below works from plain
Python too (no IPython needed).
"""

from .errors import (
    BackendError,
    Cancelled,
    ConfigError,
    InputError,
    NotebookFailed,
    RunFailed,
    RunNotFound,
    TaskFailed,
    WDLSourceError,
)
from .runs import Run, attach, list_runs, run

__all__ = [
    "run",
    "attach",
    "list_runs",
    "Run",
    "BackendError",
    "Cancelled",
    "ConfigError",
    "InputError",
    "RunNotFound",
    "RunFailed",
    "TaskFailed",
    "WDLSourceError",
    "NotebookFailed",
    "run_notebook",
    "build_image",
    "load_ipython_extension",
]
__version__ = "0.1.0"


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # Notebook steps bring the Docker SDK: import them only when asked for.
    if name == "run_notebook":
        from .steps import run_notebook

        return run_notebook
    if name == "build_image":
        from .images import build_image

        return build_image
    raise AttributeError(f"module 'miniwdl_jupyter' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:  # type: ignore[no-untyped-def]
    from .magics import register

    register(ipython)


def _jupyter_labextension_paths() -> list:
    """Where the prebuilt JupyterLab extension is, for `jupyter labextension develop .`"""
    return [{"src": "labextension", "dest": "miniwdl-jupyter"}]
