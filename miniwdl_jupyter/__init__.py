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


# The public API, imported when first used: `import miniwdl_jupyter` stays light, and a backend
# plugin that miniwdl loads (miniwdl_jupyter.backends.*) does not pull in the runs layer.
_LAZY = {
    "run": "runs",
    "attach": "runs",
    "list_runs": "runs",
    "Run": "runs",
    "run_notebook": "steps",  # notebook steps bring the Docker SDK
    "build_image": "images",
}


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'miniwdl_jupyter' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def load_ipython_extension(ipython) -> None:  # type: ignore[no-untyped-def]
    from .magics import register

    register(ipython)


def _jupyter_labextension_paths() -> list:
    """Where the prebuilt JupyterLab extension is, for `jupyter labextension develop .`"""
    return [{"src": "labextension", "dest": "miniwdl-jupyter"}]
