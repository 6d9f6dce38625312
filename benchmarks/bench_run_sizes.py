"""Listing 1,000 runs with their sizes (`%wdl runs`, the runs sidebar): sizes kept once a run has
ended (disk_usage.run_size) against the baseline of walking every run directory each time.

    python benchmarks/bench_run_sizes.py [--runs 1000] [--calls 4] [--files 5] [--repeat 5] [--latency-ms 0.5]

1,000 finished synthetic runs (benchmarks/make_synthetic_run.py; each with CALLS call directories
holding FILES files of 4 kB) under one run root. Each sample is a whole listing as `%wdl runs` does
it: `list_runs()` (which polls each run) plus every run's size, either kept (`run_size(..., ended=True)`,
after one warm-up listing has kept them) or walked (`tree_bytes`, the baseline). Samples alternate
between the two sides. Twice: on the local disk, and with NFS-like latency stood in: every stat,
lstat, scandir and open of this process sleeps LATENCY first (an NFS/EFS metadata round trip;
miniwdl-jupyter keeps no file handle or cache that would avoid them).
"""

from __future__ import annotations

import argparse
import builtins
import io
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_synthetic_run import SyntheticRun  # noqa: E402

from miniwdl_jupyter import disk_usage  # noqa: E402
from miniwdl_jupyter.runs import list_runs  # noqa: E402


def make_runs(root: Path, runs: int, calls: int, files: int) -> None:
    for i in range(runs):
        run = SyntheticRun(root / f"20260101_{i:06d}_synth").start()
        ids = [f"call-align-{j}" for j in range(calls)]
        run.ready(ids)
        for call_id in ids:
            run.start_call(call_id)
            work = run.run_dir / call_id / "work"
            work.mkdir(parents=True, exist_ok=True)
            for k in range(files):
                (work / f"part{k}.txt").write_bytes(b"x" * 4096)
            run.finish_call(call_id)
        run.succeed({"synth.n": calls})
        run.close()


def listing(root: Path, kept: bool) -> int:
    total = 0
    for run in list_runs(root):
        state = run.poll()
        total += disk_usage.run_size(run.run_dir, state.done) if kept else disk_usage.tree_bytes(run.run_dir)
    return total


@contextmanager
def latency(seconds: float):
    """Every metadata operation and open of this process waits `seconds` first."""
    if seconds <= 0:
        yield
        return
    originals = {(os, "stat"): os.stat, (os, "lstat"): os.lstat, (os, "scandir"): os.scandir, (os, "open"): os.open, (io, "open"): io.open, (builtins, "open"): builtins.open}

    def slow(fn):
        def wrapper(*args, **kwargs):
            time.sleep(seconds)
            return fn(*args, **kwargs)

        return wrapper

    for (module, name), fn in originals.items():
        setattr(module, name, slow(fn))
    try:
        yield
    finally:
        for (module, name), fn in originals.items():
            setattr(module, name, fn)


def summary(samples) -> str:
    return f"{statistics.median(samples):.3f} [{min(samples):.3f}-{max(samples):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sizes-") as tmp:
        root = Path(tmp) / "wdl_runs"
        made = time.monotonic()
        make_runs(root, args.runs, args.calls, args.files)
        print(f"{args.runs} runs x {args.calls} calls x {args.files} files made in {time.monotonic() - made:.1f} s; load average {os.getloadavg()[0]:.1f}")
        listing(root, kept=True)  # warm-up: the first listing walks each ended run once and keeps its size
        print("| filesystem | sizes kept (s) | walked every time: baseline (s) | baseline / kept |")
        print("|---|---|---|---|")
        for label, delay in (("local disk", 0.0), (f"NFS-like: +{args.latency_ms} ms per stat/open/scandir", args.latency_ms / 1000)):
            kept, walked = [], []
            with latency(delay):
                for _ in range(args.repeat):
                    for side, samples in ((True, kept), (False, walked)):
                        start = time.perf_counter()
                        listing(root, kept=side)
                        samples.append(time.perf_counter() - start)
            ratio = statistics.median(walked) / statistics.median(kept)
            print(f"| {label} | {summary(kept)} | {summary(walked)} | {ratio:.1f}x |")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
