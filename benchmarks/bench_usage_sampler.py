"""What the usage sampler costs: CPU seconds it spends beside a task, as a share of one core.

    python benchmarks/bench_usage_sampler.py [--seconds 30] [--interval 5] [--repeat 3]

Baseline in the same run: the same command (`sleep SECONDS`) started directly. Each side is one
process tree reaped with wait4, whose rusage counts the process and everything it reaped: the
sampled side's figure is the sampler (interpreter start included) plus `sleep`, the baseline's
`sleep` alone, so their difference is the sampler's cost. Samples alternate (baseline, sampled,
...) so load on a shared machine hits both alike. Also prints the cost of one /proc scan with the
number of processes on this machine (the sampler scans /proc once per sample).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from miniwdl_jupyter import usage_sampler  # noqa: E402


def cpu_of(argv):
    """CPU seconds of a process tree and its wall seconds."""
    start = time.monotonic()
    pid = os.posix_spawnp(argv[0], argv, os.environ, setsid=True)  # its own group, as a task gets
    _, _, rusage = os.wait4(pid, 0)
    return rusage.ru_utime + rusage.ru_stime, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    command = ["sleep", str(args.seconds)]
    out = os.path.join(tempfile.mkdtemp(), "usage.json")
    sampled_argv = usage_sampler.sampled_invocation(sys.executable, out, args.interval, command)
    baseline, sampled, walls = [], [], []
    for _ in range(args.repeat):
        baseline.append(cpu_of(command)[0])
        cpu, wall = cpu_of(sampled_argv)
        sampled.append(cpu)
        walls.append(wall)
    costs = [s - b for s, b in zip(sampled, baseline)]
    share = [cost / wall for cost, wall in zip(costs, walls)]

    def fmt(values, unit=""):
        return f"{statistics.median(values):.4f}{unit} [{min(values):.4f}-{max(values):.4f}]"

    print(f"task: sleep {args.seconds:g} s; sampler interval {args.interval:g} s; {args.repeat} rounds; median [min-max]")
    print(f"baseline (command alone) CPU seconds : {fmt(baseline)}")
    print(f"sampled (sampler + command) CPU s    : {fmt(sampled)}")
    print(f"sampler cost, CPU seconds per task   : {fmt(costs)}")
    print(f"sampler cost, share of one core      : {fmt([100 * s for s in share], '%')}  (goal: under 1%)")
    scanner = usage_sampler.GroupSampler(os.getpgrp(), os.getpid())
    scanner.nvidia_smi = None
    processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
    start = time.process_time()
    for _ in range(50):
        scanner.sample()
    per_scan = (time.process_time() - start) / 50
    print(f"one /proc scan ({processes} processes)   : {1000 * per_scan:.2f} ms CPU")
    print(f"written by the sampled side: {Path(out).read_text()}")


if __name__ == "__main__":
    main()
