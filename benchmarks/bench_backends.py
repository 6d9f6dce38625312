"""Container backends head to head, in one run on one machine: a 100-way scatter of trivial tasks
and a 20-way scatter of 2-second tasks, on docker_run, docker_swarm and local, plus the floor: a
plain loop of `docker run --rm IMAGE true` at the same concurrency.

    python benchmarks/bench_backends.py [--echo 100] [--sleepers 20] [--concurrency N] [--repeat 3]

Each workflow goes through `miniwdl run` (the call cache off), as a user would run it. Samples
alternate (floor, each backend, floor, each backend, ...) --repeat times, so drift on a shared
machine hits every side alike; each side is printed as median [min-max], and each ratio as the
ratio of medians with the range of its per-round ratios and how many rounds fall above 1.0x
(all or none: distinguishable from 1.0x at this sample size; some: not).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGE = os.environ.get("MINIWDL_JUPYTER_TEST_IMAGE", "debian:bookworm-slim")
WDL = """
version 1.1
workflow bench {{
  input {{ Int n  Int seconds }}
  scatter (i in range(n)) {{ call work {{ input: i = i, seconds = seconds }} }}
}}
task work {{
  input {{ Int i  Int seconds }}
  command <<< echo ~{{i}}; sleep ~{{seconds}} >>>
  runtime {{ docker: "{image}" cpu: 1 }}
}}
"""


def time_backend(wdl: Path, backend: str, n: int, seconds: int, concurrency: int, workdir: Path) -> float:
    env = dict(
        os.environ,
        MINIWDL__SCHEDULER__CONTAINER_BACKEND=backend,
        MINIWDL__SCHEDULER__TASK_CONCURRENCY=str(concurrency),
        MINIWDL__CALL_CACHE__GET="false",
        MINIWDL__CALL_CACHE__PUT="false",
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "WDL", "run", str(wdl), f"n={n}", f"seconds={seconds}", "--dir", str(workdir / "runs")],
        env=env, capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{backend} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def time_floor(n: int, seconds: int, concurrency: int) -> float:
    command = ["docker", "run", "--rm", IMAGE, "sleep", str(seconds)] if seconds else ["docker", "run", "--rm", IMAGE, "true"]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: subprocess.run(command, check=True, capture_output=True), range(n)))
    return time.perf_counter() - started


def spread(samples: list) -> str:
    return f"{statistics.median(samples):.1f} [{min(samples):.1f}-{max(samples):.1f}]"


def ratio(name: str, top: list, bottom: list) -> str:
    pairs = [t / b for t, b in zip(top, bottom)]
    above = sum(p > 1 for p in pairs)
    verdict = "distinguishable from 1.0x" if above in (0, len(pairs)) else "not distinguishable from 1.0x"
    return (
        f"{name} = {statistics.median(top) / statistics.median(bottom):.2f}x "
        f"(rounds {min(pairs):.2f}-{max(pairs):.2f}x, above 1.0x in {above}/{len(pairs)}: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo", type=int, default=100)
    parser.add_argument("--sleepers", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--backends", default="docker_run,docker_swarm,local", help="comma-separated subset to time")
    parser.add_argument("--repeat", type=int, default=3, help="alternating samples per side")
    args = parser.parse_args()
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["MINIWDL_CFG"] = str(workdir / "none.cfg")
        wdl = workdir / "bench.wdl"
        wdl.write_text(WDL.format(image=IMAGE))
        docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True).stdout.strip()
        print(f"concurrency={args.concurrency} image={IMAGE} docker={docker} repeat={args.repeat} (wall seconds, median [min-max])")
        workloads = ((f"{args.echo}-way echo", args.echo, 0), (f"{args.sleepers}-way sleep 2", args.sleepers, 2))
        for label, n, seconds in (w for w in workloads if w[1] > 0):
            times: dict = {"floor": [], **{b: [] for b in backends}}
            loads = []
            for _ in range(args.repeat):
                times["floor"].append(time_floor(n, seconds, args.concurrency))
                for b in backends:
                    times[b].append(time_backend(wdl, b, n, seconds, args.concurrency, workdir))
                loads.append(os.getloadavg()[0])  # the machine may be shared: how quiet it was
            print(f"{label}: " + "  ".join(f"{side} {spread(t)}" for side, t in times.items()) + f"  (load {min(loads):.1f}-{max(loads):.1f})")
            if {"docker_run", "docker_swarm"} <= set(backends):
                print("  " + ratio("docker_swarm/docker_run", times["docker_swarm"], times["docker_run"]))
            for b in backends:
                print("  " + ratio(f"{b}/floor", times[b], times["floor"]))


if __name__ == "__main__":
    main()
