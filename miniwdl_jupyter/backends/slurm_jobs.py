"""Talking to SLURM for the slurm backend (and the slurm launcher): its commands, run with a clean
environment and retried when slurmctld is slow to answer, and one shared watcher per process that
learns every job's state from a single `squeue` call per polling period.

Why one watcher: a run with hundreds of running tasks must not send slurmctld hundreds of queries
per period (miniwdl-slurm's blocking `sbatch --wait` per task does, through each sbatch's own
polling). Task threads register their job and wait on an event the watcher sets.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence

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


@dataclass
class JobStatus:
    """What the watcher knows of one job."""

    job_id: str
    state: str = "SUBMITTED"
    node: str = ""
    reason: str = ""
    time_limit: str = ""  # as squeue prints it, e.g. 1:00:00
    exit_code: Optional[str] = None  # from sacct ("0:0"), when accounting exists
    gone: bool = False  # not seen in squeue (nor in sacct) for `vanish_polls` periods
    missing_polls: int = 0
    changed: threading.Event = field(default_factory=threading.Event)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES or self.gone


class JobWatcher:
    """One polling thread per process: each period, one `squeue` for all registered jobs (plus one
    `sacct` for those that left the queue, if the cluster keeps accounting). Waiters are woken
    through each job's `changed` event."""

    def __init__(self, period: float, accounting: bool, vanish_polls: int = 5) -> None:
        self.period = period
        self.accounting = accounting
        self.vanish_polls = vanish_polls
        self._jobs: Dict[str, JobStatus] = {}
        self._lock = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._started_at = time.time()
        self.queries = 0  # squeue + sacct calls made, for tests and benchmarks

    def watch(self, job_id: str) -> JobStatus:
        with self._lock:
            was_idle = not self._jobs
            status = self._jobs.setdefault(job_id, JobStatus(job_id))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="slurm-job-watcher", daemon=True)
                self._thread.start()
            if was_idle:  # wake a watcher that sleeps for lack of jobs; otherwise keep the period
                self._lock.notify_all()
            return status

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def poll_now(self) -> None:
        """Ask for an early poll (e.g. right after a cancel)."""
        with self._lock:
            self._lock.notify_all()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._lock.wait()
                pending = [s for s in self._jobs.values() if not s.final]
            started = time.monotonic()
            if pending:
                try:
                    self._poll(pending)
                except Exception:  # the watcher must outlive any one bad answer
                    _logger.exception("slurm job watcher: poll failed")
            with self._lock:
                # one period from the start of this poll to the start of the next (a slow
                # slurmctld must not stretch the period by its answer time)
                self._lock.wait(max(0.05, self.period - (time.monotonic() - started)))

    def _poll(self, jobs: List[JobStatus]) -> None:
        seen = self._squeue([s.job_id for s in jobs])
        missing = []
        for status in jobs:
            row = seen.get(status.job_id)
            if row is None:
                missing.append(status)
                continue
            state, node, reason, status.time_limit = row
            status.missing_polls = 0
            if (state, node, reason) != (status.state, status.node, status.reason):
                status.state, status.node, status.reason = state, node, reason
                status.changed.set()
        if missing and self.accounting:
            for job_id, (state, node, exit_code) in self._sacct([s.job_id for s in missing]).items():
                status = next(s for s in missing if s.job_id == job_id)
                status.state, status.node, status.exit_code = state, node or status.node, exit_code
                missing.remove(status)
                status.changed.set()
        for status in missing:
            status.missing_polls += 1
            if status.missing_polls >= self.vanish_polls:
                status.gone = True
            status.changed.set()  # the waiter may find the job's recorded exit status meanwhile

    def _squeue(self, job_ids: Iterable[str]) -> Dict[str, tuple]:
        ids = list(job_ids)
        self.queries += 1
        proc = run_slurm(
            ["squeue", "--noheader", "--states=all", f"--jobs={','.join(ids)}", "--format=%i|%T|%N|%r|%l"]
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
                rows[parts[0]] = (parts[1], parts[2], parts[3], parts[4])
        return rows

    def _sacct(self, job_ids: List[str]) -> Dict[str, tuple]:
        self.queries += 1
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self._started_at - 60))
        proc = run_slurm(
            [
                "sacct",
                "--noheader",
                "--parsable2",
                "--allocations",
                f"--starttime={start}",
                f"--jobs={','.join(job_ids)}",
                "--format=JobIDRaw,State,NodeList,ExitCode",
            ]
        )
        rows = {}
        if proc.returncode == 0:
            for line in proc.stdout.splitlines():
                parts = line.split("|")
                if len(parts) >= 4 and parts[0] in job_ids:
                    # "CANCELLED by 0" -> CANCELLED
                    rows[parts[0]] = (parts[1].split()[0] if parts[1] else "UNKNOWN", parts[2], parts[3])
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
