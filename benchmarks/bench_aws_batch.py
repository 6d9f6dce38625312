"""AWS Batch API economy of the aws_batch backend against the miniwdl-aws pattern, counted in the
same emulator run: a 100-way scatter (plus one gather task of another shape) on moto's server,
every request going through a loopback proxy that counts them by operation.

    python benchmarks/bench_aws_batch.py [--n 100] [--describe-period 1.0]

- ours: `miniwdl run` on the aws_batch backend (job definitions reused per shape, one shared
  DescribeJobs watcher of up to 100 ids per request);
- baseline: the miniwdl-aws pattern driven with boto3 for the same tasks: a job definition
  registered and deregistered per attempt, and each task describing its own job every period.

Goals (issue #9): at most 1.2 Batch calls per task besides SubmitJob's one, and job definitions
registered per run == distinct shapes. Needs moto_server (.ci/provision) and Docker.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from aws_fixtures import AwsProxy, batch_env, boto_client, make_queue, moto_answers  # noqa: E402

IMAGE = os.environ.get("MINIWDL_JUPYTER_TEST_IMAGE", "debian:bookworm-slim")
WDL = """
version 1.1
workflow bench {{
  input {{ Int n }}
  scatter (i in range(n)) {{ call work {{ input: i = i }} }}
  call gather {{ input: parts = work.out }}
}}
task work {{
  input {{ Int i }}
  command <<< echo ~{{i}} > out.txt >>>
  output {{ File out = "out.txt" }}
  runtime {{ docker: "{image}" cpu: 1 memory: "256 MiB" }}
}}
task gather {{
  input {{ Array[File] parts }}
  command <<< cat ~{{sep(" ", parts)}} | wc -l >>>
  output {{ Int count = read_int(stdout()) }}
  runtime {{ docker: "{image}" cpu: 1 memory: "512 MiB" }}
}}
"""
DISTINCT_SHAPES = 2  # work (256 MiB) and gather (512 MiB)
NON_SUBMIT = ("describejobs", "registerjobdefinition", "deregisterjobdefinition", "describejobdefinitions", "describejobqueues", "terminatejob", "listjobs")


def ours(proxy: AwsProxy, efs: Path, queue: str, n: int, period: float) -> float:
    wdl = efs / "bench.wdl"
    wdl.write_text(WDL.format(image=IMAGE))
    env = dict(os.environ)
    env.update(batch_env(efs, queue, proxy.endpoint))
    env.update(
        MINIWDL__SCHEDULER__CONTAINER_BACKEND="aws_batch",
        MINIWDL__AWS__DESCRIBE_PERIOD=str(period),
        MINIWDL__AWS__SUBMIT_RATE="50",
        MINIWDL__CALL_CACHE__GET="false",
        MINIWDL__CALL_CACHE__PUT="false",
        # a fresh shape per benchmark run, so "registered per run" is counted from an empty account
        MINIWDL__AWS__CONTAINER_PROPERTIES='{"environment": [{"name": "BENCH_RUN", "value": "%s"}]}' % uuid.uuid4().hex,
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "WDL", "run", str(wdl), f"n={n}", "--dir", str(efs / "run") + "/."],
        env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"miniwdl run failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


def miniwdl_aws_pattern(proxy: AwsProxy, efs: Path, queue: str, n: int, period: float) -> float:
    """What miniwdl-aws's BatchJob does per task attempt: register a job definition named after
    the attempt, submit, describe the job every period until it stops, deregister."""
    batch = boto_client("batch", proxy.endpoint)
    (efs / "baseline").mkdir()

    def call(method, **kw):
        for attempt in range(20):
            try:
                return getattr(batch, method)(**kw)
            except batch.exceptions.ClientError:
                time.sleep(min(10, 0.2 * 2**attempt))
        raise RuntimeError(f"{method} kept failing")

    def task(i: int, memory: int) -> None:
        name = f"work-{i}-{uuid.uuid4().hex[:6]}"
        jd = call(
            "register_job_definition",
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": IMAGE,
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": str(memory)}],
                "volumes": [{"name": "efs", "host": {"sourcePath": str(efs)}}],
                "mountPoints": [{"sourceVolume": "efs", "containerPath": str(efs), "readOnly": False}],
                "command": ["/bin/sh", "-c", f"echo {i} > {efs}/baseline/{i}.txt"],
            },
        )
        handle = f"{jd['jobDefinitionName']}:{jd['revision']}"
        job = call("submit_job", jobName=name, jobQueue=queue, jobDefinition=handle)["jobId"]
        while True:
            time.sleep(period)
            status = call("describe_jobs", jobs=[job])["jobs"][0]["status"]
            if status in ("SUCCEEDED", "FAILED"):
                break
        call("deregister_job_definition", jobDefinition=handle)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(lambda i: task(i, 256), range(n)))
    task(n, 512)  # the gather step
    return time.monotonic() - started


def report(label: str, proxy: AwsProxy, tasks: int, seconds: float) -> dict:
    calls = {op: count for op, count in proxy.calls.items() if op.islower()}
    submits = calls.get("submitjob", 0)
    others = sum(calls.get(op, 0) for op in NON_SUBMIT)
    row = dict(
        label=label,
        tasks=tasks,
        submit=submits,
        other=others,
        per_task=others / tasks,
        jobdefs=calls.get("registerjobdefinition", 0),
        describe=calls.get("describejobs", 0),
        seconds=seconds,
    )
    print(
        f"{label:22} tasks={tasks} SubmitJob={submits} other calls={others} ({row['per_task']:.2f}/task: "
        + ", ".join(f"{op}={calls[op]}" for op in sorted(calls) if op != "submitjob")
        + f") job definitions registered={row['jobdefs']} wall={seconds:.0f}s"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="scatter width")
    parser.add_argument("--describe-period", type=float, default=1.0, help="seconds between status polls, both sides")
    args = parser.parse_args()
    if not moto_answers():
        sys.exit("no moto server answers: run .ci/provision")
    queue = make_queue()["queue"]
    tasks = args.n + 1
    with tempfile.TemporaryDirectory(prefix="bench-aws-") as tmp:
        efs = Path(tmp) / "efs"
        efs.mkdir()
        with AwsProxy() as proxy:
            seconds = ours(proxy, efs, queue, args.n, args.describe_period)
            mine = report("aws_batch (ours)", proxy, tasks, seconds)
            proxy.reset()
            seconds = miniwdl_aws_pattern(proxy, efs, queue, args.n, args.describe_period)
            base = report("miniwdl-aws pattern", proxy, tasks, seconds)
    print(
        f"\nnon-submit calls per task: ours {mine['per_task']:.2f} vs miniwdl-aws pattern {base['per_task']:.2f} "
        f"({base['per_task'] / max(mine['per_task'], 1e-9):.0f}x fewer); goal <= 1.2: {'met' if mine['per_task'] <= 1.2 else 'NOT met'}"
    )
    print(
        f"job definitions registered per run: ours {mine['jobdefs']} (distinct shapes: {DISTINCT_SHAPES}; "
        f"goal met: {mine['jobdefs'] == DISTINCT_SHAPES}) vs miniwdl-aws pattern {base['jobdefs']}"
    )


if __name__ == "__main__":
    main()
