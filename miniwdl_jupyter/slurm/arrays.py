"""Submitting same-shape sibling tasks as one SLURM job array.

A scatter's calls become ready together, ask for the same resources and placement, and each would
be one `sbatch`: a hundred sbatch processes on the submit host and a hundred submissions for
slurmctld to take one at a time. Instead, the first task thread to submit a given shape (the
sbatch options besides the job's name, directory and output) waits until no sibling has joined
for `[slurm] array_window_seconds`, then submits every attempt gathered meanwhile as one
`sbatch --array`: element i runs the i-th attempt's own job script, in its call directory. Each
attempt is still its own job for everything after submission (`<array id>_<i>`: squeue, sacct,
scancel, the watcher); its job output, kept with the array's, is linked from the call directory.
A shape with no sibling in the window is submitted as a plain job.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import BackendError
from .jobs import submit_job

# SLURM's default MaxArraySize is 1001 (indexes 0-1000).
_MAX_ELEMENTS = 1000
# However busy the siblings keep the window, the first of them waits no longer than this.
_MAX_WAIT = 2.0


@dataclass
class Attempt:
    """One task attempt to submit: its own complete sbatch argv and job name (used as they are
    when it has no sibling), its job script, call directory and job output."""

    sbatch: List[str]
    name: str
    script: str
    call_dir: str
    job_log: str


@dataclass
class _Batch:
    attempts: List[Attempt] = field(default_factory=list)
    joined_at: float = field(default_factory=time.monotonic)
    closed: bool = False
    job_ids: List[str] = field(default_factory=list)
    error: Optional[str] = None
    submitted: threading.Event = field(default_factory=threading.Event)


class ArraySubmitter:
    """One per process: gathers attempts by shape and submits each gathering at once."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._open: Dict[Tuple[str, ...], _Batch] = {}

    def submit(self, shape: Tuple[str, ...], attempt: Attempt, array_dir: str, logger: logging.Logger) -> str:
        """The job id of `attempt` (blocks until its gathering is submitted)."""
        with self._lock:
            batch = self._open.get(shape)
            leader = batch is None or batch.closed or len(batch.attempts) >= _MAX_ELEMENTS
            if leader:
                batch = self._open[shape] = _Batch()
            assert batch is not None
            index = len(batch.attempts)
            batch.attempts.append(attempt)
            batch.joined_at = time.monotonic()
        if leader:
            self._gather(batch)
            with self._lock:
                batch.closed = True
                if self._open.get(shape) is batch:
                    del self._open[shape]
            try:
                batch.job_ids = self._sbatch(shape, batch.attempts, array_dir, logger)
            except Exception as exn:  # every sibling fails with the leader's explanation
                batch.error = str(exn) if isinstance(exn, BackendError) else f"submitting a SLURM job array failed: {exn}"
            finally:
                batch.submitted.set()
        else:
            batch.submitted.wait()
        if batch.error is not None:
            raise BackendError(batch.error)
        return batch.job_ids[index]

    def _gather(self, batch: _Batch) -> None:
        """Until no sibling joined for `window` seconds (or _MAX_WAIT, or the array is full)."""
        started = time.monotonic()
        while True:
            with self._lock:
                quiet = time.monotonic() - batch.joined_at
                if quiet >= self.window or len(batch.attempts) >= _MAX_ELEMENTS or time.monotonic() - started >= _MAX_WAIT:
                    return
            time.sleep(max(0.01, self.window - quiet))

    def _sbatch(self, shape: Tuple[str, ...], attempts: List[Attempt], array_dir: str, logger: logging.Logger) -> List[str]:
        if len(attempts) == 1:
            only = attempts[0]
            return [submit_job(only.sbatch, only.name, logger)]
        os.makedirs(array_dir, exist_ok=True)
        digest = hashlib.sha1("\0".join(a.script for a in attempts).encode()).hexdigest()[:12]
        name = f"wdl-array-{digest}"
        dispatcher = os.path.join(array_dir, f"{name}.sh")
        with open(dispatcher, "w") as out:
            out.write(_dispatcher_script(attempts))
        sbatch = [
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            f"--chdir={array_dir}",
            f"--output={os.path.join(array_dir, '%A_%a.log')}",
            f"--array=0-{len(attempts) - 1}",
            *shape,
            dispatcher,
        ]
        logger.info("slurm job array of %d task attempts: %s", len(attempts), " ".join(shlex.quote(a) for a in sbatch))
        array_id = submit_job(sbatch, name, logger)
        for i, attempt in enumerate(attempts):
            _link(os.path.join(array_dir, f"{array_id}_{i}.log"), attempt.job_log)
        return [f"{array_id}_{i}" for i in range(len(attempts))]


def _dispatcher_script(attempts: List[Attempt]) -> str:
    q = shlex.quote
    return f"""#!/bin/bash
# {len(attempts)} sibling task attempts as one job array, submitted by miniwdl-jupyter's slurm
# backend: element i runs attempt i's own job script in its call directory.
calls=({' '.join(q(a.call_dir) for a in attempts)})
scripts=({' '.join(q(a.script) for a in attempts)})
cd "${{calls[$SLURM_ARRAY_TASK_ID]}}" || exit 1
exec /bin/bash "${{scripts[$SLURM_ARRAY_TASK_ID]}}"
"""


def _link(target: str, path: str) -> None:
    """The attempt's job output where the backend (and a user) looks for it; relative, so the run
    directory may move."""
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(os.path.relpath(target, os.path.dirname(path)), path)
