"""Talking to SLURM, for the slurm backend, launcher and companion: its commands, run with a clean
environment and retried when slurmctld is slow to answer; submitting, querying and cancelling
jobs; finding a run's jobs by the comment that names its run directory.

The backend's one watcher per process (backends/cluster.py) learns every job's state through
JobQuery: a single `squeue` per polling period for all of them (miniwdl-slurm's blocking
`sbatch --wait` per task sends slurmctld one query per task and period, through each sbatch's own
polling).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from typing import Callable, Dict, List, Optional, Sequence

from ..backends.cluster import Sighting
from ..errors import BackendError

_logger = logging.getLogger("miniwdl_jupyter.slurm")

# States after which a job will not change again (squeue --states=all shows them for MinJobAge).
FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
# A job lost to the machinery rather than to its command: miniwdl retries these under `preemptible`.
INTERRUPTED_STATES = frozenset({"NODE_FAIL", "PREEMPTED", "BOOT_FAIL"})
# The answers of a slurmctld that is busy or restarting: worth asking again, not failing a run for.
_TRANSIENT = re.compile(
    r"Socket timed out|Unable to contact slurm controller|Connection refused|Zero Bytes were transmitted"
    r"|Transport endpoint is not connected|Slurm backup controller in standby mode|temporarily unavailable",
    re.IGNORECASE,
)
# Written into every job's comment so a run's jobs can be found (jobs_of_run()).
COMMENT_PREFIX = "miniwdl_jupyter.run_dir="
# Variables a miniwdl process inherits when it runs inside a SLURM allocation (e.g. a head job from
# `--submit slurm`): sbatch would read them as options and bind task jobs to the parent allocation.
# SLURM_CONF names the cluster's configuration and is kept.
_KEEP = {"SLURM_CONF"}


def clean_environment(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment for SLURM commands and the jobs they submit, without inherited SLURM_*/
    SQUEUE_*/SACCT_* settings (the latter would change the output format we parse)."""
    environ = dict(os.environ if environ is None else environ)
    return {
        k: v for k, v in environ.items() if k in _KEEP or not k.startswith(("SLURM_", "SQUEUE_", "SACCT_"))
    }


class SlurmUnavailable(Exception):
    """A SLURM command is missing or slurmctld kept failing to answer."""


def run_slurm(
    args: Sequence[str],
    *,
    retries: int = 6,
    timeout: float = 60.0,
    input: Optional[str] = None,
    on_transient: Optional[Callable[[subprocess.CompletedProcess], None]] = None,
) -> subprocess.CompletedProcess:
    """Run a SLURM command, retrying (with backoff) while slurmctld answers with a socket timeout
    or is unreachable. Returns the last result, which may still have failed for another reason."""
    delay = 1.0
    for attempt in range(retries + 1):
        try:
            proc = subprocess.run(
                list(args), capture_output=True, text=True, env=clean_environment(), timeout=timeout, input=input
            )
        except FileNotFoundError:
            raise SlurmUnavailable(f"{args[0]} not found: install the SLURM client commands (slurm-client)") from None
        except subprocess.TimeoutExpired:
            proc = subprocess.CompletedProcess(list(args), 1, "", f"Socket timed out: no answer in {timeout:.0f} s")
        if proc.returncode == 0 or not _TRANSIENT.search(proc.stderr) or attempt == retries:
            return proc
        if on_transient:
            on_transient(proc)
        _logger.warning("%s: slurmctld did not answer (%s); retrying in %.0f s", args[0], proc.stderr.strip(), delay)
        time.sleep(delay)
        delay = min(delay * 2, 30.0)
    return proc


def squeue(job_ids: Sequence[str], *, retries: int = 6) -> Dict[str, Sighting]:
    """What `squeue --states=all` says of these jobs (those it still knows). `--array`: the
    elements of a job array (`<array id>_<i>`) each on their own line, even while pending."""
    proc = run_slurm(
        ["squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(job_ids)}", "--format=%i|%T|%N|%r|%l"],
        retries=retries,
    )
    if proc.returncode != 0:
        # With a single id, squeue fails for a job it no longer knows; with several it lists the rest.
        if "Invalid job id" in proc.stderr:
            return {}
        raise SlurmUnavailable(f"squeue failed: {proc.stderr.strip()}")
    rows = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 5:
            facts = {"node": parts[2], "reason": parts[3], "time_limit": parts[4]}  # time limit as squeue prints it, e.g. 1:00:00
            rows[parts[0]] = Sighting(parts[1], parts[1] in FINAL_STATES, {k: v for k, v in facts.items() if v and v != "None"})
    return rows


class JobQuery:
    """The slurm backend's `query(job_ids)` for its JobWatcher: one `squeue` for all jobs, then,
    if the cluster keeps accounting, one `sacct` for those that already left the queue."""

    def __init__(self, accounting: bool) -> None:
        self.accounting = accounting
        self._started_at = time.time()

    def __call__(self, job_ids: List[str]) -> Dict[str, Sighting]:
        seen = squeue(job_ids)
        missing = [job_id for job_id in job_ids if job_id not in seen]
        if missing and self.accounting:
            seen.update(self._sacct(missing))
        return seen

    def _sacct(self, job_ids: List[str]) -> Dict[str, Sighting]:
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self._started_at - 60))
        proc = run_slurm(
            [
                "sacct",
                "--noheader",
                "--parsable2",
                "--allocations",
                f"--starttime={start}",
                f"--jobs={','.join(job_ids)}",
                "--format=JobID,State,NodeList,ExitCode",  # JobID: an array element is <array id>_<i>
            ]
        )
        rows = {}
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                parts = line.split("|")
                if len(parts) >= 4 and parts[0] in job_ids:
                    state = parts[1].split()[0] if parts[1] else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
                    node = parts[2] if parts[2] != "None assigned" else ""
                    rows[parts[0]] = Sighting(state, state in FINAL_STATES, {"node": node} if node else {}, detail=parts[3])
        return rows


def accounting_enabled() -> bool:
    """Does the cluster keep job accounting (so `sacct` can answer for jobs that left the queue)?"""
    proc = run_slurm(["scontrol", "show", "config"])
    match = re.search(r"^AccountingStorageType\s*=\s*(\S+)", proc.stdout, re.MULTILINE)
    return bool(match) and match.group(1) not in ("accounting_storage/none", "(null)")


def cancel_jobs(job_ids: Sequence[str]) -> None:
    """scancel the given jobs (one call for all of them)."""
    if job_ids:
        proc = run_slurm(["scancel", *job_ids])
        if proc.returncode != 0 and proc.stderr.strip():
            _logger.warning("scancel %s: %s", " ".join(job_ids), proc.stderr.strip())


def submit_job(sbatch: List[str], job_name: str, logger: logging.Logger) -> str:
    """One `sbatch --parsable`; returns the job id. A submission whose answer timed out may still
    have been accepted: look for the job by its (unique) name before submitting again."""
    for attempt in range(6):
        proc = run_slurm(sbatch, retries=0)
        if proc.returncode == 0:
            return proc.stdout.strip().split(";")[0]
        if not _TRANSIENT.search(proc.stderr):
            raise BackendError(f"sbatch refused job {job_name}: {proc.stderr.strip() or proc.stdout.strip()}")
        time.sleep(min(2**attempt, 30))
        # --states=all: the job may have been accepted and already ended (a short task)
        found = run_slurm(["squeue", "--noheader", "--states=all", f"--name={job_name}", "--format=%i"]).stdout.split()
        if found:
            return found[0].split("_")[0]  # an array's id, without its element
        logger.warning("sbatch timed out; submitting %s again: %s", job_name, proc.stderr.strip())
    raise BackendError(f"sbatch kept timing out for job {job_name}: slurmctld is not answering (`scontrol ping`)")


def jobs_of_run(run_dir: str) -> List[str]:
    """Ids of the queued or running jobs submitted for a run directory (their comment names it)."""
    proc = run_slurm(["squeue", "--noheader", "--array", "--format=%i|%k"])
    wanted = run_comment(run_dir)
    return [line.split("|", 1)[0] for line in proc.stdout.splitlines() if line.split("|", 1)[-1].strip() == wanted]


def run_comment(run_dir: str) -> str:
    """The `--comment` of every job of a run (task jobs and a --submit slurm head job)."""
    return COMMENT_PREFIX + os.path.abspath(run_dir)
