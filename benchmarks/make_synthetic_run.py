"""Write a run directory in the shape miniwdl 1.16 writes, without running anything.

The display benchmark and the display tests need runs of any size and in any state (10,000-way
scatters, failures, retries) in a second. `SyntheticRun` appends the same JSON log events miniwdl
writes with `--log-json --verbose` (kept so by tests/test_synthetic_run_shape.py, against real docker_swarm runs), holds the exclusive
flock on `workflow.log` while "running" as miniwdl does, makes call directories as task threads
start, and ends with `outputs.json` or `error.json`.

    python benchmarks/make_synthetic_run.py DIR --calls 10000 --finished 9900 [--failed 2]

writes a finished run (the lock is released when the script exits); with `--seconds S` the calls
finish one by one over S seconds, a live run to watch (tests and demos).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional


class SyntheticRun:
    """A run directory written event by event. Call ids are miniwdl's: `call-<name>-<index>`."""

    def __init__(self, run_dir: os.PathLike | str, workflow: str = "synth", backend: str = "docker_swarm", call_dirs: bool = True):
        self.run_dir = Path(run_dir).absolute()
        self.workflow = workflow
        self.backend = backend
        self.call_dirs = call_dirs
        self._source = f"wdl.w:{workflow}"
        self._lock_fd: Optional[int] = None
        self._json = None
        self._plain = None

    # -- the run ---------------------------------------------------------------------------------
    def start(self) -> "SyntheticRun":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        meta = self.run_dir / ".miniwdl_jupyter"
        meta.mkdir(exist_ok=True)
        # What miniwdl_jupyter's launcher records (no pid: liveness comes from the log lock).
        (meta / "launch.json").write_text(json.dumps({"name": self.workflow, "backend": self.backend, "start_time": time.time()}))
        self._plain = open(self.run_dir / "workflow.log", "a")
        self._lock_fd = self._plain.fileno()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # miniwdl holds this for the whole run
        self._json = open(self.run_dir / "workflow.log.json", "a")
        self._event(self._source, "workflow start", "NOTICE", name=self.workflow, dir=str(self.run_dir))
        self._event(self._source, "miniwdl", "NOTICE", version="v1.16.0")
        self.flush()
        return self

    def succeed(self, outputs: Dict[str, Any]) -> None:
        """outputs: values keyed by output name; written namespaced, as miniwdl does."""
        self._event(self._source, "done", "NOTICE")
        self._write_json(self.run_dir / "outputs.json", {f"{self.workflow}.{k}": v for k, v in outputs.items()})
        self.close()

    def fail(self, call_id: str) -> None:
        """End the run with miniwdl's error.json for a failed call (after `fail_call`)."""
        call_dir = self.run_dir / call_id
        self._event(self._source, "call failure propagating", "ERROR", **{"from": call_id, "dir": str(self.run_dir)})
        self._write_json(
            self.run_dir / "error.json",
            {
                "error": "RunFailed",
                "workflow": self.workflow,
                "run": self.workflow,
                "dir": str(self.run_dir),
                "cause": {
                    "error": "CommandFailed",
                    "exit_status": 1,
                    "stderr_file": str(call_dir / "stderr.txt"),
                    "stdout_file": str(call_dir / "stdout.txt"),
                    "run": call_id,
                    "dir": str(call_dir),
                },
            },
        )
        self.close()

    def close(self) -> None:
        """Flush and release the lock: the run is over (or its process died, if nothing was written)."""
        if self._json is not None:
            self._json.close()
            self._json = None
        if self._plain is not None:
            self._plain.close()  # closing the file drops the flock
            self._plain = None

    def flush(self) -> None:
        self._json.flush()
        self._plain.flush()

    # -- calls -----------------------------------------------------------------------------------
    def ready(self, call_ids: Iterable[str]) -> None:
        for call_id in call_ids:
            self._event(self._source, "ready", "NOTICE", job=call_id, callee=call_id.split("-")[1])

    def start_call(self, call_id: str) -> None:
        call_dir = self.run_dir / call_id
        if self.call_dirs:
            (call_dir / "work").mkdir(parents=True, exist_ok=True)
            for name in ("stdout.txt", "stderr.txt", "task.log"):
                (call_dir / name).touch()
        self._event(self._task(call_id), "task setup", "NOTICE", name=call_id.split("-")[1], dir=str(call_dir))

    def effective_runtime(self, call_id: str, cpu: int, memory_bytes: int) -> None:
        """What miniwdl logs (at INFO) once it has evaluated a call's runtime section."""
        self._event(self._task(call_id), "effective runtime", "INFO", docker="ubuntu:22.04", cpu=cpu, memory_reservation=memory_bytes)

    def write_usage(self, call_id: str, usage: Dict[str, Any], attempt: int = 1) -> None:
        """An attempt's usage file, as the usage sampler writes it."""
        self._write_json(self.run_dir / call_id / f"usage{attempt if attempt > 1 else ''}.json", usage)

    def finish_call(self, call_id: str, stderr: str = "") -> None:
        task = self._task(call_id)
        self._event(task, "docker task exit", "NOTICE", state="complete", exit_code=0)
        for line in stderr.splitlines():
            self._event(task + ".stderr", line, "VERBOSE")
        self._event(task, "done", "NOTICE")
        self._event(self._source, "finish", "NOTICE", job=call_id)

    def fail_call(self, call_id: str, stderr: str = "", exit_code: int = 1) -> None:
        task = self._task(call_id)
        call_dir = self.run_dir / call_id
        if self.call_dirs:
            (call_dir / "stderr.txt").write_text(stderr)
        self._event(task, "docker task exit", "ERROR", state="failed", exit_code=exit_code)
        for line in stderr.splitlines():
            self._event(task + ".stderr", line, "VERBOSE")
        self._event(
            task,
            f"task {call_id.split('-')[1]} (synthetic.wdl Ln 1 Col 1) failed",
            "ERROR",
            dir=str(call_dir),
            error="CommandFailed",
            exit_status=exit_code,
            stderr_file=str(call_dir / "stderr.txt"),
            stdout_file=str(call_dir / "stdout.txt"),
        )

    def retry_call(self, call_id: str, prev_retries: int = 0, max_retries: int = 1) -> None:
        # miniwdl logs this at ERROR, with the attempt's error and the retry counts.
        self._event(
            self._task(call_id), "failed task will be retried", "ERROR",
            error="CommandFailed", prev_retries=prev_retries, max_retries=max_retries,
        )

    # -- writing ---------------------------------------------------------------------------------
    def _task(self, call_id: str) -> str:
        return f"{self._source}.t:{call_id}"

    def _event(self, source: str, message: str, level: str, **fields: Any) -> None:
        levelno = {"VERBOSE": 15, "INFO": 20, "NOTICE": 25, "WARNING": 30, "ERROR": 40}[level]
        event = {"message": message, "level": level, **fields, "timestamp": time.time(), "source": source, "levelno": levelno}
        self._json.write(json.dumps(event) + "\n")
        self._plain.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {source} {level} {message}\n")

    @staticmethod
    def _write_json(path: Path, value: Any) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=2))
        os.replace(tmp, path)


def scatter_ids(name: str, n: int) -> List[str]:
    return [f"call-{name}-{i}" for i in range(n)]


def make_run(run_dir: os.PathLike | str, calls: int, finished: int, failed: int = 0, call_dirs: bool = True, name: str = "align") -> SyntheticRun:
    """A running `calls`-way scatter of `name` with `finished` calls done (`failed` of them failed),
    two more running and the rest queued. The returned run still holds its lock: `.close()` it."""
    run = SyntheticRun(run_dir, call_dirs=call_dirs).start()
    ids = scatter_ids(name, calls)
    run.ready(ids)
    for i, call_id in enumerate(ids[:finished]):
        run.start_call(call_id)
        if i < failed:
            run.fail_call(call_id, stderr=f"error: sample {i} is corrupt\n")
        else:
            run.finish_call(call_id)
    for call_id in ids[finished : finished + 2]:
        run.start_call(call_id)
    run.flush()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--finished", type=int, default=None, help="default: all")
    parser.add_argument("--failed", type=int, default=0)
    parser.add_argument("--no-call-dirs", action="store_true", help="skip the per-call directories (faster)")
    parser.add_argument("--seconds", type=float, default=0, help="finish the remaining calls over this many seconds")
    parser.add_argument("--output", action="append", default=[], metavar="NAME=JSON", help="an output of the finished run")
    args = parser.parse_args()
    finished = args.calls if args.finished is None else args.finished
    if args.seconds:
        finished = args.finished or 0
    run = make_run(args.run_dir, args.calls, finished, args.failed, call_dirs=not args.no_call_dirs)
    if args.seconds:
        ids = scatter_ids("align", args.calls)
        for call_id in ids[finished:]:
            time.sleep(args.seconds / max(args.calls - finished, 1))
            run.start_call(call_id)
            run.finish_call(call_id, stderr=f"{call_id} aligned")
            run.flush()
        finished = args.calls
    if finished == args.calls:
        outputs = {"n": args.calls}
        for pair in args.output:
            name, _, value = pair.partition("=")
            outputs[name] = json.loads(value)
        if args.failed:
            run.fail(scatter_ids("align", args.calls)[0])
        else:
            run.succeed(outputs)
    run.close()


if __name__ == "__main__":
    main()
