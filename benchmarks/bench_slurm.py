"""The slurm backend against the blocking baseline (miniwdl-slurm's one `sbatch --wait` per task,
benchmarks/slurm_blocking_baseline.py), on the same cluster in one run: a scatter of trivial tasks
through `miniwdl run`, the wall time of each, and how much each asked slurmctld: `squeue`/`sacct`
processes started (counted by PATH shims) and slurmctld's own count of job-information RPCs
(`sdiag`, reset before each run; needs root or SlurmUser, and a cluster nobody else is using).

    python benchmarks/bench_slurm.py [--widths 10,100] [--partition P] [--runtime none] [--skip-baseline]

On .ci/provision's one-node cluster the default partition runs two jobs at a time (2 cpus), so a
100-way scatter is bound by SLURM's own job turnover; partition `wide` lets 100 jobs share the
cpus, as on a cluster with free slots, where noticing each job's end is what costs time.

Both sides run with task_concurrency = the width (every job queued at once, as miniwdl-slurm's docs
advise) and node runtime `none` by default (the tasks are trivial; the job handling is what is timed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
WDL = """
version 1.1
workflow bench {
  input { Int n }
  scatter (i in range(n)) { call work { input: i = i } }
}
task work {
  input { Int i }
  command <<< echo ~{i} >>>
  runtime { docker: "IMAGE" cpu: 1 }
}
"""
RPCS = ("REQUEST_JOB_INFO", "REQUEST_JOB_INFO_SINGLE", "REQUEST_JOB_STATE")


def install_baseline(site: Path) -> None:
    """Register the baseline backend for our own miniwdl processes only: a dist-info with its
    entry point, on their PYTHONPATH."""
    dist = site / "slurm_blocking_baseline-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: slurm-blocking-baseline\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[miniwdl.plugin.container_backend]\nslurm_blocking_baseline = slurm_blocking_baseline:BlockingSbatchContainer\n"
    )


def install_shims(bin_dir: Path, counts: Path) -> None:
    """`squeue`/`sacct`/`sbatch` on PATH that count their calls, then run the real command."""
    bin_dir.mkdir(parents=True)
    for name in ("squeue", "sacct", "sbatch"):
        real = shutil.which(name)
        if not real:
            raise SystemExit(f"{name} not found: start the cluster with .ci/provision")
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\necho >> "{counts}/{name}"\nexec {real} "$@"\n')
        shim.chmod(0o755)


def sdiag_rpcs() -> Dict[str, int]:
    out = subprocess.run(["sdiag"], capture_output=True, text=True).stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s*(REQUEST_\w+)\s+\(\s*\d+\)\s+count:(\d+)", out, re.MULTILINE)}


def run_once(backend: str, n: int, runtime: str, partition: str, workdir: Path, site: Path, bin_dir: Path, counts: Path) -> Dict[str, float]:
    for f in counts.glob("*"):
        f.unlink()
    subprocess.run(["sdiag", "-r"], capture_output=True)
    wdl = workdir / "bench.wdl"
    wdl.write_text(WDL.replace("IMAGE", os.environ.get("MINIWDL_JUPYTER_TEST_IMAGE", "debian:bookworm-slim")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIWDL")}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        PYTHONPATH=os.pathsep.join([str(site), str(HERE), env.get("PYTHONPATH", "")]),
        MINIWDL_CFG=str(workdir / "no-such.cfg"),
        MINIWDL__SCHEDULER__CONTAINER_BACKEND=backend,
        MINIWDL__SCHEDULER__TASK_CONCURRENCY=str(n),
        MINIWDL__SLURM__RUNTIME=runtime,
        MINIWDL__SLURM__PARTITION=partition,
        MINIWDL__CALL_CACHE__GET="false",
        MINIWDL__CALL_CACHE__PUT="false",
    )
    run_dir = workdir / f"{backend}-{n}-{partition or 'default'}"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "WDL", "run", str(wdl), f"n={n}", "--dir", f"{run_dir}/."],
        env=env, capture_output=True, text=True, cwd=workdir,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{backend} failed:\n{proc.stderr[-3000:]}")
    rpcs = sdiag_rpcs()
    calls = {name: len((counts / name).read_text().splitlines()) if (counts / name).exists() else 0 for name in ("squeue", "sacct", "sbatch")}
    return {"seconds": seconds, **calls, "job_info_rpcs": sum(rpcs.get(r, 0) for r in RPCS)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", default="10,100", help="scatter widths, comma-separated (default 10,100)")
    parser.add_argument("--runtime", default="none", help="node runtime for both sides (default none)")
    parser.add_argument("--partition", default="", help="SLURM partition for both sides (default: the cluster's default)")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    period = 1.0  # [slurm] poll_seconds default
    with tempfile.TemporaryDirectory(prefix="bench_slurm_") as tmp:
        tmp_path = Path(tmp)
        site, bin_dir, counts = tmp_path / "site", tmp_path / "bin", tmp_path / "counts"
        install_baseline(site)
        install_shims(bin_dir, counts)
        counts.mkdir()
        print(f"{'backend':<26}{'tasks':>6}{'seconds':>9}{'sbatch':>8}{'squeue':>8}{'sacct':>7}{'job-info RPCs':>15}{'RPCs/period':>13}")
        for n in (int(w) for w in args.widths.split(",")):
            results = {}
            for backend in ["slurm"] + ([] if args.skip_baseline else ["slurm_blocking_baseline"]):
                r = run_once(backend, n, args.runtime, args.partition, tmp_path, site, bin_dir, counts)
                results[backend] = r
                per_period = r["job_info_rpcs"] / (r["seconds"] / period)
                print(
                    f"{backend:<26}{n:>6}{r['seconds']:>9.1f}{r['sbatch']:>8}{r['squeue']:>8}{r['sacct']:>7}"
                    f"{r['job_info_rpcs']:>15}{per_period:>13.2f}",
                    flush=True,
                )
            if "slurm_blocking_baseline" in results:
                ratio = results["slurm_blocking_baseline"]["seconds"] / results["slurm"]["seconds"]
                print(f"  {n} tasks: slurm is {ratio:.2f}x as fast as the blocking baseline", flush=True)


if __name__ == "__main__":
    main()
