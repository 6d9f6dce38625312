"""SLURM's companion, the notebook side of the slurm backend (see companions/): its tasks run on
the cluster's nodes, and a run's jobs are found by the comment naming its run directory. The one
place a run's jobs are scancelled once its miniwdl process is gone or told to stop: used by the
runs layer's cleanup of leftovers and by the slurm launcher's cancel. (A running miniwdl process
cancels its own jobs through the backend: see backend.py.)
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Dict, Union

from WDL.runtime.config import Loader

from ..companions import Companion
from .jobs import SlurmUnavailable, cancel_jobs, jobs_of_run

_logger = logging.getLogger("miniwdl_jupyter.slurm")


class SlurmCompanion(Companion):
    name = "slurm"
    runs_elsewhere = True

    def stop_leftovers(self, run_dir: Path, record: Dict[str, Any], cfg: Loader) -> int:
        return cancel_run_jobs(run_dir)


def cancel_run_jobs(run_dir: Union[str, Path]) -> int:
    """scancel every queued or running job of `run_dir` (found by the comment naming it, which
    its task jobs and a --submit slurm head job carry); returns how many."""
    if not shutil.which("squeue"):
        return 0  # no SLURM here: nothing of the run can be in a queue we could reach
    try:
        jobs = jobs_of_run(str(run_dir))
        cancel_jobs(jobs)
    except SlurmUnavailable as exn:
        _logger.warning("could not cancel the SLURM jobs of %s: %s", run_dir, exn)
        return 0
    if jobs:
        _logger.info("cancelled %d SLURM job(s) of %s", len(jobs), run_dir)
    return len(jobs)
