"""The live workflow graph's cost per refresh (issue 18), against the same board without a graph.

bench_display.py's run (a synthetic 10,000-way scatter of `align`, 9,400 calls finished), plus the
WDL miniwdl keeps in the run directory: a workflow of 8 steps around that scatter (a scatter, a
conditional, a sub-workflow-sized chain of calls). Two views of each kind (widget, html) watch the
one run in one real ipykernel: one draws the graph, the baseline is the same view whose graph
cannot be read (a LiveGraph over a directory with no WDL: what a view of such a run does).
Each round, 100 more calls finish (so the scatter's node and counts change and the graph is
recoloured), the kernel polls once, then times `view.update(state)` of both views, alternating
which goes first. Figures: median [min-max] over the rounds, and the ratio of medians.
The refresh budget (BENCHMARKS.md, issue 4): poll + update under 20 ms.

    python benchmarks/bench_live_graph.py [--calls 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_display import SETUP, kernel_json, spread  # noqa: E402
from make_synthetic_run import make_run, scatter_ids  # noqa: E402

WORKFLOW = """version 1.1
workflow synth {
  input { Int n = 10  Boolean qc = true }
  call prepare
  scatter (i in range(n)) { call align { input: i = i, ref = prepare.ref } }
  call merge { input: xs = align.out }
  if (qc) { call check { input: x = merge.out } }
  call index { input: x = merge.out }
  call call_variants { input: x = index.out }
  call annotate { input: x = call_variants.out }
  call summarize { input: x = annotate.out, ok = check.out }
}
task prepare { command <<< echo 1 >>> output { Int ref = 1 } }
task align { input { Int i  Int ref } command <<< echo ~{i} >>> output { Int out = 1 } }
task merge { input { Array[Int] xs } command <<< echo >>> output { Int out = 1 } }
task check { input { Int x } command <<< echo >>> output { Int out = 1 } }
task index { input { Int x } command <<< echo >>> output { Int out = 1 } }
task call_variants { input { Int x } command <<< echo >>> output { Int out = 1 } }
task annotate { input { Int x } command <<< echo >>> output { Int out = 1 } }
task summarize { input { Int x  Int? ok } command <<< echo >>> }
"""

VIEWS = """
from miniwdl_jupyter.display.live_graph import LiveGraph
run = Run({run_dir!r})
state = run.poll()
with_graph = progress_view(run, {mode!r})
without = progress_view(run, {mode!r})
without.live_graph = LiveGraph({empty!r})  # no WDL there: the board without a graph
for view in (with_graph, without):
    view.update(state)
    view.live_graph.ready.wait(60)
print(json.dumps({{"graph": bool(with_graph.live_graph.layout), "baseline_graph": bool(without.live_graph.layout)}}))
"""

ROUND = """
t0 = time.perf_counter()
state = run.poll()
poll = time.perf_counter() - t0
timed = {{}}
for name, view in ([("graph", with_graph), ("plain", without)] if {first_graph} else [("plain", without), ("graph", with_graph)]):
    view._last_render = 0  # a real redraw, not the rate limiter
    t0 = time.perf_counter()
    view.update(state)
    timed[name] = time.perf_counter() - t0
print(json.dumps({{"poll": poll, **timed, "svg": len(with_graph.live_graph._svg)}}))
"""


def bench(mode: str, calls: int, rounds: int, workdir: Path) -> dict:
    from jupyter_client.manager import start_new_kernel

    run_dir = workdir / f"run-{mode}"
    writer = make_run(run_dir, calls, calls - 100 * (rounds + 1), failed=2)
    (run_dir / "wdl").mkdir()
    (run_dir / "wdl" / "synth.wdl").write_text(WORKFLOW)
    (run_dir / "rerun").write_text("miniwdl run synth.wdl")
    empty = workdir / f"no-wdl-{mode}"
    empty.mkdir()
    ids = scatter_ids("align", calls)
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir))
    try:
        kernel_json(kc, SETUP)
        ready = kernel_json(kc, VIEWS.format(run_dir=str(run_dir), mode=mode, empty=str(empty)))
        assert ready == {"graph": True, "baseline_graph": False}, ready
        samples = []
        start = calls - 100 * (rounds + 1)
        for r in range(rounds):
            for call_id in ids[start + r * 100 : start + (r + 1) * 100]:
                writer.start_call(call_id)
                writer.finish_call(call_id)
            writer.flush()
            samples.append(kernel_json(kc, ROUND.format(first_graph=r % 2 == 0)))
    finally:
        writer.close()
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return {"mode": mode, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(mode, args.calls, args.rounds, Path(tmp)) for mode in ("widget", "html")]
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print(f"{args.calls:,} calls, {args.rounds} rounds of 100 more calls finishing; graph of 8 steps")
    print("| view | refresh: poll | update with graph | update without graph (baseline) | ratio | poll + update with graph | graph SVG |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        s = r["samples"]
        graph, plain, poll = [x["graph"] for x in s], [x["plain"] for x in s], [x["poll"] for x in s]
        total = [x["poll"] + x["graph"] for x in s]
        print(
            f"| {r['mode']} | {spread(poll, 1000)} | {spread(graph, 1000)} | {spread(plain, 1000)} "
            f"| {statistics.median(graph) / statistics.median(plain):.2f}x | {spread(total, 1000)} | {s[-1]['svg']:,} chars |"
        )


if __name__ == "__main__":
    main()
