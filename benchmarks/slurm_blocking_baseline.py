"""The baseline for benchmarks/bench_slurm.py: what miniwdl-slurm does, one blocking
`sbatch --wait` process (and one blocked miniwdl thread) per running task, whose own polling of
slurmctld is the only way the task's end is noticed.

Everything else is the slurm backend's (same job script, same sbatch options, same node runtime),
so the benchmark measures exactly the difference in how jobs are submitted and followed. Not part
of the package: bench_slurm.py registers it as the container backend `slurm_blocking_baseline`
for its own `miniwdl run` processes only.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from contextlib import ExitStack
from typing import Callable

from WDL._util import StructuredLogMessage as _
from WDL.runtime.error import Terminated

from miniwdl_jupyter.slurm.backend import SlurmContainer
from miniwdl_jupyter.slurm.jobs import clean_environment


class BlockingSbatchContainer(SlurmContainer):
    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        settings = self.settings()
        with ExitStack() as cleanup:
            poll_stderr = cleanup.enter_context(self.poll_stderr_context(logger))
            sbatch = self.prepare_submission(logger, settings, command)
            sbatch.insert(1, "--wait")  # miniwdl-slurm: sbatch blocks until the job has ended
            logger.info(_("blocking sbatch", args=" ".join(shlex.quote(a) for a in sbatch)))
            proc = subprocess.Popen(sbatch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environment())
            with self.task_running_context():
                while True:  # miniwdl's SubprocessBase: poll the process, the cancel flag and stderr
                    try:
                        proc.wait(1)
                        break
                    except subprocess.TimeoutExpired:
                        poll_stderr()
                        if terminating():
                            job_id = (proc.stdout.readline() or "").strip() if proc.stdout else ""
                            if job_id:
                                subprocess.run(["scancel", job_id], env=clean_environment())
                            proc.kill()
                            raise Terminated()
            poll_stderr()
            exit_code = self.recorded_exit_status()
            return exit_code if exit_code is not None else proc.returncode
