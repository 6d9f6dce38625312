"""End-to-end time of a 1-task and a 20-task workflow via %%wdl, against `miniwdl run` on the same
backend, in the same run. The call cache is off for both, so every task really runs. The baseline
is started as `python -m WDL run` (what the magic starts), so a pyenv shim's start-up does not
flatter the magic.

    python benchmarks/bench_magic_overhead.py [--backend docker_swarm] [--repeat 3]

Prints the median wall time of each and the magic's overhead as a ratio.
"""

from __future__ import annotations

import argparse
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
  input {{ Int n }}
  scatter (i in range(n)) {{ call echo {{ input: i = i }} }}
}}
task echo {{
  input {{ Int i }}
  command <<< echo ~{{i}} >>>
  runtime {{ docker: "{image}" cpu: 1 }}
}}
"""


def time_miniwdl_run(wdl: Path, n: int, backend: str, workdir: Path) -> float:
    env = dict(os.environ, MINIWDL__SCHEDULER__CONTAINER_BACKEND=backend, MINIWDL__CALL_CACHE__GET="false", MINIWDL__CALL_CACHE__PUT="false")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "WDL", "run", str(wdl), f"n={n}", "--dir", f"{tempfile.mkdtemp(dir=workdir)}/.", "--log-json", "--verbose"],
        check=True,
        env=env,
        capture_output=True,
    )
    return time.perf_counter() - started


def time_magic(shell, wdl_text: str, n: int, backend: str) -> float:
    started = time.perf_counter()
    result = shell.run_cell(f"%%wdl n={n} --backend {backend} --no-cache --progress none\n{wdl_text}")
    elapsed = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"%%wdl failed: {result.error_in_exec}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="docker_swarm")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from IPython.core.interactiveshell import InteractiveShell

    home = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)
        os.environ["MINIWDL_CFG"] = str(workdir / "none.cfg")
        wdl_text = WDL.format(image=IMAGE)
        wdl = workdir / "bench.wdl"
        wdl.write_text(wdl_text)
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "miniwdl_jupyter")
        print(f"backend={args.backend} repeat={args.repeat} (median wall seconds)")
        for n in (1, 20):
            baseline, magic = [], []
            for _ in range(args.repeat):  # interleaved, so drift hits both alike
                baseline.append(time_miniwdl_run(wdl, n, args.backend, workdir))
                magic.append(time_magic(shell, wdl_text, n, args.backend))
            b, m = statistics.median(baseline), statistics.median(magic)
            print(f"{n:>3} task(s): miniwdl run {b:6.2f} s   %%wdl {m:6.2f} s   overhead {100 * (m / b - 1):+5.1f}%")
        os.chdir(home)  # the temporary directory goes away; IPython's atexit needs a cwd

if __name__ == "__main__":
    sys.exit(main())
