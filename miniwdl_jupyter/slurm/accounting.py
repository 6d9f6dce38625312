"""SLURM's own account of a finished task job, added to the attempt's usage file (protocol.usage_file)
when the cluster keeps accounting (`sacct` answers).

The in-job sampler (usage_sampler.py) is the first source; accounting confirms it and fills what the
sampler lacked (a sampler that could not start, or one killed with the job at its memory limit):
- every figure sacct gave is kept under "slurm_accounting" (job_id, max_rss_bytes, cpu_seconds,
  elapsed_seconds);
- a figure the sampler did not write (peak_memory_bytes, cpu_seconds, wall_seconds, started_at) is
  taken from it and named in "accounting_fields"; a file that did not exist gets
  "source": "slurm_accounting".

Only where the task runs in the job's own processes (`runtime = none`, apptainer): a docker or
podman container runs under its daemon or conmon, outside the job, so SLURM accounts for the CLI
alone, not the task.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Dict, Optional

from ..usage_sampler import write_usage
from .jobs import run_slurm

# sacct may learn of a job's end a moment after squeue shows it: ask again this many times, a
# second apart, before leaving the figures out.
_TRIES = 3
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# Elapsed / TotalCPU: [D-][HH:]MM:SS[.mmm]
_DURATION = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


def job_figures(job_id: str) -> Dict[str, Any]:
    """What sacct recorded of job `job_id` (an array element as `<array>_<i>`): peak resident
    memory of its batch step, CPU time and elapsed time of the job, its start. Empty if sacct has
    no finished record of it."""
    for attempt in range(_TRIES):
        if attempt:
            time.sleep(1.0)
        proc = run_slurm(
            ["sacct", "--noheader", "--parsable2", "--noconvert", f"--jobs={job_id}",
             "--format=JobID,MaxRSS,TotalCPU,Elapsed,Start"],
            retries=1,
        )
        rows = {line.split("|")[0]: line.split("|") for line in proc.stdout.splitlines() if line.count("|") == 4}
        job, batch = rows.get(job_id), rows.get(f"{job_id}.batch")
        if proc.returncode == 0 and job and batch and batch[1]:  # MaxRSS is written when the step ends
            figures: Dict[str, Any] = {"job_id": job_id, "max_rss_bytes": _bytes(batch[1]),
                                       "cpu_seconds": _seconds(job[2]), "elapsed_seconds": _seconds(job[3]),
                                       "started_at": _epoch(job[4])}
            return {key: value for key, value in figures.items() if value is not None}
    return {}


def add_to_usage_file(path: str, figures: Dict[str, Any], requested: Dict[str, Any]) -> None:
    """Merge `figures` (job_figures) into the usage file at `path` (see the module's docstring);
    `requested`: what the attempt asked for, for a file that did not exist."""
    if not figures:
        return
    usage = _read(path)
    fresh = usage is None
    usage = dict(requested) if fresh else usage
    taken = {"peak_memory_bytes": "max_rss_bytes", "cpu_seconds": "cpu_seconds",
             "wall_seconds": "elapsed_seconds", "started_at": "started_at"}
    filled = [field for field, key in taken.items() if field not in usage and key in figures]
    usage.update({field: figures[taken[field]] for field in filled})
    usage["slurm_accounting"] = {key: value for key, value in figures.items() if key != "started_at"}
    if filled:
        usage["accounting_fields"] = filled
    if fresh:
        usage["source"] = "slurm_accounting"
    write_usage(path, usage)


def _read(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as file:
            usage = json.load(file)
    except (OSError, ValueError):
        return None
    return usage if isinstance(usage, dict) else None


def _bytes(text: str) -> Optional[int]:
    match = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)$", text.strip())
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else None


def _seconds(text: str) -> Optional[float]:
    match = _DURATION.match(text.strip())
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return round(int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), 3)


def _epoch(text: str) -> Optional[float]:
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))  # sacct prints local time
    except ValueError:
        return None
