"""`--submit slurm`: the run's miniwdl process runs as a SLURM job on the real single-node cluster.
`run(..., submit="slurm")` returns at once; another Python process (a kernel after a restart)
attaches to the run directory, waits and gets the outputs; cancel from another process leaves no
job of the run in the queue.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backend_fixtures import SLEEP_SCATTER_WDL, wait_until  # noqa: F401
from slurm_fixtures import jobs_in_queue, slurm_cluster  # noqa: F401
from miniwdl_jupyter import launch_record
from miniwdl_jupyter.runs import run

pytestmark = pytest.mark.slow

GREET_WDL = """
version 1.1
workflow greet_all {
  input { Array[String] names }
  scatter (name in names) { call greet { input: name = name } }
  output { Array[String] greetings = greet.line }
}
task greet {
  input { String name }
  command <<< echo "hello ~{name} from $SLURM_JOB_ID" >>>
  output { String line = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""
# Task jobs on the node as they are (no container) so the test needs SLURM only.
CFG = {"slurm": {"runtime": "none"}, "scheduler": {"task_concurrency": "16"}}


def in_another_process(code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run Python code in a fresh interpreter, as a restarted kernel would."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_submit_returns_at_once_and_another_process_gets_the_outputs(slurm_cluster, workdir: Path) -> None:
    handle = run(GREET_WDL, {"names": ["ann", "bob"]}, backend="slurm", submit="slurm", wait=False, cache=False, cfg=CFG)
    record = launch_record.read(handle.run_dir)
    assert record["launcher"] == "slurm" and record["job_id"].isdigit()
    # run() came back with the head job merely submitted: nothing of the run has finished yet
    assert not (handle.run_dir / "outputs.json").exists()
    code = f"""
        import json
        from miniwdl_jupyter.runs import attach
        finished = attach({str(handle.run_dir)!r}).wait(timeout=240)
        print(json.dumps(finished.outputs))
    """
    proc = in_another_process(code, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    greetings = json.loads(proc.stdout.strip().splitlines()[-1])["greetings"]
    assert [g.rsplit(" ", 1)[0] for g in greetings] == ["hello ann from", "hello bob from"]
    # each task was a job of its own, not the head job's allocation (inherited SLURM_* cleared)
    task_jobs = {g.rsplit(" ", 1)[1] for g in greetings}
    assert len(task_jobs) == 2 and record["job_id"] not in task_jobs
    # the head job ends once miniwdl has exited (just after it wrote outputs.json)
    wait_until(lambda: jobs_in_queue(handle.run_dir) == [], 120, "the head job to leave the queue")


def test_cancel_from_another_process_leaves_no_job_in_the_queue(slurm_cluster, workdir: Path) -> None:
    wdl = SLEEP_SCATTER_WDL.replace("IMAGE", "debian:bookworm-slim")
    handle = run(wdl, {"n": 3, "seconds": 600}, backend="slurm", submit="slurm", wait=False, cache=False, cfg=CFG)
    # the head job plus its task jobs
    wait_until(lambda: len(jobs_in_queue(handle.run_dir)) >= 4, 180, "the head job and 3 task jobs in the queue")
    code = f"""
        from miniwdl_jupyter.runs import attach
        run = attach({str(handle.run_dir)!r})
        run.cancel(timeout=120)
        print(run.poll().status)
    """
    proc = in_another_process(code, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "cancelled"
    assert jobs_in_queue(handle.run_dir) == []
    error = json.loads((handle.run_dir / "error.json").read_text())  # miniwdl stopped cleanly
    assert "Terminated" in json.dumps(error)


def test_wdl_magic_submit_slurm_follows_the_run_to_its_outputs(slurm_cluster, shell, workdir: Path, monkeypatch) -> None:
    """`%%wdl --submit slurm` in a real IPython shell: the cell follows the head job's run to the end."""
    monkeypatch.setenv("MINIWDL__SLURM__RUNTIME", "none")
    shell.user_ns["who"] = ["cy"]
    shell.run_cell_magic("wdl", "--submit slurm --backend slurm --no-cache --progress none -o r names=$who", GREET_WDL)
    handle = shell.user_ns["r"]
    assert launch_record.read(handle.run_dir)["launcher"] == "slurm"
    assert handle.status == "succeeded"
    assert handle.outputs["greetings"][0].startswith("hello cy from ")
