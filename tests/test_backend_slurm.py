"""The slurm backend on the real single-node cluster (.ci/provision starts it), through `miniwdl run`
as a user would run it; plus the sbatch/apptainer command lines it builds for settings this cluster
cannot show (GPUs, partitions, accounts).

The WDL conformance cases run on slurm in tests/conformance.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from WDL.runtime.config import Loader

from backend_fixtures import (  # noqa: F401 (docker_image: asked for through slurm_backend)
    HELLO_SCATTER_WDL,
    SLEEP_SCATTER_WDL,
    docker_image,
    events_of_a_call_retried_once,
    json_events,
    labelled_containers,
    miniwdl_command,
    miniwdl_env,
    miniwdl_run,
    root_cause,
    wait_until,
    write_wdl,
)
from slurm_fixtures import jobs_in_queue, slurm_backend, slurm_cluster  # noqa: F401
from miniwdl_jupyter import protocol
from miniwdl_jupyter.slurm import script
from miniwdl_jupyter.slurm.backend import SlurmContainer
from miniwdl_jupyter.slurm.jobs import clean_environment

pytestmark = pytest.mark.slow


@pytest.fixture(params=["docker", "none"])
def slurm(request: pytest.FixtureRequest):
    return slurm_backend(request, request.param)


def test_miniwdl_run_on_slurm_logs_job_id_node_and_state(slurm, tmp_path: Path) -> None:
    wdl = write_wdl(tmp_path, "hello.wdl", HELLO_SCATTER_WDL)
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "slurm", run_dir, {"names": ["a", "b", "c"]}, env=slurm.env, args=("--verbose",))
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = json.loads((run_dir / "outputs.json").read_text())
    assert [Path(f).read_text() for f in outputs["hello.files"]] == ["hello a\n", "hello b\n", "hello c\n"]
    events = json_events(next(run_dir.glob("call-greet-0*")) / "task.log.json")  # call-greet-0-a: the value is a tag
    submitted = [e for e in events if e["message"] == protocol.TASK_STARTED and e["backend"] == "slurm"]
    states = [e for e in events if e["message"] == protocol.TASK_JOB and e["backend"] == "slurm"]
    assert len(submitted) == 1
    assert {e["job_id"] for e in states} == {submitted[0]["job_id"]}
    assert states[-1]["state"] == "COMPLETED" and states[-1]["node"]
    assert not jobs_in_queue(run_dir)
    # The three siblings became ready together: one job array (one sbatch), an element each, whose
    # job output each call directory links to.
    job_ids = {e["job_id"] for e in json_events(run_dir / "workflow.log.json") if e["message"] == protocol.TASK_JOB}
    elements = sorted(job_id.split("_") for job_id in job_ids)
    assert len(elements) == 3 and len({array for array, _ in elements}) == 1, elements
    assert sorted(index for _, index in elements) == ["0", "1", "2"]
    for call in run_dir.glob("call-greet-*"):
        assert (call / "slurm.log.txt").is_symlink() and (call / "slurm.log.txt").exists()


def test_array_window_zero_submits_one_job_per_task(slurm_cluster, tmp_path: Path) -> None:
    wdl = write_wdl(tmp_path, "hello.wdl", HELLO_SCATTER_WDL)
    run_dir = tmp_path / "run"
    env = {"MINIWDL__SLURM__RUNTIME": "none", "MINIWDL__SLURM__ARRAY_WINDOW_SECONDS": "0"}
    proc = miniwdl_run(wdl, "slurm", run_dir, {"names": ["a", "b"]}, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job_ids = {e["job_id"] for e in json_events(run_dir / "workflow.log.json") if e["message"] == protocol.TASK_JOB}
    assert len(job_ids) == 2 and all(job_id.isdigit() for job_id in job_ids), job_ids


def test_cancel_leaves_no_job_in_the_queue_and_no_container(slurm, tmp_path: Path) -> None:
    wdl = write_wdl(tmp_path, "sleepers.wdl", SLEEP_SCATTER_WDL)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        miniwdl_command(wdl, run_dir, {"n": 4, "seconds": 600}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=miniwdl_env("slurm", tmp_path, slurm.env),
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        # four jobs submitted (two run on the two cpus, two wait in the queue)
        wait_until(lambda: len(jobs_in_queue(run_dir)) == 4, 120, "4 jobs in the queue")
        if slurm.env["MINIWDL__SLURM__RUNTIME"] == "docker":
            wait_until(lambda: labelled_containers(run_dir), 120, "a running container")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, stderr[-3000:]
    assert root_cause(run_dir)["error"] == "Terminated"
    assert jobs_in_queue(run_dir) == []
    assert labelled_containers(run_dir) == []


# A time limit from a per-call [slurm] override is tested with runtime.time_minutes in one run:
# tests/test_failure_explanations.py (each over-time test costs SLURM's one-minute granularity).


OOM_WDL = """
version 1.1
workflow hungry {
  call eat
}
task eat {
  command <<< python3 -c "x = bytearray(800 * 1024 * 1024); import time; time.sleep(30)" >>>
  runtime { docker: "IMAGE" memory: "64M" }
}
"""


ENV_WDL = """
version 1.1
workflow seen {
  call show
  output { String env = show.env }
}
task show {
  command <<< echo "gpus=${CUDA_VISIBLE_DEVICES-unset} other=${NOT_FOR_TASKS-unset}" >>>
  output { String env = read_string(stdout()) }
}
"""


def test_runtime_none_keeps_the_gpus_slurm_gave_the_job(slurm_cluster, tmp_path: Path) -> None:
    """The task runs in a minimal environment, but keeps the devices SLURM's gres names in the job's
    (the job inherits CUDA_VISIBLE_DEVICES here as gres would set it: the test cluster has no GPUs);
    anything else of the job's environment stays out."""
    wdl = write_wdl(tmp_path, "seen.wdl", ENV_WDL)
    env = {"MINIWDL__SLURM__RUNTIME": "none", "CUDA_VISIBLE_DEVICES": "3", "NOT_FOR_TASKS": "1"}
    proc = miniwdl_run(wdl, "slurm", tmp_path / "run", {}, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "outputs.json").read_text())["seen.env"] == "gpus=3 other=unset"


def test_running_out_of_memory_is_a_task_failure_that_says_so(slurm_cluster, tmp_path: Path) -> None:
    wdl = write_wdl(tmp_path, "hungry.wdl", OOM_WDL)
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "slurm", run_dir, {}, env={"MINIWDL__SLURM__RUNTIME": "none"})
    assert proc.returncode != 0
    cause = root_cause(run_dir)
    assert cause["error"] == "CommandFailed"
    assert "ran out of memory" in cause["message"] and "runtime.memory = 64 MB" in cause["message"], cause


# ---- command lines for what the test cluster cannot show --------------------------------------


def _container(tmp_path: Path, settings: dict, run_id: str = "call-align-2") -> SlurmContainer:
    cfg = Loader(logging.getLogger("test"), [], overrides={"slurm": settings})
    host_dir = tmp_path / run_id
    host_dir.mkdir(exist_ok=True)
    return SlurmContainer(cfg, run_id, str(host_dir))


def _sbatch(container: SlurmContainer) -> list:
    return script.sbatch_arguments(container, container.settings(), "job.sh", "job.log")


def test_resources_map_to_sbatch_options(tmp_path: Path) -> None:
    container = _container(tmp_path, {"partition": "short", "account": "lab", "constraint": "avx2", "extra_args": '["--qos", "high"]'})
    container.runtime_values.update(cpu=4, memory_reservation=3 * 1024**3 + 1, time_minutes=90)
    args = _sbatch(container)
    for option in ("--cpus-per-task=4", "--mem=3073M", "--time=90", "--partition=short", "--account=lab", "--constraint=avx2", "--no-requeue"):
        assert option in args
    assert args[-3:] == ["--qos", "high", "job.sh"]  # extra_args last but the script: they win
    assert not any(a.startswith("--gres") for a in args)


def test_gpu_tasks_ask_for_gres_and_may_go_to_another_partition(tmp_path: Path) -> None:
    container = _container(tmp_path, {"partition": "cpu", "gpu_partition": "gpu"})
    container.runtime_values.update(gpu=True)
    assert {"--gres=gpu:1", "--partition=gpu"} <= set(_sbatch(container))
    container.runtime_values.update(gpuCount=2, gpuType="a100")
    assert "--gres=gpu:a100:2" in _sbatch(container)


def test_per_call_settings_override_the_section(tmp_path: Path) -> None:
    calls = json.dumps({"align": {"partition": "big", "extra_args": ["--exclusive"]}, "other": {"partition": "no"}})
    align = _container(tmp_path, {"partition": "short", "calls": calls})
    assert {"--partition=big", "--exclusive"} <= set(_sbatch(align))
    other = _container(tmp_path, {"partition": "short", "calls": calls}, run_id="call-sort")
    assert "--partition=short" in _sbatch(other)


def test_unknown_settings_are_clear_errors(tmp_path: Path) -> None:
    from miniwdl_jupyter.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown setting.*partiton"):
        _container(tmp_path, {"calls": json.dumps({"align": {"partiton": "gpu"}})})
    with pytest.raises(ConfigError, match="runtime = 'singularty'"):
        _container(tmp_path, {"runtime": "singularty"}, run_id="call-other")


def test_apptainer_runs_the_docker_image_with_miniwdl_mounts(tmp_path: Path) -> None:
    container = _container(tmp_path, {"runtime": "apptainer"})
    container.runtime_values.update(gpu=True)
    args = script.apptainer_invocation(container, "ubuntu:22.04", container.prepare_mounts())
    assert args[:2] == ["apptainer", "exec"] and "--nv" in args and args[-1] == "docker://ubuntu:22.04"
    assert f"{container.host_work_dir()}:/mnt/miniwdl_task_container/work" in args


def test_inherited_allocation_variables_are_cleared() -> None:
    inherited = {"SLURM_JOB_ID": "7", "SLURM_MEM_PER_NODE": "100", "SLURM_EXPORT_ENV": "NONE", "SLURM_CONF": "/etc/x.conf", "SQUEUE_FORMAT": "%i", "PATH": "/bin"}
    assert clean_environment(inherited) == {"SLURM_CONF": "/etc/x.conf", "PATH": "/bin"}


def test_a_stalled_slurmctld_is_waited_out(slurm_cluster, tmp_path: Path) -> None:
    """slurmctld stopped (SIGSTOP) while a run's jobs are in flight: squeue times out ("Socket timed
    out on send/recv operation"), the watcher retries, and the run still succeeds."""
    from conftest import require

    # the controller SLURM_CONF names (not always /run/slurmctld.pid's: stopping another would stall
    # someone else's cluster)
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    pid_file = Path(re.search(r"^SlurmctldPidFile\s*=\s*(\S+)", config, re.MULTILINE).group(1))
    require("a local slurmctld", pid_file.exists(), f"no local slurmctld (its pid file {pid_file} is missing)")
    pid = int(pid_file.read_text())
    wdl = write_wdl(tmp_path, "sleepers.wdl", SLEEP_SCATTER_WDL)
    run_dir = tmp_path / "run"
    env = {"MINIWDL__SLURM__RUNTIME": "none", "MINIWDL__SCHEDULER__TASK_CONCURRENCY": "8"}
    proc = subprocess.Popen(
        miniwdl_command(wdl, run_dir, {"n": 2, "seconds": 30}),  # both jobs run through the stall
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=miniwdl_env("slurm", tmp_path, env),
        cwd=tmp_path,
    )
    stderr: list = []
    reader = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        running = lambda: [p for p in run_dir.glob("call-nap-*/task.log") if protocol.TASK_RUNNING in p.read_text()]  # noqa: E731
        wait_until(lambda: len(running()) == 2, 120, "both task jobs running")
        os.kill(pid, signal.SIGSTOP)
        try:
            # Stopped until the watcher's squeue has timed out (slurm's MessageTimeout) and the
            # backend said it is retrying, logged by the slurm backend.
            wait_until(lambda: any("slurmctld did not answer" in line for line in stderr), 120, "the watcher noticing the stall")
        finally:
            os.kill(pid, signal.SIGCONT)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=30)
    assert proc.returncode == 0, "".join(stderr)[-3000:]


NODE_FAIL_WDL = """
version 1.1
workflow flaky_node {
  call nap
  output { String out = nap.out }
}
task nap {
  command <<< echo started; sleep 20; echo finished >>>
  output { String out = read_lines(stdout())[1] }
  runtime { docker: "IMAGE" preemptible: 1 }
}
"""


def test_a_failed_node_interrupts_the_task_and_preemptible_retries_it(slurm_cluster, tmp_path: Path) -> None:
    """The node is set DOWN under a running task job: SLURM ends it NODE_FAIL, the backend raises
    miniwdl's Interrupted, and `preemptible: 1` runs the task again (the node returns to service)."""
    import socket

    node = socket.gethostname().split(".")[0]
    wdl = write_wdl(tmp_path, "flaky_node.wdl", NODE_FAIL_WDL)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        miniwdl_command(wdl, run_dir, {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=miniwdl_env("slurm", tmp_path, {"MINIWDL__SLURM__RUNTIME": "none"}),
        cwd=tmp_path,
    )
    try:
        log = run_dir / "call-nap" / "task.log"
        wait_until(lambda: log.exists() and protocol.TASK_RUNNING in log.read_text(), 120, "the task job running")
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=miniwdl-jupyter test"], check=True)
        _, stderr = proc.communicate(timeout=300)
    finally:
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    events = events_of_a_call_retried_once(run_dir / "call-nap")
    last_state = {e["job_id"]: e["state"] for e in events if e["message"] == protocol.TASK_JOB}  # per job, in order
    assert list(last_state.values()) == ["NODE_FAIL", "COMPLETED"]
    assert json.loads((run_dir / "outputs.json").read_text())["flaky_node.out"] == "finished"
