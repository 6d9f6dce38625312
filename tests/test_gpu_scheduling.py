"""GPUs scheduled per task on one machine (local and docker_run), through `miniwdl run` processes.

There is no GPU on the machines these tests run on: a stand-in `nvidia-smi` on PATH (a script in
the test's directory, answering the query the backends make) presents four devices, and each test
gets its own lock directory ([jupyter] gpu_lock_dir). What a task was given is what it saw:
CUDA_VISIBLE_DEVICES in its own environment, and the `--gpus` option on the `docker run` command
line, recorded by a wrapper set as [docker_run] exe (Docker itself refuses `--gpus` without the
NVIDIA runtime, and docker_run then runs the task without a GPU, as documented). What still needs a
real GPU is listed in docs/backends.md ("GPUs").
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from backend_fixtures import docker_image, json_events, labelled_containers, miniwdl_command, miniwdl_env, miniwdl_run, root_cause, wait_until, write_wdl # noqa: F401 - docker_image is a fixture
import miniwdl_jupyter as mj
from miniwdl_jupyter import config, gpus
from miniwdl_jupyter.backends.container_cli import LABEL_RUN_DIR
from miniwdl_jupyter.display.html_board import board_bundle
from miniwdl_jupyter.display.progress import NoView
from miniwdl_jupyter.errors import ConfigError
from miniwdl_jupyter.gpu_reservation import free_devices
from miniwdl_jupyter.monitor import RunMonitor

DEVICES = ["0", "1", "2", "3"]
FAKE_NVIDIA_SMI = """#!/bin/sh
# stand-in for nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits
case "$*" in *--query-gpu=index,uuid,name,memory.total*) ;; *) echo "unexpected: $*" >&2; exit 2;; esac
for i in 0 1 2 3; do echo "$i, GPU-00000000-0000-0000-0000-00000000000$i, Tesla T4, 15360"; done
"""
# The second request names a driver no daemon has: Docker refuses GPUs alike on this machine and on
# one with real GPUs, and docker_run runs the task without one.
REFUSED_EVERYWHERE = {"MINIWDL__DOCKER_RUN__GPU_FLAGS": json.dumps(["--gpus", "all", "--gpus", "driver=no-such-driver"])}
# Each task reports the devices it saw and when it held them (seconds since the epoch).
GPU_SCATTER_WDL = """
version 1.1
workflow gpus {
  input { Int n  Int seconds }
  scatter (i in range(n)) { call align { input: seconds = seconds } }
  output { Array[String] seen = align.seen }
}
task align {
  input { Int seconds }
  command <<<
    start=$(date +%s.%N)
    echo $$ > ../pid
    sleep ~{seconds}
    echo "${CUDA_VISIBLE_DEVICES-unset} $start $(date +%s.%N)"
  >>>
  output { String seen = read_string(stdout()) }
  runtime { gpu: true }
}
"""


@pytest.fixture
def four_gpus(tmp_path: Path) -> Dict[str, str]:
    """Environment for `miniwdl run` on a machine that seems to have four GPUs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text(FAKE_NVIDIA_SMI)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MINIWDL__JUPYTER__GPU_LOCK_DIR": str(tmp_path / "gpu-locks"),
        "MINIWDL__SCHEDULER__TASK_CONCURRENCY": "8",  # the machine's cores must not be what limits
    }


def start(wdl: Path, backend: str, run_dir: Path, inputs: dict, env: Dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        miniwdl_command(wdl, run_dir, inputs),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=miniwdl_env(backend, run_dir.parent, env),
        cwd=wdl.parent,
        start_new_session=True,
    )


def holding(monitor: RunMonitor, n: int) -> List[str]:
    """The devices of the run's calls, once `n` of them hold one."""
    calls = [c for c in monitor.poll().calls.values() if c.gpus]
    return [g for c in calls for g in c.gpus] if len(calls) >= n else []


def running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has released its files)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def intervals(run_dir: Path) -> List[Tuple[str, float, float]]:
    seen = json.loads((run_dir / "outputs.json").read_text())["gpus.seen"]
    return [(devices, float(begin), float(end)) for devices, begin, end in (s.split() for s in seen)]


def test_six_one_gpu_tasks_of_two_runs_never_share_a_device(tmp_path, four_gpus):
    """Run A's three tasks take three devices; run B (another miniwdl process) gets the fourth for
    one task, and its other two wait, saying so, until A's tasks end."""
    wdl = write_wdl(tmp_path, "gpus.wdl", GPU_SCATTER_WDL)
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    proc_a = start(wdl, "local", run_a, {"n": 3, "seconds": 10}, four_gpus)
    wait_until(lambda: holding(RunMonitor(run_a), 3), 60, "run A's three tasks to hold a GPU each")
    proc_b = start(wdl, "local", run_b, {"n": 3, "seconds": 2}, four_gpus)
    monitor_b = RunMonitor(run_b)
    waiting = wait_until(lambda: [c for c in monitor_b.poll().calls.values() if c.waiting_for], 60, "run B's tasks to wait")
    assert {c.waiting_for for c in waiting} == {"a GPU"}
    a_devices = holding(RunMonitor(run_a), 3)
    b_devices = wait_until(lambda: holding(monitor_b, 1), 30, "run B's first task to hold the fourth GPU")
    assert sorted(a_devices + b_devices[:1]) == DEVICES  # every device busy, each by one task
    # The progress boards, as a notebook following each run shows them.
    run = mj.attach(run_b)
    board_b = board_bundle(run.poll(), NoView(run), final=False)["text/plain"]
    assert "waiting for a GPU" in board_b and f"on GPU {b_devices[0]}" in board_b
    run = mj.attach(run_a)
    board_a = board_bundle(run.poll(), NoView(run), final=False)["text/plain"]
    assert all(f"call-align-{i}: on GPU " in board_a for i in range(3)), board_a
    assert proc_a.wait(120) == 0, proc_a.stderr.read()[-3000:]
    assert proc_b.wait(120) == 0, proc_b.stderr.read()[-3000:]

    held = intervals(run_a) + intervals(run_b)
    assert len(held) == 6 and all(devices in DEVICES for devices, _, _ in held)  # one device each
    for device in DEVICES:
        spans = sorted((begin, end) for devices, begin, end in held if devices == device)
        assert all(end <= next_begin for (_, end), (next_begin, _) in zip(spans, spans[1:])), (device, spans)
    most = max(sum(1 for _, b, e in held if b <= t < e) for _, t, _ in held)
    assert most <= 4
    waited = [e for p in run_b.glob("call-*/task.log.json") for e in json_events(p) if e["message"] == "task waiting"]
    assert waited and all(e["what"] == "a GPU" and e["gpus_wanted"] == 1 for e in waited)
    assert free_devices(four_gpus["MINIWDL__JUPYTER__GPU_LOCK_DIR"], DEVICES) == DEVICES


def test_every_device_is_free_after_a_cancel_and_after_miniwdl_is_killed(tmp_path, four_gpus):
    wdl = write_wdl(tmp_path, "gpus.wdl", GPU_SCATTER_WDL)
    locks = four_gpus["MINIWDL__JUPYTER__GPU_LOCK_DIR"]
    for how in ("cancelled", "killed"):
        run_dir = tmp_path / how
        proc = start(wdl, "local", run_dir, {"n": 5, "seconds": 300}, four_gpus)
        wait_until(lambda: holding(RunMonitor(run_dir), 4), 60, "four tasks to hold a GPU each")
        wait_until(lambda: any(c.waiting_for for c in RunMonitor(run_dir).poll().calls.values()), 60, "the fifth to wait")
        assert free_devices(locks, DEVICES) == []
        pid_files = lambda: [p for p in run_dir.glob("call-*/pid") if p.read_text().strip()]  # noqa: E731
        wait_until(lambda: len(pid_files()) == 4, 30, "the tasks' pids")
        devices_of = {int((c.dir / "pid").read_text()): c.gpus for c in RunMonitor(run_dir).poll().calls.values() if c.gpus}
        pids = list(devices_of)
        if how == "cancelled":  # as Run.cancel() and a kernel interrupt do
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)  # the waiting task too: it would otherwise hold miniwdl until a GPU came free
            assert RunMonitor(run_dir).poll().status == "cancelled"
        else:
            proc.kill()  # only miniwdl itself: its tasks, in their own sessions, may outlive it
            proc.wait(60)
            # A task that outlives it keeps its devices (it holds their locks too) until it is
            # stopped (the leftovers sweep, or the local backend's supervisor): stop it as they do.
            free = free_devices(locks, DEVICES)
            still_running = [pid for pid in pids if running(pid)]  # then they ran during the check too
            assert not {d for pid in still_running for d in devices_of[pid]} & set(free)
            for pid in pids:
                try:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        wait_until(lambda: free_devices(locks, DEVICES) == DEVICES, 30, f"every device to be free once the run was {how}")


def test_a_task_asking_for_more_gpus_than_the_machine_has_fails_at_once(tmp_path, four_gpus):
    wdl = write_wdl(tmp_path, "big.wdl", "version 1.1\ntask big { command <<< echo hi >>> runtime { gpuCount: 5 } }\n")
    proc = miniwdl_run(wdl, "local", tmp_path / "run", env=four_gpus)
    assert proc.returncode != 0
    cause = root_cause(tmp_path / "run")
    assert cause["error"] == "BackendError"
    assert cause["message"].startswith("the task asks for 5 GPUs but this machine has 4 (0, 1, 2, 3): ask for at most 4")
    assert not [e for e in json_events(tmp_path / "run" / "task.log.json") if e["message"] == "task waiting"]


def test_gpu_requests_wdl_1_2_requirements_and_accelerator_count(tmp_path, four_gpus):
    wdl = write_wdl(
        tmp_path,
        "req.wdl",
        "version 1.2\nworkflow req {\n  call one\n  call two\n  output { String a = one.seen  String b = two.seen }\n}\n"
        'task one { command <<< echo "$CUDA_VISIBLE_DEVICES"; echo "$NVIDIA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER $LD_LIBRARY_PATH $CUDA_HOME" > env.txt >>>'
        ' output { String seen = read_string(stdout())  String vars = read_string("env.txt") } requirements { gpu: true } }\n'
        'task two { command <<< echo "$CUDA_VISIBLE_DEVICES" >>> output { String seen = read_string(stdout()) } runtime { acceleratorCount: 2 } }\n',
    )
    driver = {"LD_LIBRARY_PATH": "/opt/cuda/lib64", "CUDA_HOME": "/opt/cuda"}  # passed through to GPU tasks
    proc = miniwdl_run(wdl, "local", tmp_path / "run", env={**four_gpus, **driver})
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = json.loads((tmp_path / "run" / "outputs.json").read_text())
    assert len(outputs["req.a"].split(",")) == 1 and len(outputs["req.b"].split(",")) == 2
    one_env = json.loads((tmp_path / "run" / "call-one" / "outputs.json").read_text())["one.vars"]
    assert one_env == f"{outputs['req.a']} PCI_BUS_ID /opt/cuda/lib64 /opt/cuda", one_env  # docs/backends.md, Isolation
    assert set(outputs["req.a"].split(",") + outputs["req.b"].split(",")) <= set(DEVICES)


@pytest.mark.parametrize("share", ["false", "true"])
def test_a_task_asking_for_no_gpu_sees_none_unless_gpu_share(tmp_path, four_gpus, share):
    wdl = write_wdl(tmp_path, "plain.wdl", 'version 1.1\ntask plain { command <<< echo "[${CUDA_VISIBLE_DEVICES-unset}]" >>> output { String seen = read_string(stdout()) } }\n')
    proc = miniwdl_run(wdl, "local", tmp_path / "run", env={**four_gpus, "MINIWDL__JUPYTER__GPU_SHARE": share})
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads((tmp_path / "run" / "outputs.json").read_text())["plain.seen"]
    assert seen == ("[unset]" if share == "true" else "[]")


def test_docker_run_command_line_carries_the_reserved_device(docker_image, tmp_path, four_gpus):
    """The `docker run` argv, recorded by a wrapper [docker_run] exe: the GPU task's names its
    reserved device, the other's hides every device. (Docker here has no NVIDIA runtime, so it
    refuses `--gpus` and docker_run runs the task without a GPU, as documented.)"""
    argv_log = tmp_path / "argv.jsonl"
    wrapper = tmp_path / "recording-docker"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\0" "$@" >> {argv_log}\necho >> {argv_log}\nexec docker "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    wdl = write_wdl(
        tmp_path,
        "two.wdl",
        "version 1.1\nworkflow two {\n  call t as with_gpu { input: gpu = true }\n  call t as without { input: gpu = false }\n}\n"
        'task t { input { Boolean gpu } command <<< echo hi >>> runtime { docker: "IMAGE"  gpu: gpu } }\n',
    )
    env = {**four_gpus, **REFUSED_EVERYWHERE, "MINIWDL__DOCKER_RUN__EXE": json.dumps([str(wrapper)])}
    proc = miniwdl_run(wdl, "docker_run", tmp_path / "run", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [line.split("\0")[:-1] for line in argv_log.read_text().split("\0\n") if line.startswith("run\0")]
    (reserved,) = [e["gpus"] for e in json_events(tmp_path / "run" / "call-with_gpu" / "task.log.json") if e["message"] == "task gpus"]
    assert len(reserved) == 1 and reserved[0] in DEVICES
    gpu_runs = [argv for argv in runs if "call-with_gpu" in " ".join(argv)]
    assert ["--gpus", f'"device={reserved[0]}"', "--gpus", "driver=no-such-driver"] == gpu_runs[0][gpu_runs[0].index("--gpus"):][:4]
    (plain,) = [argv for argv in runs if "call-without" in " ".join(argv)]
    assert "--gpus" not in plain
    assert {"NVIDIA_VISIBLE_DEVICES=void", "CUDA_VISIBLE_DEVICES="} <= {plain[i + 1] for i, a in enumerate(plain) if a == "--env"}


def test_a_container_that_outlives_a_killed_miniwdl_keeps_its_device_until_removed(docker_image, tmp_path, four_gpus):
    """docker_run hands the reservation to the `docker run` client, which lives as long as the
    container: after SIGKILL of miniwdl the device stays taken until the container is removed (as
    the leftovers sweep does)."""
    wdl = write_wdl(tmp_path, "nap.wdl", 'version 1.1\ntask nap { command <<< sleep 300 >>> runtime { docker: "IMAGE"  gpu: true } }\n')
    run_dir = tmp_path / "run"
    proc = start(wdl, "docker_run", run_dir, {}, {**four_gpus, **REFUSED_EVERYWHERE})
    locks = four_gpus["MINIWDL__JUPYTER__GPU_LOCK_DIR"]
    (device,) = wait_until(lambda: holding(RunMonitor(run_dir), 1), 60, "the task to hold a GPU")
    # Docker refused the GPU (the container never ran) and runs the task without: wait for that one.
    running_container = lambda: subprocess.run(  # noqa: E731
        ["docker", "ps", "-q", "--filter", f"label={LABEL_RUN_DIR}={run_dir}", "--filter", "status=running"], capture_output=True, text=True
    ).stdout.split()
    wait_until(lambda: "runtime.gpu ignored" in (run_dir / "task.log").read_text() and running_container(), 60, "its container to run")
    proc.kill()
    proc.wait(60)
    assert device not in free_devices(locks, DEVICES)
    subprocess.run(["docker", "rm", "-f", *labelled_containers(run_dir)], capture_output=True, check=True)
    wait_until(lambda: free_devices(locks, DEVICES) == DEVICES, 30, "the device to be free once the container is gone")


def test_gpus_setting_takes_a_count_or_device_ids(tmp_path):
    cfg = config.load(overrides={"jupyter": {"gpus": "2"}})
    assert [g.id for g in gpus.machine_gpus(cfg)] == ["0", "1"]
    cfg = config.load(overrides={"jupyter": {"gpus": '[1, "MIG-4f1c"]'}})
    assert [g.id for g in gpus.machine_gpus(cfg)] == ["1", "MIG-4f1c"]
    assert gpus.machine_gpus(config.load(overrides={"jupyter": {"gpus": "0"}})) == []
    with pytest.raises(ConfigError, match=r"\[jupyter\] gpus = 'two': give a count"):
        gpus.machine_gpus(config.load(overrides={"jupyter": {"gpus": "two"}}))
    assert gpus.docker_flags(["--gpus", "all"], ["1", "3"]) == ["--gpus", '"device=1,3"']
    assert gpus.docker_flags(["--device", "nvidia.com/gpu=all"], ["1", "3"]) == ["--device", "nvidia.com/gpu=1", "--device", "nvidia.com/gpu=3"]
