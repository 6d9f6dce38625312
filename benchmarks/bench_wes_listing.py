"""WES listing benchmark: page through N run folders over HTTP, against re-reading every run per request.

Makes N WES run folders (default 10,000) in the server's layout - `wes.json` plus a finished
3-call run directory in miniwdl's shape (benchmarks/make_synthetic_run.py) - and keeps `--live`
of them running (their log locked by this process, as miniwdl does). Then:

- server: starts `miniwdl-jupyter wes serve` on a free loopback port over that root (start-up =
  building its index from the folders) and pages through every run with GET /runs?page_size=P,
  twice: the first pass reads each ended run once (no summary.json yet, as for folders a server
  never saw end), the second is the steady state (ended runs answered from summary.json, live ones
  polled incrementally). Figures: ms per page over HTTP, median and max.
- baseline (same root, same process, timed in the same run): a naive server's page - list every
  run folder, read its wes.json, attach and poll every run, sort, take one page - per request.

    python benchmarks/bench_wes_listing.py [--runs 10000] [--page-size 100] [--live 20]

Goal (issue 12): every page under 100 ms with 10,000 runs.
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
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from make_synthetic_run import SyntheticRun, make_run  # noqa: E402

from miniwdl_jupyter import runs  # noqa: E402


def make_root(root: Path, n: int, live: int) -> list:
    root.mkdir(parents=True)
    t0 = time.time() - n
    keep = []
    for i in range(n):
        run_id = uuid.uuid4().hex
        folder = root / run_id
        folder.mkdir()
        request = {"workflow_type": "WDL", "workflow_type_version": "1.1", "workflow_url": "main.wdl", "workflow_params": {}, "tags": {"i": str(i)}}
        (folder / "wes.json").write_text(json.dumps({"run_id": run_id, "owner": "", "created": t0 + i, "request": request}))
        if i >= n - live:
            run = SyntheticRun(folder / "run", workflow="align").start()
            run.ready(["call-align-0"])
            run.start_call("call-align-0")
            run.flush()
            keep.append(run)  # still running: its workflow.log stays locked while this process lives
        else:
            make_run(folder / "run", calls=3, finished=3, name="align").succeed({"n": 3})
    return keep


def naive_page(root: Path, page_size: int) -> list:
    """What a server without an index does per request: read and poll every run."""
    items = []
    for folder in root.iterdir():
        record = json.loads((folder / "wes.json").read_text())
        state = runs.attach(folder / "run").poll()
        items.append((record["created"], folder.name, state.status))
    items.sort(reverse=True)
    return items[:page_size]


def page_through(url: str, page_size: int) -> tuple:
    times, seen, token = [], 0, ""
    with httpx.Client(timeout=120) as http:
        while True:
            params = {"page_size": page_size, **({"page_token": token} if token else {})}
            started = time.perf_counter()
            response = http.get(url + "/runs", params=params)
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            body = response.json()
            seen += len(body["runs"])
            token = body["next_page_token"]
            if not token:
                return times, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--live", type=int, default=20)
    parser.add_argument("--naive-repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_wes_") as tmp:
        root = Path(tmp) / "root"
        started = time.perf_counter()
        live = make_root(root, args.runs, args.live)
        print(f"made {args.runs} run folders ({args.live} running) in {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.2f}")

        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIWDL")}
        env.update(MINIWDL_CFG=str(Path(tmp) / "none.cfg"), MINIWDL__JUPYTER__BACKEND="local")
        started = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "miniwdl_jupyter.cli", "--log-level", "WARNING", "wes", "serve", "--port", "0", "--root", str(root)],
            stdout=subprocess.PIPE, env=env, cwd=tmp,
        )
        try:
            url = server.stdout.readline().decode().split()[-1]
            print(f"server up (index of {args.runs} folders built) in {time.perf_counter() - started:.2f} s: {url}")
            times, seen = page_through(url, args.page_size)
            assert seen == args.runs, (seen, args.runs)
            print(f"server, cold (just started; pages read the ended runs the background pass has not reached): "
                  f"{len(times)} pages of {args.page_size}: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms, total {sum(times) / 1000:.2f} s")
            started = time.perf_counter()
            while sum(1 for f in root.iterdir() if (f / "summary.json").exists()) < args.runs - args.live:
                time.sleep(1)
            print(f"every ended run has its summary.json {time.perf_counter() - started:.1f} s later")
            for label in ("steady state, pass 1", "steady state, pass 2"):
                times, seen = page_through(url, args.page_size)
                assert seen == args.runs, (seen, args.runs)
                print(f"server, {label}: {len(times)} pages of {args.page_size}: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms, total {sum(times) / 1000:.2f} s")
            steady = statistics.median(times)
            steady_max = max(times)
        finally:
            server.terminate()
            server.wait()
        naive = []
        for _ in range(args.naive_repeat):
            started = time.perf_counter()
            naive_page(root, args.page_size)
            naive.append((time.perf_counter() - started) * 1000)
        print(f"baseline (re-read every run per request, in-process, no HTTP): {statistics.median(naive):.0f} ms per page (runs: {', '.join(f'{t:.0f}' for t in naive)})")
        print(f"ratio: baseline / server steady-state median page = {statistics.median(naive) / steady:.0f}x; server max page {steady_max:.1f} ms (goal < 100 ms); load average {os.getloadavg()[0]:.2f}")
        for run in live:
            run.close()


if __name__ == "__main__":
    main()
