"""What docs/slurm.md says, on the real one-node cluster (.ci/provision): through `miniwdl run` with
`MINIWDL__SLURM__*` settings and through `run(..., submit="slurm")`, reading back what SLURM itself
reports (`scontrol show job`) and what the run wrote."""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter import launch_record, protocol

from conftest import require
from backend_fixtures import docker_image, json_events, miniwdl_command, miniwdl_env, miniwdl_run, root_cause, wait_until, write_wdl  # noqa: F401
from slurm_fixtures import preemptable_task_memory, slurm_cluster, urgent_job  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow]

NONE = {"MINIWDL__SLURM__RUNTIME": "none", "MINIWDL__SCHEDULER__TASK_CONCURRENCY": "8"}


def scontrol(job_id: str) -> dict:
    text = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", text))


def submitted_job_ids(call_dir: Path) -> list:
    """The job ids of the call's attempts, from the protocol's `task job` events (one per attempt)."""
    log = call_dir / "task.log.json"
    if not log.exists():
        return []
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    found = [str(e["job_id"]) for e in events if e.get("message") == protocol.TASK_JOB and e.get("backend") == "slurm"]
    return list(dict.fromkeys(found))


def test_an_unset_task_concurrency_is_warned_about(slurm_cluster, tmp_path: Path) -> None:
    wdl = write_wdl(tmp_path, "w.wdl", "version 1.1\nworkflow w { call t }\ntask t { command <<< true >>> }\n")
    proc = miniwdl_run(wdl, "slurm", tmp_path / "run", env={"MINIWDL__SLURM__RUNTIME": "none"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[scheduler] task_concurrency is not set" in (tmp_path / "run" / "workflow.log").read_text()
    proc = miniwdl_run(wdl, "slurm", tmp_path / "set", env=NONE)
    assert "task_concurrency is not set" not in (tmp_path / "set" / "workflow.log").read_text()


def test_a_job_cancelled_outside_the_run_fails_its_task_saying_so(slurm_cluster, tmp_path: Path) -> None:
    wdl = write_wdl(tmp_path, "w.wdl", "version 1.1\nworkflow w { call nap }\ntask nap { command <<< sleep 300 >>> }\n")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(miniwdl_command(wdl, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=miniwdl_env("slurm", tmp_path, NONE), cwd=tmp_path)
    try:
        [job_id] = wait_until(lambda: submitted_job_ids(run_dir / "call-nap"), 120, "the task's job")
        subprocess.run(["scancel", job_id], check=True)  # as a user or an administrator would
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    said = json.dumps(root_cause(run_dir)) + stderr
    assert re.search(rf"slurm job {job_id}( on \S+)? was cancelled outside this run", said), said


def test_a_deadline_is_a_time_limit_failure(slurm_cluster, tmp_path: Path) -> None:
    """DEADLINE (here: a job whose time limit cannot end before its --deadline) is reported as an
    exceeded time limit; `calls` extra_args reach that call's sbatch."""
    wdl = write_wdl(tmp_path, "w.wdl", "version 1.1\nworkflow w { call late }\ntask late { command <<< true >>> }\n")
    calls = json.dumps({"late": {"extra_args": ["--deadline=now+60", "--time=30"]}})
    proc = miniwdl_run(wdl, "slurm", tmp_path / "run", env={**NONE, "MINIWDL__SLURM__CALLS": calls})
    assert proc.returncode != 0
    message = root_cause(tmp_path / "run")["message"]
    assert "task exceeded its time limit" in message and "DEADLINE" in message, message


def test_runtime_per_call(slurm_cluster, docker_image, tmp_path: Path) -> None:
    """`calls` may give one call another node runtime: `bare` runs without a container while the
    section's docker runs `boxed`."""
    marker = tmp_path / "only-on-the-host"  # not mounted into task containers
    marker.touch()
    wdl = write_wdl(tmp_path, "w.wdl", """version 1.1
workflow w {
  call boxed
  call bare
  output { String in_box = boxed.where  String outside = bare.where }
}
task boxed {
  command <<< test -e MARKER && echo host || echo container >>>
  output { String where = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
task bare {
  command <<< test -e MARKER && echo host || echo container >>>
  output { String where = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
""".replace("MARKER", str(marker)))
    env = {"MINIWDL__SLURM__RUNTIME": "docker", "MINIWDL__SCHEDULER__TASK_CONCURRENCY": "8",
           "MINIWDL__SLURM__CALLS": json.dumps({"bare": {"runtime": "none"}})}
    proc = miniwdl_run(wdl, "slurm", tmp_path / "run", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "outputs.json").read_text()) == {"w.in_box": "container", "w.outside": "host"}


def test_head_job_settings_reach_the_head_job(slurm_cluster, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[slurm] head_partition, head_account, head_extra_args, as SLURM shows the head job."""
    monkeypatch.setenv("MINIWDL__SLURM__HEAD_PARTITION", "wide")
    monkeypatch.setenv("MINIWDL__SLURM__HEAD_ACCOUNT", "head-acct")
    monkeypatch.setenv("MINIWDL__SLURM__HEAD_EXTRA_ARGS", '["--time=7", "--job-name=documented-head"]')
    monkeypatch.setenv("MINIWDL__SLURM__RUNTIME", "none")
    wdl = "version 1.1\ntask t { command <<< echo hi >>> output { String said = read_string(stdout()) } }\n"
    run = mj.run(wdl, submit="slurm", backend="local", wait=False)
    job = scontrol(str(launch_record.read(run.run_dir)["job_id"]))
    assert (job["Partition"], job["Account"], job["TimeLimit"], job["JobName"]) == ("wide", "head-acct", "00:07:00", "documented-head")
    run.cancel()  # what is documented is how SLURM shows the head job; that a submitted run completes is test_submit_slurm's
    assert run.poll().status == "cancelled"


def test_poll_seconds_sets_the_period_of_the_single_squeue(slurm_cluster, tmp_path: Path) -> None:
    """One `squeue` per poll_seconds for all of a run's jobs: counted by a PATH shim."""
    shims = tmp_path / "shims"
    shims.mkdir()
    calls = tmp_path / "squeue-calls"
    real = subprocess.run(["which", "squeue"], capture_output=True, text=True, check=True).stdout.strip()
    (shims / "squeue").write_text(f'#!/bin/sh\ndate +%s.%N >> {calls}\nexec {real} "$@"\n')
    (shims / "squeue").chmod(0o755)
    wdl = write_wdl(tmp_path, "w.wdl", "version 1.1\nworkflow w { scatter (i in range(4)) { call nap } }\ntask nap { command <<< sleep 20 >>> }\n")
    env = {**NONE, "MINIWDL__SLURM__POLL_SECONDS": "5", "PATH": f"{shims}:{os.environ['PATH']}"}
    proc = miniwdl_run(wdl, "slurm", tmp_path / "run", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stamps = [float(line) for line in calls.read_text().split()]
    # 4 jobs of 20 s: at the default 1 s there would be 20 or more; at 5 s, about 20 / 5 plus the
    # few looks that submissions and the end of the run take.
    assert 2 <= len(stamps) <= 14, f"{len(stamps)} squeue calls"


def test_podman_exe_is_what_the_node_runs(slurm_cluster, docker_image, tmp_path: Path) -> None:
    """[slurm] runtime = podman runs `[slurm] podman_exe`: here a wrapper that notes its calls and
    runs podman."""
    require("podman", shutil.which("podman") is not None, "podman is not installed (.ci/provision installs it)")
    calls = tmp_path / "podman-calls"
    wrapper = tmp_path / "my-podman"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nexec podman "$@"\n')
    wrapper.chmod(0o755)
    wdl = write_wdl(tmp_path, "w.wdl", "version 1.1\nworkflow w { call t  output { String said = t.said } }\n"
                    "task t { command <<< echo in-podman >>> output { String said = read_string(stdout()) } runtime { docker: \"IMAGE\" } }\n")
    env = {"MINIWDL__SLURM__RUNTIME": "podman", "MINIWDL__SLURM__PODMAN_EXE": json.dumps([str(wrapper)]),
           "MINIWDL__SCHEDULER__TASK_CONCURRENCY": "8",
           # root's open-files limit here is below podman's default (docs/backends.md)
           "MINIWDL__DOCKER_RUN__EXTRA_ARGS": '["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]'}
    proc = miniwdl_run(wdl, "slurm", tmp_path / "run", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:] + (tmp_path / "run" / "call-t" / "slurm.log.txt").read_text()[-2000:]
    assert json.loads((tmp_path / "run" / "outputs.json").read_text()) == {"w.said": "in-podman"}
    assert "run" in calls.read_text().split()


# ---- what a slow or stubborn job does to a cancel, and a lost sbatch answer ----------------------

STUBBORN_WDL = """version 1.1
workflow w { call stubborn }
task stubborn {
  # ignores SIGTERM (SIG_IGN is inherited by sleep): only SLURM's SIGKILL, KillWait after the
  # cancel's SIGTERM, ends the job
  command <<< trap '' TERM; echo ready; sleep 300 >>>
}
"""


def _job_state(job_id: str) -> str:
    return subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--format=%T"],
                          capture_output=True, text=True).stdout.strip()


def _stop_while_its_job_ignores_sigterm(tmp_path: Path, name: str, extra: dict) -> str:
    """SIGTERM to `miniwdl run` while its task job ignores SIGTERM; the job's state the moment
    miniwdl has exited."""
    wdl = write_wdl(tmp_path, f"{name}.wdl", STUBBORN_WDL)
    run_dir = tmp_path / name
    proc = subprocess.Popen(miniwdl_command(wdl, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=miniwdl_env("slurm", tmp_path, {**NONE, **extra}), cwd=tmp_path)
    try:
        stdout = run_dir / "call-stubborn" / "stdout.txt"
        wait_until(lambda: stdout.exists() and stdout.read_text().strip() == "ready", 120, "the command running, its trap set")
        [job_id] = submitted_job_ids(run_dir / "call-stubborn")
        proc.terminate()
        _, stderr = proc.communicate(timeout=120)
        state = _job_state(job_id)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, stderr[-2000:]
    return state


def test_cancel_wait_seconds_is_how_long_a_cancelled_task_waits_for_its_job(slurm_cluster, tmp_path: Path) -> None:
    """The job of a cancelled task that ignores SIGTERM stays COMPLETING until SLURM kills it
    (KillWait). With the default cancel_wait_seconds (60) miniwdl exits only once the job has
    ended; with 0 it exits while the job is still being killed."""
    assert _stop_while_its_job_ignores_sigterm(tmp_path, "waits", {}) == "CANCELLED"
    assert _stop_while_its_job_ignores_sigterm(tmp_path, "no_wait", {"MINIWDL__SLURM__CANCEL_WAIT_SECONDS": "0"}) == "COMPLETING"


def test_an_sbatch_whose_answer_timed_out_is_found_again_by_its_job_name(slurm_cluster, tmp_path: Path) -> None:
    """slurmctld stopped (SIGSTOP) while the task's `sbatch` waits for its answer: sbatch gives up
    ("Socket timed out"), but slurmctld, once resumed, still takes the submission it had received.
    The backend finds that job by its unique name instead of submitting the task twice."""
    pid_file = Path("/run/slurmctld.pid")
    require("a local slurmctld", pid_file.exists(), "no local slurmctld (its pid file /run/slurmctld.pid is missing)")
    pid = int(pid_file.read_text())
    shims = tmp_path / "shims"
    shims.mkdir()
    calls, answers, go = tmp_path / "sbatch-calls", tmp_path / "sbatch-answers", tmp_path / "go"
    real = shutil.which("sbatch")
    # A PATH shim that holds the real sbatch back until the test has stopped slurmctld, then notes
    # how sbatch ended.
    (shims / "sbatch").write_text(
        f'#!/bin/bash\necho "$@" >> {calls}\nwhile [ ! -e {go} ]; do sleep 0.1; done\n'
        f'{real} "$@" 2> >(tee -a {answers} >&2)\nrc=$?\necho "exit $rc" >> {answers}\nexit $rc\n'
    )
    (shims / "sbatch").chmod(0o755)
    wdl = write_wdl(tmp_path, "w.wdl", "version 1.1\nworkflow w { call t  output { String said = t.said } }\n"
                    "task t { command <<< echo submitted-once >>> output { String said = read_string(stdout()) } }\n")
    run_dir = tmp_path / "run"
    env = {**NONE, "PATH": f"{shims}:{os.environ['PATH']}"}
    proc = subprocess.Popen(miniwdl_command(wdl, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=miniwdl_env("slurm", tmp_path, env), cwd=tmp_path)
    try:
        wait_until(calls.exists, 120, "the task's sbatch")
        os.kill(pid, signal.SIGSTOP)
        try:
            go.touch()
            wait_until(lambda: answers.exists() and "exit " in answers.read_text(), 120, "sbatch giving up on the stalled slurmctld")
        finally:
            os.kill(pid, signal.SIGCONT)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    answer = answers.read_text()
    assert "Socket timed out" in answer and "exit 0" not in answer, answer
    assert proc.returncode == 0, stderr[-3000:]
    assert len(calls.read_text().splitlines()) == 1, "the task was submitted again"
    assert json.loads((run_dir / "outputs.json").read_text()) == {"w.said": "submitted-once"}


def test_a_head_job_that_outlives_its_cancel_grace_is_scancelled(slurm_cluster, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--submit slurm` cancel: SIGTERM to the head job's miniwdl, which then needs 40 s to stop
    (its local task ignores SIGTERM until [local] kill_grace_seconds = 40 has passed). With
    head_cancel_grace_seconds = 3 the head job is scancelled long before that: it ends CANCELLED,
    with its task, and miniwdl never writes error.json. Had the grace been the default 60 s,
    miniwdl would have stopped by itself at 40 s, written error.json and ended the job itself."""
    monkeypatch.setenv("MINIWDL__SLURM__HEAD_CANCEL_GRACE_SECONDS", "3")
    monkeypatch.setenv("MINIWDL__LOCAL__KILL_GRACE_SECONDS", "40")
    pid_file = workdir / "stubborn.pid"
    wdl = f"version 1.1\ntask stubborn {{ command <<< trap '' TERM; echo $$ > {pid_file}; sleep 600 >>> }}\n"
    run = mj.run(wdl, submit="slurm", backend="local", wait=False, cache=False)
    job_id = str(launch_record.read(run.run_dir)["job_id"])
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 180, "the head job's task running")
    task_pid = int(pid_file.read_text())
    run.cancel(timeout=120)
    assert run.poll().status == "cancelled"
    assert _job_state(job_id) == "CANCELLED", "the head job was not scancelled: miniwdl ended it"
    assert not (run.run_dir / "error.json").exists(), "miniwdl stopped on its own: the grace was not what ended it"
    assert not Path(f"/proc/{task_pid}").exists(), "the head job's task process outlived the cancel"


def test_a_preempted_job_interrupts_the_task_and_preemptible_retries_it(slurm_cluster, tmp_path: Path) -> None:
    """A job of a higher-priority partition needs the memory of the task's running job: SLURM
    cancels the task's job (PREEMPTED), the backend raises miniwdl's Interrupted, and
    `preemptible: 1` runs the task again, which completes once the urgent job is gone."""
    mark = tmp_path / "first-attempt-ran"
    wdl = write_wdl(tmp_path, "bumped.wdl", f"""version 1.1
workflow bumped {{
  call nap
  output {{ String out = nap.out }}
}}
task nap {{
  command <<< if [ -e {mark} ]; then echo second; else touch {mark}; sleep 300; fi >>>
  output {{ String out = read_string(stdout()) }}
  runtime {{ memory: "{preemptable_task_memory()}"  preemptible: 1 }}
}}
""")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(miniwdl_command(wdl, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=miniwdl_env("slurm", tmp_path, {**NONE, "MINIWDL__SLURM__PARTITION": "preemptable"}), cwd=tmp_path)
    try:
        wait_until(mark.exists, 180, "the task's first job running")
        with urgent_job():
            wait_until(lambda: "PREEMPTED" in _states(run_dir / "call-nap"), 120, "the task's job preempted")
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    events = json_events(run_dir / "call-nap" / "task.log.json")
    retried = [e for e in events if e["message"] == "interrupted task will be retried"]
    assert len(retried) == 1 and retried[0]["error"] == "Interrupted"
    assert _states(run_dir / "call-nap") == ["PREEMPTED", "COMPLETED"]
    assert json.loads((run_dir / "outputs.json").read_text())["bumped.out"] == "second"


def _states(call_dir: Path) -> list:
    """The last SLURM state of each job of the call, in submission order (from `task job` events)."""
    log = call_dir / "task.log.json"
    if not log.exists():
        return []
    last = {e["job_id"]: e["state"] for e in json_events(log) if e["message"] == protocol.TASK_JOB}
    return list(last.values())
