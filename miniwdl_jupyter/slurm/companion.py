"""The notebook side of SLURM: stopping what a run left in the queue. The one place a run's jobs
are found and scancelled once its miniwdl process is gone or told to stop; used by the slurm
launcher's cancel and by the runs layer's cleanup of leftovers.

(A running miniwdl process cancels its own jobs through the backend: see backend.py.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

from .jobs import SlurmUnavailable, cancel_jobs, jobs_of_run

_logger = logging.getLogger("miniwdl_jupyter.slurm")


def cancel_run_jobs(run_dir: Union[str, Path]) -> int:
    """scancel every queued or running job of `run_dir` (found by the comment naming it, which
    its task jobs and a --submit slurm head job carry); returns how many."""
    try:
        jobs = jobs_of_run(str(run_dir))
        cancel_jobs(jobs)
    except SlurmUnavailable as exn:
        _logger.warning("could not cancel the SLURM jobs of %s: %s", run_dir, exn)
        return 0
    if jobs:
        _logger.info("cancelled %d SLURM job(s) of %s", len(jobs), run_dir)
    return len(jobs)
