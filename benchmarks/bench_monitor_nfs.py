"""File operations per monitor poll of a 1,000-call run, the cost that matters when the run
directory is on NFS/EFS (every open, stat and directory read is a round trip to the server).

    python benchmarks/bench_monitor_nfs.py [--calls 1000] [--polls 200]

A synthetic run (benchmarks/make_synthetic_run.py) with half its calls finished, held "running"
(its log locked) by this process; a child process polls it with `RunMonitor.poll()` under
`strace -f -c`, once with 1 poll and once with 1 + POLLS polls: the difference divided by POLLS
is the steady per-poll cost, by system call. Two cases: nothing changed between polls, and 10 new
log events per poll (a live run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_synthetic_run import make_run  # noqa: E402

FILE_CALLS = ("openat", "open", "stat", "newfstatat", "statx", "lstat", "fstat", "access", "getdents64", "read", "readlink", "flock", "close")
CHILD = """
import sys, json
from pathlib import Path
sys.path.insert(0, {bench!r})
from miniwdl_jupyter.monitor import RunMonitor
from make_synthetic_run import SyntheticRun
monitor = RunMonitor({run_dir!r})
monitor.poll()
log = open({log!r}, "a")
for i in range({polls}):
    for j in range({events}):
        log.write(json.dumps({{"message": "aws_batch job status", "source": "wdl.w:synth.t:call-align-1", "level": "NOTICE", "levelno": 25, "timestamp": 0, "job_id": "x", "status": "RUNNING"}}) + "\\n")
    log.flush()
    monitor.poll()
"""


def count(run_dir: Path, polls: int, events: int) -> Counter:
    code = CHILD.format(bench=str(Path(__file__).resolve().parent), run_dir=str(run_dir), log=str(run_dir / "workflow.log.json"), polls=polls, events=events)
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        subprocess.run(["strace", "-f", "-c", "-o", out.name, sys.executable, "-c", code], check=True, capture_output=True)
        counts: Counter = Counter()
        for line in Path(out.name).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[-1] in FILE_CALLS and parts[3].isdigit():
                counts[parts[-1]] = int(parts[3])
        return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        run = make_run(Path(tmp) / "run", args.calls, args.calls // 2)  # this process holds its log lock
        for label, events in (("nothing changed", 0), ("10 new events per poll", 10)):
            base = count(run.run_dir, 0, events)
            many = count(run.run_dir, args.polls, events)
            per_poll = {k: (many[k] - base[k]) / args.polls for k in sorted(set(many) | set(base))}
            total = sum(v for k, v in per_poll.items() if k != "close")
            print(
                f"{args.calls} calls, {label}: {total:.1f} file system calls per poll ("
                + ", ".join(f"{k} {v:.1f}" for k, v in per_poll.items() if v >= 0.05)
                + ")"
            )
        run.close()


if __name__ == "__main__":
    main()
