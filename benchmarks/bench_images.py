"""Notebook-step image builds: a cache hit against a first build, on the local Docker daemon.

    python benchmarks/bench_images.py [--base debian:bookworm-slim] [--hits 20] [--rounds 3]

Measures, in one run, --rounds times (each round on its own throw-away base, so the builds
alternate with the hits they are compared with):
- cold first build: a base image nothing was built on yet (a throw-away `LABEL` child of --base,
  so it has a new id), i.e. python3 from apt + the step tooling + the requirement from PyPI;
- warm first build: a new requirement set on a base already used (Docker's layer cache holds the
  python3 and tooling layers: only the requirements layer and the venv copy are new);
- cache hit: build_image() again with the same inputs (median and max of --hits calls), and the
  first call of a fresh process (importing the Docker SDK included).
Each figure is printed as median [min-max] over the rounds (hits: over all rounds' hits). The
images it makes are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from miniwdl_jupyter import images

REQUIREMENT = "pypng"


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def throwaway_base(base: str) -> str:
    name = f"miniwdl-jupyter-bench-base:{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as context:
        Path(context, "Dockerfile").write_text(f"FROM {base}\nLABEL bench={name}\n")
        subprocess.run(["docker", "build", "-q", "-t", name, context], check=True, capture_output=True,
                       env=dict(os.environ, DOCKER_BUILDKIT="0"))
    return name


def fresh_process_hit(base: str) -> float:
    code = (
        "import time; t = time.perf_counter(); from miniwdl_jupyter import images; "
        f"images.build_image([{REQUIREMENT!r}], base_image={base!r}); print(time.perf_counter() - t)"
    )
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def spread(samples: list, scale: float = 1.0, digits: int = 1) -> str:
    values = [scale * v for v in samples]
    return f"{statistics.median(values):7.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=os.environ.get("MINIWDL_JUPYTER_TEST_IMAGE", "debian:bookworm-slim"))
    parser.add_argument("--hits", type=int, default=20, help="cache hits per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    colds, warms, hits, fresh = [], [], [], []
    print(f"base {args.base} (a throw-away child per round), requirement {REQUIREMENT}, load {os.getloadavg()[0]:.1f}")
    for _ in range(args.rounds):
        made = []
        base = throwaway_base(args.base)
        made.append(base)
        try:
            tag, cold = timed(images.build_image, [REQUIREMENT], base_image=base, log=lambda line: None)
            made.append(tag)
            hits += [timed(images.build_image, [REQUIREMENT], base_image=base)[1] for _ in range(args.hits)]
            fresh.append(fresh_process_hit(base))
            pinned = f"{REQUIREMENT}==0.20220715.0"
            tag2, warm = timed(images.build_image, [pinned], base_image=base, log=lambda line: None)
            made.append(tag2)
            colds.append(cold)
            warms.append(warm)
        finally:
            subprocess.run(["docker", "image", "rm", *made], capture_output=True)

    print(f"rounds {args.rounds}, load at the end {os.getloadavg()[0]:.1f}; median [min-max]")
    print(f"cold first build (apt python3 + tooling + requirement): {spread(colds)} s")
    print(f"warm first build (new requirements, cached layers):     {spread(warms)} s")
    print(f"cache hit ({len(hits)} calls):                            {spread(hits, 1000)} ms")
    print(f"cache hit, first call in a fresh process:                {spread(fresh, 1000)} ms")
    print(f"cold build / cache hit (medians): {statistics.median(colds) / statistics.median(hits):.0f}x; "
          f"slowest hit {max(hits) * 1000:.1f} ms against fastest cold build {min(colds):.1f} s")


if __name__ == "__main__":
    main()
