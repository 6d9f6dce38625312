"""Notebook steps from Python: run one notebook with papermill in a step image as a one-task WDL run.

`run_notebook()` builds the step image when needed (images.build_image: a content-addressed cache,
so an unchanged step never rebuilds) and runs the `notebook_step` task of the package's
`wdl/notebook.wdl` through the runs API, so it runs on every backend, is call-cached, and leaves a
run directory like any other run. The same task is importable from a `%%wdl` cell:
`import "notebook.wdl" as nb` (the package's wdl/ folder is on the import search path).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from WDL.runtime.config import Loader

from . import config, images, protocol, run_dirs
from .backend_choice import resolve_backend
from .errors import NotebookFailed, RunFailed, TaskFailed
from .files import content_addressed, tail_lines
from .runs import CfgArg, Run, load_config, run

NOTEBOOK_WDL = Path(__file__).with_name("wdl") / "notebook.wdl"
TASK = "notebook_step"
TAIL_LINES = 20
# The task's image input when the backend runs no containers (the local backend ignores it).
LOCAL_IMAGE = "none:local-backend"
_logger = logging.getLogger("miniwdl_jupyter.steps")

PathLike = Union[str, os.PathLike]


class NotebookStep:
    """A notebook step's run and what it produced (the seed's ExecResult shape plus the files).

    Every property reads the run directory, so a failed step still gives its executed notebook
    and HTML, and `exception` says why it failed instead of raising.
    """

    def __init__(self, run_handle: Run, image: str, notebook_name: str):
        self.run = run_handle
        self.image = image
        self._stem = Path(notebook_name).stem

    def __repr__(self) -> str:
        return f"<NotebookStep {self._stem} {self.status} {self.run.run_dir}>"

    @property
    def status(self) -> str:
        return self.run.status

    def wait(self, timeout: Optional[float] = None, *, raise_on_failure: bool = True) -> "NotebookStep":
        """Block until the step ends; raise NotebookFailed (or the run's error) if it failed."""
        self.run.wait(timeout, raise_on_failure=False)
        if raise_on_failure and self.exception is not None:
            raise self.exception
        return self

    @property
    def exception(self) -> Optional[RunFailed]:
        error = self.run.error
        if isinstance(error, TaskFailed):
            summary = self._failure_summary()
            if summary is not None:
                return NotebookFailed(error, summary, self.executed_notebook, self.html)
        return error

    @property
    def returncode(self) -> Optional[int]:
        """0 on success, the task's exit status on failure, None while running or if it never ran."""
        if not self.run.done:
            return None
        error = self.run.error
        if error is None:
            return 0
        return error.exit_code if isinstance(error, TaskFailed) else None

    @property
    def executed_notebook(self) -> Optional[Path]:
        return self._product("executed_notebook", f"{self._stem}.ipynb")

    @property
    def html(self) -> Optional[Path]:
        return self._product("html", f"{self._stem}.html")

    @property
    def outputs(self) -> Dict[str, Path]:
        """The files the step collected (its outputs/ folder), by file name."""
        files = self.run.outputs.get("outputs")
        if files is None:  # failed or running: read what the notebook left in its work dir
            work = self._work_dir()
            files = sorted((work / "outputs").iterdir()) if work and (work / "outputs").is_dir() else []
        return {Path(f).name: Path(f) for f in files}

    @property
    def stdout_tail(self) -> List[str]:
        return tail_lines(protocol.stdout_file(self.run.run_dir, self._attempt()), TAIL_LINES)

    @property
    def stderr_tail(self) -> List[str]:
        return tail_lines(protocol.stderr_file(self.run.run_dir, self._attempt()), TAIL_LINES)

    # -- where the task's files are ----------------------------------------------------------------
    def _product(self, output: str, file_name: str) -> Optional[Path]:
        value = self.run.outputs.get(output)
        if value is not None:
            return Path(value)
        work = self._work_dir()
        return work / file_name if work and (work / file_name).exists() else None

    def _attempt(self) -> int:
        """The latest attempt: a retry has its own work2/, stderr2.txt..."""
        return protocol.latest_attempt(self.run.run_dir)

    def _work_dir(self) -> Optional[Path]:
        work = protocol.work_dir(self.run.run_dir, self._attempt())
        return work if work.is_dir() else None

    def _failure_summary(self) -> Optional[Dict[str, Any]]:
        work = self._work_dir()
        try:
            return json.loads((work / "notebook_error.json").read_text()) if work else None
        except (OSError, ValueError):
            return None


def run_notebook(
    notebook: PathLike,
    parameters: Union[None, Dict[str, Any], PathLike] = None,
    *,
    requirements: Sequence[str] = (),
    base_image: Optional[str] = None,
    image: Optional[str] = None,
    backend: Optional[str] = None,
    outputs: Sequence[str] = (),
    input_files: Sequence[PathLike] = (),
    kernel: Optional[str] = None,
    push: Optional[str] = None,
    cache: Optional[bool] = None,
    dir: Optional[PathLike] = None,
    wait: bool = True,
    raise_on_failure: bool = True,
    log: Optional[images.LogCallback] = None,
    cfg: CfgArg = None,
) -> NotebookStep:
    """Execute `notebook` with papermill in a step image, as a one-task WDL run.

    `parameters`: a dict, or a YAML/JSON file, of papermill parameters. The image is `image` if
    given, else built from `requirements` on `base_image` (a cache hit when nothing changed;
    `push=REGISTRY` pushes it for remote backends; build output goes to `log`). `outputs`: glob
    patterns of files to collect besides the notebook's outputs/ folder; `input_files` are linked
    into the notebook's working directory. With `wait=True` a failing notebook raises
    NotebookFailed unless `raise_on_failure=False`; either way the executed notebook and HTML stay.
    `cfg`, `dir` and `backend` mean what they mean for `run()`.
    """
    loader = load_config(cfg)
    backend = resolve_backend(backend or config.option(loader, "jupyter", "backend"), loader)
    notebook_path = Path(notebook).expanduser().resolve()
    if image is None:
        image = _step_image(requirements, base_image, push, backend, log, loader)
    inputs: Dict[str, Any] = {
        "notebook": str(notebook_path),
        "image": image,
        "input_files": [str(Path(f).expanduser().resolve()) for f in input_files],
        "output_patterns": list(outputs),
    }
    if parameters is not None:
        inputs["parameters"] = str(_parameters_file(parameters, loader))
    if kernel:
        inputs["kernel"] = kernel
    step = NotebookStep(
        run(NOTEBOOK_WDL, inputs, backend=backend, dir=dir, cache=cache, wait=False, task=TASK, cfg=loader),
        image,
        notebook_path.name,
    )
    if wait:
        step.wait(raise_on_failure=raise_on_failure)
    return step


def _step_image(requirements: Sequence[str], base_image: Optional[str], push: Optional[str], backend: str, log: Optional[images.LogCallback], cfg: Loader) -> str:
    if backend != "local":
        return images.build_image(requirements, base_image=base_image, push=push, log=log, cfg=cfg)
    # No containers (e.g. Binder): the step runs on this machine's python3, so its environment
    # must already hold papermill and the requirements; an image would not be used.
    if requirements:
        _logger.warning("local backend: not building an image; %s must be installed here", ", ".join(requirements))
    return LOCAL_IMAGE


def _parameters_file(parameters: Union[Dict[str, Any], PathLike], cfg: Loader) -> Path:
    """A dict of parameters as a JSON file named by its content, so an unchanged step's inputs are
    unchanged and the call cache can reuse it; a path is used as it is."""
    if not isinstance(parameters, dict):
        return Path(parameters).expanduser().resolve()
    text = json.dumps(parameters, sort_keys=True, indent=1, default=str)
    return content_addressed(run_dirs.run_root(cfg) / ".steps", text, prefix="parameters-", suffix=".json")
