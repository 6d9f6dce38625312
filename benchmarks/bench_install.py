"""The README's first command on a fresh checkout, against a baseline revision, in the same run:

    pip install -e ".[notebook]" && papermill notebooks/quickstart.ipynb quickstart.out.ipynb -p backend local

Each revision is exported with `git archive` (so no node_modules or extension build is present, as
on a fresh clone), installed into a fresh virtual environment, and the quickstart executed; the
revisions alternate, `--repeat` times. pip's cache is shared by both, as on a developer's machine
after the first install. Prints the median seconds of each step and the ratios.

    python benchmarks/bench_install.py [--baseline main] [--candidate HEAD] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one_install(rev: str, work: Path) -> tuple[float, float]:
    shutil.rmtree(work, ignore_errors=True)
    (work / "src").mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work / "src")], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    bin_dir = work / "venv" / "bin"
    started = time.perf_counter()
    subprocess.run([str(bin_dir / "pip"), "install", "-q", "-e", ".[notebook]"], cwd=work / "src", check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    installed = time.perf_counter()
    subprocess.run([str(bin_dir / "papermill"), "notebooks/quickstart.ipynb", "quickstart.out.ipynb", "-p", "backend", "local"],
                   cwd=work / "src", check=True, capture_output=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(work)})
    return installed - started, time.perf_counter() - installed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--candidate", default="HEAD")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    times: dict = {args.baseline: [], args.candidate: []}
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        for i in range(args.repeat):
            for rev in (args.baseline, args.candidate):
                pip_s, papermill_s = one_install(rev, Path(tmp) / f"{i}-{rev.replace('/', '_')}")
                times[rev].append((pip_s, papermill_s))
                print(f"{rev:>10}  pip install -e: {pip_s:6.1f} s  papermill: {papermill_s:5.1f} s", flush=True)
    med = {rev: [statistics.median(t[k] for t in runs) for k in (0, 1)] for rev, runs in times.items()}
    b, c = med[args.baseline], med[args.candidate]
    print(f"median pip install -e: {args.baseline} {b[0]:.1f} s, {args.candidate} {c[0]:.1f} s, ratio {c[0] / b[0]:.2f}")
    print(f"median papermill:      {args.baseline} {b[1]:.1f} s, {args.candidate} {c[1]:.1f} s, ratio {c[1] / b[1]:.2f}")
    print(f"median total:          ratio {(c[0] + c[1]) / (b[0] + b[1]):.2f}")


if __name__ == "__main__":
    main()
