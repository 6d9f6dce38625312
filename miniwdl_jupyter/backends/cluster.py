"""The template of a cluster backend: each task attempt is one job of a scheduler (SLURM, AWS Batch).

As miniwdl's `SubprocessBase._run` is the whole life of a container CLI process and asks its
subclasses only for the command line, `ClusterJobContainer._run` is the whole life of a job:
submit -> watch -> outcome, cancelling the job on any exception (miniwdl's `Terminated` included).
A subclass supplies:

- `backend` (class attribute): its container_backend name, carried by every event it emits;
- `job_watcher()`: the process's `JobWatcher`, built around the subclass's `query(job_ids)`;
- `submit(logger, terminating, cleanup, command) -> job_id`;
- `cancel_jobs(logger, job_ids)`: stop these jobs (in one call where the scheduler allows it);
- `outcome(logger, job) -> exit status`: how an ending is classified (raise for a lost job, an
  interruption, a limit...);
- optionally `job_running(job)` (the command truly runs now), `check_waiting(logger, job)` (called
  while the job is not final: e.g. report a job stuck in a queue), `cancel_wait_seconds()`.

The job records its command's exit status with `record_exit_status()` (shell) in the attempt's
file named by protocol.py; `recorded_exit_status()` reads it. Events follow protocol.py: "task
started" at submission, "task job" at every change of the job's state, "task running", "task exit".

Why one watcher thread per process: a run with hundreds of tasks must not send the scheduler
hundreds of queries per period. Task threads register their job and wait on an event the watcher
sets; each period the watcher asks about every registered job at once.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
import time
from abc import abstractmethod
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set

from WDL.runtime.error import CommandFailed, Terminated
from WDL.runtime.task_container import TaskContainer

from .. import protocol

# How often a waiting task thread looks at the cancel flag (the job's news arrives from the
# watcher as soon as it has it): the one wait slice of every cluster backend.
WAIT_SLICE = 0.5


class Sighting(NamedTuple):
    """One job as a query saw it."""

    state: str
    final: bool  # the job will not change again
    facts: Dict[str, Any] = {}  # shown in "task job" events (node, reason, log_stream, queue...)
    detail: Any = None  # kept for outcome(), not shown (e.g. Batch's whole job description)


# query(job_ids) -> what it saw of each job it found (a job it did not find is simply absent).
Query = Callable[[List[str]], Dict[str, Sighting]]


@dataclass
class Job:
    """What the watcher knows of one job."""

    job_id: str
    state: str = "SUBMITTED"
    final: bool = False
    facts: Dict[str, Any] = field(default_factory=dict)
    detail: Any = None
    missing_polls: int = 0  # polls in a row whose answer did not include the job
    lost: bool = False  # missing for the watcher's `lost_after` polls, or gone after recording its status
    changed: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.final or self.lost

    def wait(self, timeout: float) -> None:
        """Until the watcher has news of this job, or `timeout` seconds pass."""
        self.changed.wait(timeout)
        self.changed.clear()


class JobWatcher:
    """One polling thread per process: each `period`, one `query` for all registered jobs that
    are not done (in chunks of `chunk` ids, when the scheduler's API limits a request). A job
    missing from `lost_after` answers in a row is lost (0: never)."""

    def __init__(self, name: str, period: float, query: Query, *, chunk: int = 0, lost_after: int = 0) -> None:
        self.name = name
        self.period = period
        self.query = query
        self.chunk = chunk
        self.lost_after = lost_after
        self.queries = 0  # query calls made, for tests and benchmarks
        self._jobs: Dict[str, Job] = {}
        self._cancelled: Set[str] = set()
        self._lock = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._logger = logging.getLogger(f"miniwdl_jupyter.{name}")

    def watch(self, job_id: str) -> Job:
        with self._lock:
            was_idle = not self._jobs
            job = self._jobs.setdefault(job_id, Job(job_id))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"{self.name}-job-watcher", daemon=True)
                self._thread.start()
            if was_idle:  # wake a watcher that sleeps for lack of jobs; otherwise keep the period
                self._lock.notify_all()
            return job

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def active(self) -> List[str]:
        """Ids of the watched jobs that are not done."""
        with self._lock:
            return [job.job_id for job in self._jobs.values() if not job.done]

    def claim_for_cancel(self, job_ids: List[str]) -> List[str]:
        """Those of `job_ids` nobody has cancelled yet (each is cancelled once, by one thread)."""
        with self._lock:
            doomed = sorted(set(job_ids) - self._cancelled)
            self._cancelled.update(doomed)
            return doomed

    def poll_now(self) -> None:
        """Ask for an early poll (e.g. right after a cancel)."""
        with self._lock:
            self._lock.notify_all()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._lock.wait()
                pending = [job for job in self._jobs.values() if not job.done]
            started = time.monotonic()
            step = self.chunk or len(pending) or 1
            for i in range(0, len(pending), step):
                try:
                    self._poll(pending[i : i + step])
                except Exception:  # the watcher must outlive any one bad answer
                    self._logger.exception("%s job watcher: query failed", self.name)
            with self._lock:
                # one period from the start of this poll to the start of the next (a slow
                # scheduler must not stretch the period by its answer time)
                self._lock.wait(max(0.05, self.period - (time.monotonic() - started)))

    def _poll(self, jobs: List[Job]) -> None:
        self.queries += 1
        seen = self.query([job.job_id for job in jobs])
        for job in jobs:
            sighting = seen.get(job.job_id)
            if sighting is None:
                job.missing_polls += 1
                job.lost = job.lost or bool(self.lost_after and job.missing_polls >= self.lost_after)
                job.changed.set()  # the waiter may find the job's recorded exit status meanwhile
                continue
            job.missing_polls = 0
            job.detail = sighting.detail
            if (sighting.state, sighting.final, sighting.facts) != (job.state, job.final, job.facts):
                job.state, job.final, job.facts = sighting.state, sighting.final, dict(sighting.facts)
                job.changed.set()


class ClusterJobContainer(TaskContainer):
    """submit -> watch -> outcome for one task attempt; see the module's docstring for the hooks."""

    backend = ""

    # ---- what a subclass supplies -------------------------------------------------------------

    @abstractmethod
    def job_watcher(self) -> JobWatcher:
        """The process's watcher for this backend's jobs."""

    @abstractmethod
    def submit(self, logger: logging.Logger, terminating: Callable[[], bool], cleanup: ExitStack, command: str) -> str:
        """Submit this attempt's job; returns its id."""

    @abstractmethod
    def cancel_jobs(self, logger: logging.Logger, job_ids: List[str]) -> None:
        """Stop these jobs."""

    @abstractmethod
    def outcome(self, logger: logging.Logger, job: Job) -> int:
        """The task's exit status once its job is done, or the exception its ending calls for."""

    def job_running(self, job: Job) -> bool:
        """Whether the job runs the command now (then miniwdl's running-task counters start)."""
        return job.state == "RUNNING"

    def check_waiting(self, logger: logging.Logger, job: Job) -> None:
        """Called while the job is not done, at every news and wait slice."""

    def cancel_wait_seconds(self) -> float:
        """How long a cancelled attempt waits for its job to end (e.g. for a trap to clean up)."""
        return 0.0

    # ---- the exit-status file, written by the job and read here -------------------------------

    def exit_status_file(self) -> str:
        return str(protocol.exit_status_file(self.host_dir, self.try_counter))

    def record_exit_status(self, variable: str) -> str:
        """Shell that writes `$variable` into the attempt's exit-status file atomically (a reader
        on another host never sees it half-written)."""
        path = shlex.quote(self.exit_status_file())
        partial = shlex.quote(self.exit_status_file() + ".tmp")
        return f"echo ${variable} > {partial} && mv -f {partial} {path}"

    def recorded_exit_status(self) -> Optional[int]:
        return protocol.read_exit_status(self.exit_status_file())  # a fresh open: NFS close-to-open

    # ---- the template -------------------------------------------------------------------------

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        watcher = self.job_watcher()
        with ExitStack() as cleanup:
            poll_stderr = cleanup.enter_context(self.poll_stderr_context(logger))
            if os.path.exists(self.exit_status_file()):
                os.unlink(self.exit_status_file())  # an earlier run's, in a reused directory
            job_id = self.submit(logger, terminating, cleanup, command)
            job = watcher.watch(job_id)
            cleanup.callback(watcher.forget, job_id)
            protocol.task_started(logger, self.backend, job_id=job_id)
            try:
                self._watch(logger, terminating, job, poll_stderr, cleanup)
            except BaseException as exn:
                # miniwdl stopping the run reaches every task thread: cancel all the process's
                # jobs in one go; any other exception ends this attempt only.
                self._cancel(logger, job, watcher.active() if isinstance(exn, Terminated) else [job_id])
                raise
            poll_stderr()
        try:
            exit_code = self.outcome(logger, job)
        except CommandFailed as failed:
            protocol.task_exit(logger, self.backend, failed.exit_status, str(failed), job_id=job_id, state=job.state)
            raise
        protocol.task_exit(logger, self.backend, exit_code, job_id=job_id, state=job.state)
        return exit_code

    def _watch(
        self,
        logger: logging.Logger,
        terminating: Callable[[], bool],
        job: Job,
        poll_stderr: Callable[[], None],
        cleanup: ExitStack,
    ) -> None:
        watcher = self.job_watcher()
        shown: Any = (job.state, {})  # "task started" announced the submitted job
        running = False
        stderr_polled = 0.0
        while True:
            job.wait(WAIT_SLICE)
            if terminating():
                raise Terminated()  # _run's handler cancels the jobs
            if time.monotonic() - stderr_polled >= watcher.period:
                # stderr.txt is on a shared filesystem: read it at the watcher's pace
                stderr_polled = time.monotonic()
                poll_stderr()
            if (job.state, job.facts) != shown:
                shown = (job.state, dict(job.facts))
                protocol.job_state(logger, self.backend, job.job_id, job.state, **job.facts)
            if not running and (job.done or self.job_running(job)):
                running = True
                cleanup.enter_context(self.task_running_context())
                protocol.task_running(logger, self.backend, job_id=job.job_id, **job.facts)
            if job.done:
                return
            # A job that left the scheduler's view (e.g. purged from the queue) after recording its
            # exit status is done.
            if job.missing_polls and self.recorded_exit_status() is not None:
                job.lost = True
                return
            self.check_waiting(logger, job)

    def _cancel(self, logger: logging.Logger, job: Job, job_ids: List[str]) -> None:
        """Cancel `job_ids` (those nobody cancelled yet), then wait up to cancel_wait_seconds()
        for this attempt's job to end."""
        watcher = self.job_watcher()
        doomed = watcher.claim_for_cancel(job_ids)
        if doomed:
            self.cancel_jobs(logger, doomed)
        watcher.poll_now()
        deadline = time.monotonic() + self.cancel_wait_seconds()
        while not job.done and time.monotonic() < deadline:
            job.wait(WAIT_SLICE)
