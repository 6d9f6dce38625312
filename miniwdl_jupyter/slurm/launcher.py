"""`slurm` launcher: the run's `miniwdl run` process itself runs as a SLURM batch job (`--submit slurm`,
`run(..., submit="slurm")`), so the notebook can be closed while the run goes on.

The run directory must be on a filesystem the compute nodes share with this host (and the kernel's
python, argv[0], must exist there too): the cell, `attach()` and `%wdl runs` follow the run by
reading it. The job id goes into the launch record; liveness and the progress view's facts come
from `squeue`; cancel asks miniwdl to stop (SIGTERM to the batch step: it stops its own task jobs
and writes error.json), then scancels the head job and any task job of the run still queued.

Head-job settings: `[slurm] head_partition`, `head_account` (default: partition/account) and
`head_extra_args` (a JSON list of sbatch options, e.g. ["--time=2-0", "--mem=4G"]).
"""

from __future__ import annotations

import functools
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from WDL.runtime.config import Loader

from .. import config as jupyter_config
from .. import launch_record
from ..errors import BackendError
from ..launcher import Launcher
from .companion import cancel_run_jobs
from .jobs import FINAL_STATES, SlurmUnavailable, cancel_jobs, clean_environment, run_comment, run_slurm, squeue


class SlurmLauncher(Launcher):
    """The run's miniwdl process as a SLURM batch job (the head job), followed through squeue."""

    name = "slurm"
    # With `[jupyter] backend = auto`, a head job's tasks are SLURM jobs too (not containers on
    # whichever node the head job landed on).
    default_backend = "slurm"

    def launch(self, command: List[str], *, run_dir: Path, env: Mapping[str, str], cwd: Path, cfg: Loader) -> Optional[subprocess.Popen]:
        script = launch_record.meta_dir(run_dir) / "head_job.sh"
        # exec: SIGTERM from scancel reaches miniwdl itself, which then stops its tasks cleanly.
        script.write_text(
            "#!/bin/bash\n# The miniwdl process of this run, submitted by miniwdl-jupyter's slurm launcher.\n"
            f"cd {shlex.quote(str(cwd))} || exit 1\nexec {' '.join(shlex.quote(a) for a in command)}\n"
        )
        sbatch = self.sbatch_arguments(run_dir, cwd, cfg) + [str(script)]
        try:
            proc = subprocess.run(sbatch, capture_output=True, text=True, env=clean_environment(dict(env)), timeout=120)
        except FileNotFoundError:
            raise BackendError("sbatch not found: install the SLURM client commands, or submit locally") from None
        except subprocess.TimeoutExpired:
            raise BackendError("sbatch did not answer in 120 s: is slurmctld up (`scontrol ping`)?") from None
        if proc.returncode != 0:
            raise BackendError(f"sbatch refused the run's job: {proc.stderr.strip() or proc.stdout.strip()}")
        job_id = proc.stdout.strip().split(";")[0]
        launch_record.update(run_dir, job_id=job_id, submit_host=socket.gethostname())
        return None  # not our child: the cell follows the run directory

    def sbatch_arguments(self, run_dir: Path, cwd: Path, cfg: Loader) -> List[str]:
        option = functools.partial(jupyter_config.option, cfg, "slurm")
        args = [
            "sbatch",
            "--parsable",
            f"--job-name=miniwdl-{Path(run_dir).name}"[:120],
            f"--chdir={cwd}",
            f"--output={launch_record.stdout_path(run_dir)}",
            f"--error={launch_record.stderr_path(run_dir)}",
            f"--comment={run_comment(str(run_dir))}",
            "--ntasks=1",
            "--export=ALL",  # the environment runs.py built for miniwdl (MINIWDL__* settings included)
        ]
        partition = option("head_partition") or option("partition")
        account = option("head_account") or option("account")
        if partition:
            args.append(f"--partition={partition}")
        if account:
            args.append(f"--account={account}")
        return args + [str(a) for a in option("head_extra_args", "list")]

    def job_state(self, record: Dict[str, Any]) -> Optional[Dict[str, str]]:
        """{state, node, reason} of the head job; {} when SLURM no longer knows it; None when
        SLURM cannot be asked."""
        job_id = record.get("job_id")
        if not job_id:
            return None
        try:
            found = squeue([job_id], retries=2).get(job_id)
        except SlurmUnavailable:
            return None
        if found is None:
            return {}
        return {"state": found.state, "node": found.facts.get("node", ""), "reason": found.facts.get("reason", "")}

    def alive(self, record: Dict[str, Any], cfg: Loader) -> Optional[bool]:
        if "job_id" not in record:
            return None  # still being submitted
        found = self.job_state(record)
        if found is None:
            return None
        return bool(found) and found["state"] not in FINAL_STATES

    def cancel(self, record: Dict[str, Any], run_dir: Path, cfg: Loader) -> None:
        job_id = record.get("job_id")
        if job_id and self.alive(record, cfg):
            state = (self.job_state(record) or {}).get("state")
            if state == "RUNNING":
                # miniwdl handles SIGTERM: it scancels its own task jobs and writes error.json
                run_slurm(["scancel", "--batch", "--signal=TERM", job_id])
                deadline = time.monotonic() + jupyter_config.option(cfg, "slurm", "head_cancel_grace_seconds", "float")
                while time.monotonic() < deadline and self.alive(record, cfg):
                    time.sleep(1.0)
            if self.alive(record, cfg):
                cancel_jobs([job_id])
        # Task jobs of a miniwdl process that could not stop them itself (killed, or timed out).
        cancel_run_jobs(run_dir)

    def describe(self, record: Dict[str, Any], cfg: Loader) -> Dict[str, Any]:
        if "job_id" not in record:
            return {}
        found = self.job_state(record) or {}
        facts = {"job_id": record["job_id"], "state": found.get("state", "unknown")}
        if found.get("node"):
            facts["node"] = found["node"]
        if found.get("reason"):
            facts["reason"] = found["reason"]
        return facts
