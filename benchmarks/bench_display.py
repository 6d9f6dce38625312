"""Display benchmark: a 10,000-call run directory watched from a real ipykernel.

For each view (widget, html) it measures, inside the kernel:
- first view: reading the run directory (`Run(...).poll()`, the monitor's first full read) and
  building + displaying the view;
- refresh: after 100 more calls finish (written by this process), one `run.poll()` and one
  `view.update(state)` (median of 5 rounds);
- memory: the kernel's RSS growth from before the run was opened to after the last refresh.
Goals (issue 4): first view < 1 s, refresh < 20 ms, memory < 50 MB.

    python benchmarks/bench_display.py [--calls 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_synthetic_run import make_run, scatter_ids  # noqa: E402

SETUP = """
import json, time, resource
from miniwdl_jupyter.runs import Run
from miniwdl_jupyter.display import progress_view
import ipywidgets  # imported up front: the import is not the view's cost
def rss_mb():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
rss0 = rss_mb()
"""

FIRST_VIEW = """
t0 = time.perf_counter()
run = Run({run_dir!r})
state = run.poll()
t1 = time.perf_counter()
view = progress_view(run, {mode!r})
view.update(state)
t2 = time.perf_counter()
print(json.dumps({{"poll": t1 - t0, "view": t2 - t1, "calls": state.task_calls}}))
"""

REFRESH = """
t0 = time.perf_counter()
state = run.poll()
t1 = time.perf_counter()
view._last_render = 0  # measure a real redraw, not the rate limiter
view.update(state)
t2 = time.perf_counter()
print(json.dumps({"poll": t1 - t0, "update": t2 - t1, "changed": len(state.changed), "rss": rss_mb() - rss0}))
"""


def kernel_json(kc, code: str) -> dict:
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))

    kc.execute_interactive(code, timeout=300, output_hook=hook, allow_stdin=False)
    return json.loads("".join(out).strip().splitlines()[-1]) if out else {}


def bench(mode: str, calls: int, workdir: Path) -> dict:
    from jupyter_client.manager import start_new_kernel

    run_dir = workdir / f"run-{mode}"
    writer = make_run(run_dir, calls, calls - 600, failed=2)
    ids = scatter_ids("align", calls)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir))
    try:
        kernel_json(kc, SETUP)
        first = kernel_json(kc, FIRST_VIEW.format(run_dir=str(run_dir), mode=mode))
        rounds = []
        for r in range(5):
            for call_id in ids[calls - 600 + r * 100 : calls - 600 + (r + 1) * 100]:
                writer.start_call(call_id)
                writer.finish_call(call_id)
            writer.flush()
            rounds.append(kernel_json(kc, REFRESH))
    finally:
        writer.close()
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return {
        "mode": mode,
        "calls": first["calls"],
        "first_poll_s": first["poll"],
        "first_view_s": first["view"],
        "refresh_poll_ms": 1000 * statistics.median(r["poll"] for r in rounds),
        "refresh_update_ms": 1000 * statistics.median(r["update"] for r in rounds),
        "changed_per_refresh": rounds[-1]["changed"],
        "kernel_rss_mb": rounds[-1]["rss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(mode, args.calls, Path(tmp)) for mode in ("widget", "html")]
    print("| view | calls | first read (poll) | first view | refresh: poll | refresh: view update | kernel RSS growth |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['mode']} | {r['calls']:,} | {r['first_poll_s']:.2f} s | {1000 * r['first_view_s']:.1f} ms "
            f"| {r['refresh_poll_ms']:.1f} ms | {r['refresh_update_ms']:.1f} ms | {r['kernel_rss_mb']:.1f} MB |"
        )


if __name__ == "__main__":
    main()
