"""Display benchmark: a 10,000-call run directory watched from a real ipykernel.

For each view (widget, html) it measures, inside the kernel:
- first view: reading the run directory (`Run(...).poll()`, the monitor's first full read) and
  building + displaying the view;
- refresh: after 100 more calls finish (written by this process), one `run.poll()` and one
  `view.update(state)` (median of 5 rounds);
- memory: the kernel's RSS growth from before the run was opened to after the last refresh.
Goals (issue 4): first view < 1 s, refresh < 20 ms, memory < 50 MB.

Baseline, timed in the same kernel on the same run directory: a naive reader that re-reads the
whole `workflow.log.json` with `json.loads` on every line and tallies each call's state (no view
at all), run in a second kernel so the view's kernel holds only the run and its view. The first
read alternates with it (--first-samples rounds each: a fresh `Run().poll()`, then the naive read);
each refresh round times the naive read right after the view kernel's poll + update.
Each figure is printed as median [min-max] over its samples, with the ratio of medians.

The first view (a fresh `Run().poll()` plus building and drawing the view) is also timed in the
second kernel, --first-samples times, and its goal status printed from those samples: under 1 s
up to 10,000 calls (issue 4), under 2 s for more (issue 18: 100,000 calls).

    python benchmarks/bench_display.py [--calls 10000] [--first-samples 3] [--goal SECONDS]
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

def naive_read(run_dir):
    # The baseline: re-read the whole JSON log, json.loads per line, tally each call's state.
    states = {}
    with open(run_dir + '/workflow.log.json') as f:
        for line in f:
            event = json.loads(line)
            message, source = event.get('message', ''), event.get('source', '')
            if message == 'ready':
                states[event['job']] = 'queued'
            elif message == 'finish':
                states[event['job']] = 'succeeded'
            elif '.t:' in source and not source.endswith('.stderr'):
                call = source.rsplit('.t:', 1)[1]
                if message == 'task setup':
                    states[call] = 'running'
                elif message.endswith(' failed'):
                    states[call] = 'failed'
    counts = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return counts
"""

FIRST_READS = """
monitor_s, view_s, naive_s = [], [], []
for _ in range({samples}):
    t0 = time.perf_counter(); run = Run({run_dir!r}); state = run.poll(); monitor_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); view = progress_view(run, {mode!r}); view.update(state); view_s.append(time.perf_counter() - t0)
    del run, state, view
    t0 = time.perf_counter(); naive_read({run_dir!r}); naive_s.append(time.perf_counter() - t0)
print(json.dumps({{"monitor": monitor_s, "view": view_s, "naive": naive_s}}))
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

NAIVE = """
t0 = time.perf_counter()
naive_read({run_dir!r})
print(json.dumps({{"naive": time.perf_counter() - t0}}))
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


def spread(samples: list, scale: float = 1.0, unit: str = "ms", digits: int = 1) -> str:
    values = [scale * v for v in samples]
    return f"{statistics.median(values):.{digits}f} {unit} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def bench(mode: str, calls: int, workdir: Path, first_samples: int) -> dict:
    from jupyter_client.manager import start_new_kernel

    run_dir = workdir / f"run-{mode}"
    writer = make_run(run_dir, calls, calls - 600, failed=2)
    ids = scatter_ids("align", calls)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir))
    # The baseline and the repeated first reads run in a second kernel, so that the view's kernel
    # holds only the run and its view (its RSS growth is the memory figure).
    km2, kc2 = start_new_kernel(kernel_name="python3", cwd=str(workdir))
    try:
        kernel_json(kc, SETUP)
        kernel_json(kc2, SETUP)
        first = kernel_json(kc, FIRST_VIEW.format(run_dir=str(run_dir), mode=mode))
        reads = kernel_json(kc2, FIRST_READS.format(run_dir=str(run_dir), mode=mode, samples=first_samples))
        rounds = []
        for r in range(5):
            for call_id in ids[calls - 600 + r * 100 : calls - 600 + (r + 1) * 100]:
                writer.start_call(call_id)
                writer.finish_call(call_id)
            writer.flush()
            rounds.append({**kernel_json(kc, REFRESH), **kernel_json(kc2, NAIVE.format(run_dir=str(run_dir)))})
    finally:
        writer.close()
        for manager, client in ((km, kc), (km2, kc2)):
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    refresh = [r["poll"] + r["update"] for r in rounds]
    naive = [r["naive"] for r in rounds]
    return {
        "mode": mode,
        "calls": first["calls"],
        "first_poll_s": first["poll"],
        "first_view_s": first["view"],
        "first_reads": reads["monitor"],
        "first_naive": reads["naive"],
        "first_views": reads["view"],
        "refresh_poll": [r["poll"] for r in rounds],
        "refresh_update": [r["update"] for r in rounds],
        "refresh": refresh,
        "refresh_naive": naive,
        "changed_per_refresh": rounds[-1]["changed"],
        "kernel_rss_mb": rounds[-1]["rss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--first-samples", type=int, default=3)
    parser.add_argument("--goal", type=float, default=None, help="first view goal in seconds (default: 1 s up to 10,000 calls (issue 4), 2 s above (issue 18))")
    args = parser.parse_args()
    goal = args.goal if args.goal is not None else (1.0 if args.calls <= 10_000 else 2.0)
    import os

    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(mode, args.calls, Path(tmp), args.first_samples) for mode in ("widget", "html")]
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print("| view | calls | first read (poll) | first view | refresh: poll | refresh: view update | kernel RSS growth |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['mode']} | {r['calls']:,} | {r['first_poll_s']:.2f} s | {1000 * r['first_view_s']:.1f} ms "
            f"| {spread(r['refresh_poll'], 1000)} | {spread(r['refresh_update'], 1000)} | {r['kernel_rss_mb']:.1f} MB |"
        )
    print()
    print("Against the baseline (naive full re-read of workflow.log.json, json.loads per line):")
    print("| view | first read: monitor | first read: naive | ratio | refresh: poll + update | refresh: naive re-read | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        first_ratio = statistics.median(r["first_reads"]) / statistics.median(r["first_naive"])
        refresh_ratio = statistics.median(r["refresh"]) / statistics.median(r["refresh_naive"])
        print(
            f"| {r['mode']} | {spread(r['first_reads'], 1, 's', 2)} | {spread(r['first_naive'], 1, 's', 2)} | {first_ratio:.2f}x "
            f"| {spread(r['refresh'], 1000)} | {spread(r['refresh_naive'], 1000)} | {refresh_ratio:.3f}x |"
        )
    print()
    print(f"First view = first read + building and drawing the view, fresh each sample in the second kernel (goal: under {goal:g} s):")
    print("| view | first read | view | first view | goal |")
    print("|---|---|---|---|---|")
    for r in results:
        firsts = [read + view for read, view in zip(r["first_reads"], r["first_views"])]
        met = "met" if statistics.median(firsts) < goal else "not met"
        every = "every sample" if max(firsts) < goal else f"{sum(f < goal for f in firsts)} of {len(firsts)} samples"
        print(
            f"| {r['mode']} | {spread(r['first_reads'], 1, 's', 2)} | {spread(r['first_views'], 1, 's', 2)} "
            f"| {spread(firsts, 1, 's', 2)} | {met} by the median ({every} under {goal:g} s) |"
        )


if __name__ == "__main__":
    main()
