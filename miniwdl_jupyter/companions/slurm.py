"""slurm's companion (thin, over today's backend modules, until the slurm/ package has its own):
its tasks run on the cluster's nodes; a killed run's task jobs are scancelled, found by the job
comment naming the run directory."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Dict

from WDL.runtime.config import Loader

from . import Companion

_logger = logging.getLogger("miniwdl_jupyter.companions.slurm")


class SlurmCompanion(Companion):
    name = "slurm"
    runs_elsewhere = True

    def stop_leftovers(self, run_dir: Path, record: Dict[str, Any], cfg: Loader) -> int:
        if not shutil.which("squeue"):
            return 0
        from ..backends.slurm import jobs_of_run
        from ..backends.slurm_jobs import SlurmUnavailable, cancel_jobs

        try:
            jobs = jobs_of_run(str(run_dir))
            if jobs:
                cancel_jobs(jobs)
        except SlurmUnavailable as exn:
            _logger.warning("could not cancel the SLURM jobs of %s: %s", run_dir, exn)
            return 0
        if jobs:
            _logger.info("cancelled %d SLURM job(s) left by %s", len(jobs), run_dir)
        return len(jobs)
