"""How long the run report of a big run takes, against reading the run at all.

    python benchmarks/bench_report.py [--calls 10000] [--repeat 3]

A synthetic finished N-way scatter (benchmarks/make_synthetic_run.py) whose calls each have an
effective runtime (16 GiB asked) and a usage file. Baseline in the same run: the monitor's first
read of the same directory (RunMonitor(...).poll()), which any view of the run pays. Measured:
build_report() (the monitor's read, a light pass for ready times and runtimes, the usage files,
the rightsizing, the graph from the run's wdl/) and .html() (the whole report page: timeline
SVG, table, graph), the report as Run.report() builds it from the state its handle has already
read, and the report's plain data the run record carries for JupyterLab's run renderer
(report/plain.py, from the built report). Goal: the report of a 10,000-call run in under 1 s, with
the scatter one box in the graph; goal status printed from this run's samples. Samples alternate
(baseline, report, ...); median [min-max].
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from make_synthetic_run import make_run, scatter_ids  # noqa: E402

from miniwdl_jupyter.monitor import RunMonitor  # noqa: E402
from miniwdl_jupyter.report import build_report  # noqa: E402
from miniwdl_jupyter.report.plain import report_data  # noqa: E402

GIB = 1024**3
GOAL_SECONDS = 1.0  # issue 18: the report of a 10,000-call run


# The WDL the synthetic run "ran", kept in its wdl/ folder as miniwdl keeps it: the report's graph
# is drawn from it (the 10,000-call scatter must stay one box).
WDL_SOURCE = """version 1.0
task align {
  input { Int i }
  command <<< echo ~{i} >>>
  output { Int n = 1 }
  runtime { cpu: 4 memory: "16 GiB" }
}
workflow synth {
  input { Int calls }
  scatter (i in range(calls)) { call align { input: i = i } }
  output { Array[Int] ns = align.n }
}
"""


def synthetic(run_dir: Path, calls: int) -> None:
    run = make_run(run_dir, calls, 0)
    (run_dir / "wdl").mkdir()
    (run_dir / "wdl" / "synth.wdl").write_text(WDL_SOURCE)
    now = time.time()
    for i, call_id in enumerate(scatter_ids("align", calls)):
        run.effective_runtime(call_id, cpu=4, memory_bytes=16 * GIB)
        run.start_call(call_id)
        run.write_usage(call_id, {"source": "cgroup", "samples": 1, "started_at": now + i * 0.01, "wall_seconds": 30.0,
                                  "cpu_seconds": 28.0, "peak_memory_bytes": int((1.5 + (i % 7) / 10) * GIB)})
        run.finish_call(call_id)
    run.succeed({})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp()) / "run"
    start = time.perf_counter()
    synthetic(run_dir, args.calls)
    print(f"synthetic run of {args.calls:,} calls written in {time.perf_counter() - start:.1f} s")
    monitor, build, page, from_state, data = [], [], [], [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        state = RunMonitor(run_dir).poll()
        monitor.append(time.perf_counter() - t)
        t = time.perf_counter()
        build_report(run_dir, state).html()
        from_state.append(time.perf_counter() - t)
        t = time.perf_counter()
        report = build_report(run_dir)
        build.append(time.perf_counter() - t)
        t = time.perf_counter()
        html = report.html()
        page.append(time.perf_counter() - t)
        t = time.perf_counter()
        record_data = json.dumps(report_data(report))
        data.append(time.perf_counter() - t)
    total = [b + p for b, p in zip(build, page)]

    def fmt(values):
        return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}] s"

    print(f"baseline: monitor first read      {fmt(monitor)}")
    print(f"build_report()                    {fmt(build)}")
    print(f".html() (the whole page)          {fmt(page)}  ({len(html) / 1e6:.1f} MB)")
    print(f"report total                      {fmt(total)}  (goal: under 1 s)")
    print(f"report total / monitor first read {statistics.median(total) / statistics.median(monitor):.2f}x")
    print(f"report from a handle's state      {fmt(from_state)}  (Run.report(): the run already read)")
    print(f"the run record's report data      {fmt(data)}  ({len(record_data) / 1e3:.0f} kB of JSON, from the built report)")
    for what, values in (("from the directory alone", total), ("from a handle's state", from_state)):
        met = "met" if statistics.median(values) < GOAL_SECONDS else "not met"
        under = sum(v < GOAL_SECONDS for v in values)
        print(f"goal (under {GOAL_SECONDS:g} s) {what}: {met} by the median; {under} of {len(values)} samples under")
    groups = [node for node in report.graph or [] if node.label.startswith("scatter")]
    print(f"graph: {len(report.graph or [])} node(s); the {args.calls:,}-call scatter drawn as {len(groups)} box(es)")
    print(f"advice: {report.advice}")


if __name__ == "__main__":
    main()
