"""The `miniwdl run` command line and environment of a run: what every launcher starts."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from WDL.runtime.config import Loader, _env_var_name

from . import config, wdl_source
from .companions import get_companion


def build(
    loaded: wdl_source.LoadedWDL,
    inputs_file: Path,
    run_dir: Path,
    *,
    backend: str,
    cache: bool,
    task: Optional[str],
    cfg: Loader,
    cwd: Path,
) -> Tuple[List[str], Dict[str, str]]:
    """(argv, environment) for `python -m WDL run` writing exactly `run_dir`."""
    command = [sys.executable, "-m", "WDL", "run", loaded.source_path, "-i", str(inputs_file)]
    command += ["--dir", f"{run_dir}/.", "--log-json", "--verbose", "--error-json"]
    for path in wdl_source.search_path(cwd):
        command += ["--path", path]
    if task:
        command += ["--task", task]
    if cfg.cfg_filename:
        command += ["--cfg", cfg.cfg_filename]
    env = dict(os.environ)
    # This Python's bin/ first: `local` tasks that call python3 or papermill (notebook steps) get
    # the environment the notebook runs in, even when its venv is not activated.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
    env.update(override_variables(cfg))
    env["MINIWDL__SCHEDULER__CONTAINER_BACKEND"] = backend
    if get_companion(backend).runs_elsewhere and config.option(cfg, "scheduler", "task_concurrency", "int") == 0:
        # miniwdl's default (0) is this machine's cores, and its task thread pool is made before
        # any backend starts: tasks that run elsewhere need the limit raised here.
        env["MINIWDL__SCHEDULER__TASK_CONCURRENCY"] = str(config.option(cfg, "jupyter", "cluster_task_concurrency", "int"))
    env["MINIWDL__CALL_CACHE__GET"] = env["MINIWDL__CALL_CACHE__PUT"] = "true" if cache else "false"
    if cache:
        env["MINIWDL__CALL_CACHE__BACKEND"] = "notebook"
        env["MINIWDL__CALL_CACHE__SKIP_KEY_PREFIXES"] = json.dumps(wdl_source.workflow_cache_prefixes(loaded.doc))
    return command, env


def override_variables(cfg: Loader) -> Dict[str, str]:
    """The loader's overrides (e.g. `run(cfg={...})`) as MINIWDL__SECTION__KEY variables, so the miniwdl
    process, which builds its own loader, sees them too."""
    overrides = cfg._overrides  # miniwdl keeps them as strings, already JSON-encoded where needed
    return {_env_var_name(s, k): v for s in overrides.sections() for k, v in overrides.items(s)}
