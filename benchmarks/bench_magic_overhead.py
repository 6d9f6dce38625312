"""End-to-end time of a 1-task and a 20-task workflow via %%wdl, against the same miniwdl command
started directly, on the same backend, in the same run. The call cache is off for both, so every
task really runs.

The baseline is exactly what the magic starts: the argv recorded in the launch record of a %%wdl
run (`python -m WDL run <staged cell> -i <inputs.json> --dir DIR/. --log-json --verbose
--error-json --path ...`), with a fresh --dir, the same environment overrides the magic sets
(container backend, call cache off), in its own session with stdout/stderr to files, as the local
launcher does. So the difference is what the magic adds around it: parsing and typechecking in the
kernel, binding inputs, writing the launch record, polling the run directory, reading outputs.

    python benchmarks/bench_magic_overhead.py [--backend docker_run] [--repeat 5]

Samples alternate (baseline, magic, baseline, magic, ...) so drift on a shared machine hits both
sides alike. Prints each side's median and range, the ratio of medians, the range of the per-pair
ratios, and how many pairs have the magic slower: when pairs fall on both sides of 1.0x the
overhead is not distinguishable from noise at this sample size.
"""

from __future__ import annotations

import argparse
import json
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


def time_magic(shell, wdl_text: str, n: int, backend: str):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = shell.run_cell(f"%%wdl -o bench_run n={n} --backend {backend} --no-cache --progress none\n{wdl_text}")
    elapsed = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"%%wdl failed: {result.error_in_exec}")
    return elapsed, shell.user_ns["bench_run"].run_dir


def magic_command(run_dir: Path) -> list:
    """The argv the magic started for this run, from its launch record."""
    return json.loads((run_dir / ".miniwdl_jupyter" / "launch.json").read_text())["command"]


def time_same_command(command: list, backend: str, workdir: Path) -> float:
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    argv = list(command)
    argv[argv.index("--dir") + 1] = f"{run_dir}/."
    # What runs._launch adds to the kernel's environment for `--backend B --no-cache`.
    env = dict(os.environ, MINIWDL__SCHEDULER__CONTAINER_BACKEND=backend, MINIWDL__CALL_CACHE__GET="false", MINIWDL__CALL_CACHE__PUT="false")
    started = time.perf_counter()
    with open(run_dir.with_suffix(".stdout"), "wb") as out, open(run_dir.with_suffix(".stderr"), "wb") as err:
        code = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True).returncode
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the magic's command failed ({code}): {run_dir.with_suffix('.stderr').read_text()[-2000:]}")
    return elapsed


def describe(samples: list) -> str:
    return f"median {statistics.median(samples):6.2f} s [{min(samples):.2f}-{max(samples):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="docker_run")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from IPython.core.interactiveshell import InteractiveShell

    home = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)
        os.environ["MINIWDL_CFG"] = str(workdir / "none.cfg")
        wdl_text = WDL.format(image=IMAGE)
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "miniwdl_jupyter")
        print(f"backend={args.backend} repeat={args.repeat} load={os.getloadavg()[0]:.1f} (wall seconds; baseline = the magic's own command)")
        for n in (1, 20):
            # A first magic run records the command (and warms the parse cache and the page cache,
            # for both sides alike); it is not counted.
            _, first_dir = time_magic(shell, wdl_text, n, args.backend)
            command = magic_command(first_dir)
            baseline, magic = [], []
            for _ in range(args.repeat):  # alternating
                baseline.append(time_same_command(command, args.backend, workdir))
                magic.append(time_magic(shell, wdl_text, n, args.backend)[0])
            pairs = [m / b for b, m in zip(baseline, magic)]
            ratio = statistics.median(magic) / statistics.median(baseline)
            slower = sum(p > 1 for p in pairs)
            verdict = "distinguishable from 1.0x" if slower in (0, len(pairs)) else "not distinguishable from 1.0x"
            print(f"{n:>3} task(s): miniwdl command {describe(baseline)}   %%wdl {describe(magic)}")
            print(
                f"            %%wdl / command = {ratio:.3f}x (overhead {100 * (ratio - 1):+.1f}%), per-pair ratios "
                f"{min(pairs):.3f}-{max(pairs):.3f}x, magic slower in {slower}/{len(pairs)} pairs: {verdict}"
            )
        print(f"load at the end: {os.getloadavg()[0]:.1f}")
        os.chdir(home)  # the temporary directory goes away; IPython's atexit needs a cwd


if __name__ == "__main__":
    sys.exit(main())
