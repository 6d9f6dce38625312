"""Per-attempt usage files written by the sampler, through real `miniwdl run`s on docker_run (the
real daemon), local and slurm (the real cluster, each node runtime it has; its accounting store):
a task holding 300 MiB, one burning a core for 5 s, a retried call, a cached call, a sampler that
cannot start, and GPU figures from a stand-in nvidia-smi. Figures from a shared, busy 2-core
machine: CPU time is checked loosely against wall time."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from backend_fixtures import docker_image, miniwdl_run, requires_docker, write_wdl  # noqa: F401 - fixture
from conftest import require
from slurm_fixtures import slurm_backend, slurm_cluster  # noqa: F401 - fixture
from miniwdl_jupyter import protocol
from miniwdl_jupyter.slurm.jobs import accounting_enabled

MIB = 1024 * 1024
PODMAN_ARGS = '["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]'

HOLD_AND_BURN_WDL = """
version 1.1
workflow work {
  call hold
  call burn
}
task hold {
  # dd's one 300 MiB block buffer, filled from /dev/zero, is resident while it is copied
  command <<< dd if=/dev/zero of=/dev/null bs=300M count=3 2>/dev/null; sleep 2 >>>
  runtime { docker: "IMAGE" }
}
task burn {
  # `times` (a shell builtin) prints the CPU time of the shell's children: the task's own account
  command <<< timeout 5 sh -c 'while :; do :; done' || true; times >>>
  runtime { docker: "IMAGE"  cpu: 1 }
}
"""

RETRIED_WDL = """
version 1.1
task flaky {
  command <<< echo trying >&2; exit 3 >>>
  runtime { docker: "IMAGE"  maxRetries: 1 }
}
"""

ECHO_WDL = """
version 1.1
task hello {
  command <<< echo hi >>>
  output { String out = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""


def _usage(call_dir: Path, attempt: int = 1) -> dict:
    return json.loads(protocol.usage_file(call_dir, attempt).read_text())


@pytest.fixture(params=["docker_run", "local"])
def backend(request) -> str:
    requires_docker(request, request.param)
    return request.param


@pytest.fixture(params=["none", "docker", "podman"])
def slurm_runtime(request) -> dict:
    """The slurm backend with each node runtime this cluster has, as MINIWDL__* settings."""
    if request.param == "podman":
        require("podman", shutil.which("podman") is not None, "podman is not installed (.ci/provision installs it)")
    backend = slurm_backend(request, request.param)
    # root's open-files limit here is below podman's default (docs/backends.md)
    return {**backend.env, "MINIWDL__DOCKER_RUN__EXTRA_ARGS": PODMAN_ARGS} if request.param == "podman" else backend.env


def test_usage_on_slurm_with_each_node_runtime(tmp_path, slurm_runtime):
    """`none`: the sampler script beside the command on the node; docker and podman: the shell
    sampler inside the container, reading the container's own cgroup."""
    wdl = write_wdl(tmp_path, "work.wdl", HOLD_AND_BURN_WDL)
    run = miniwdl_run(wdl, "slurm", tmp_path / "run", env=slurm_runtime)
    assert run.returncode == 0, run.stderr[-2000:]
    check_hold_and_burn(tmp_path / "run")
    none = slurm_runtime["MINIWDL__SLURM__RUNTIME"] == "none"
    hold, burn = _usage(tmp_path / "run" / "call-hold"), _usage(tmp_path / "run" / "call-burn")
    assert hold["source"] == ("process_group" if none else "cgroup")
    # Where the cluster keeps accounting, SLURM's figures join the sampler's without replacing them;
    # not for docker/podman, whose jobs SLURM sees as the container CLI alone
    accounted = none and accounting_enabled()
    assert ("slurm_accounting" in hold) == accounted and "accounting_fields" not in hold, hold
    if accounted:
        assert abs(burn["slurm_accounting"]["cpu_seconds"] - burn["cpu_seconds"]) <= 0.1 * burn["cpu_seconds"] + 0.5, burn


def test_slurm_accounting_fills_in_for_a_sampler_that_could_not_start(tmp_path, slurm_cluster):  # noqa: F811
    """Where the cluster keeps accounting (.ci/provision runs slurmdbd), sacct's figures make the
    usage file of an attempt that ran unsampled."""
    require("SLURM accounting", accounting_enabled(), "the cluster keeps no accounting (.ci/provision configures slurmdbd)")
    # SLURM samples the job every JobAcctGatherFrequency seconds (1 s here): dd's 300 MiB, held a
    # fraction of a second, slips between its samples; these 300 MiB are held for 4 s
    wdl = write_wdl(tmp_path, "work.wdl", HOLD_AND_BURN_WDL.replace(
        "dd if=/dev/zero of=/dev/null bs=300M count=3 2>/dev/null; sleep 2",
        "python3 -c 'import time; held = b\"x\" * (300 << 20); time.sleep(4)'").replace(
        'runtime { docker: "IMAGE" }', 'runtime { docker: "IMAGE"  memory: "512 MiB" }', 1))
    unsampled = miniwdl_run(wdl, "slurm", tmp_path / "unsampled",
                            env={"MINIWDL__SLURM__RUNTIME": "none", "MINIWDL__USAGE__PYTHON": str(tmp_path / "no-python3")})
    assert unsampled.returncode == 0, unsampled.stderr[-2000:]
    hold = _usage(tmp_path / "unsampled" / "call-hold")
    assert hold["source"] == "slurm_accounting" and "peak_memory_bytes" in hold["accounting_fields"], hold
    assert 0.8 * 300 * MIB <= hold["peak_memory_bytes"] <= 1.2 * 300 * MIB, hold
    assert hold["wall_seconds"] >= 4 and hold["requested_memory_bytes"] == 512 * MIB, hold
    burn = _usage(tmp_path / "unsampled" / "call-burn")
    own = _own_cpu_seconds(tmp_path / "unsampled" / "call-burn")
    assert own - 0.1 <= burn["cpu_seconds"] <= 1.1 * own + 0.5 and burn["wall_seconds"] >= 4.9, burn
    assert burn["requested_cpu"] == 1


def test_peak_memory_and_cpu_time_of_real_tasks(tmp_path, backend):
    wdl = write_wdl(tmp_path, "work.wdl", HOLD_AND_BURN_WDL)
    run = miniwdl_run(wdl, backend, tmp_path / "run")
    assert run.returncode == 0, run.stderr[-2000:]
    check_hold_and_burn(tmp_path / "run")


def check_hold_and_burn(run_dir: Path) -> None:
    hold = _usage(run_dir / "call-hold")
    assert 0.8 * 300 * MIB <= hold["peak_memory_bytes"] <= 1.2 * 300 * MIB, hold
    assert not any(key.startswith("gpu_") for key in hold), hold  # no GPU, no nvidia-smi: no GPU fields
    assert hold["wall_seconds"] >= 2 and hold["samples"] >= 1
    burn = _usage(run_dir / "call-burn")
    # one core for 5 s: CPU time close to wall time, where the machine has a core to spare; on a
    # busy shared machine the loop gets less, so the figure is checked against the task's own account
    assert 4.9 <= burn["wall_seconds"] < 10, burn
    own = _own_cpu_seconds(run_dir / "call-burn")
    assert own - 0.1 <= burn["cpu_seconds"] <= 1.1 * own + 0.2, (burn, own)
    assert burn["cpu_seconds"] <= 1.05 * burn["wall_seconds"]


def _own_cpu_seconds(call_dir: Path) -> float:
    """The CPU time of the burn task's children, as its shell's `times` printed it."""
    children = (call_dir / "stdout.txt").read_text().splitlines()[1]
    return sum(int(m) * 60 + float(sec) for m, sec in re.findall(r"(\d+)m([\d.]+)s", children))


def test_a_retried_call_has_the_usage_of_each_attempt(tmp_path, backend):
    wdl = write_wdl(tmp_path, "flaky.wdl", RETRIED_WDL)
    run = miniwdl_run(wdl, backend, tmp_path / "run")
    assert run.returncode != 0
    call_dir = tmp_path / "run"  # a single-task run: the run directory is the call directory
    first, second = _usage(call_dir, 1), _usage(call_dir, 2)
    assert first["started_at"] < second["started_at"] if "started_at" in first else first != second
    assert not protocol.usage_file(call_dir, 3).exists()


def test_a_cached_call_shows_no_new_usage(tmp_path, backend):
    wdl = write_wdl(tmp_path, "hello.wdl", ECHO_WDL)
    cache = {"MINIWDL__CALL_CACHE__GET": "true", "MINIWDL__CALL_CACHE__PUT": "true"}
    first = miniwdl_run(wdl, backend, tmp_path / "first", env=cache)
    assert first.returncode == 0, first.stderr[-2000:]
    assert protocol.usage_file(tmp_path / "first").exists()
    second = miniwdl_run(wdl, backend, tmp_path / "second", env=cache)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "done (cached)" in (tmp_path / "second" / "task.log").read_text() or not list((tmp_path / "second").glob("work*"))
    assert not list((tmp_path / "second").glob("usage*.json"))


def test_a_sampler_that_cannot_start_leaves_the_task_to_succeed(tmp_path):
    wdl = write_wdl(tmp_path, "hello.wdl", ECHO_WDL)
    run = miniwdl_run(wdl, "local", tmp_path / "run", env={"MINIWDL__USAGE__PYTHON": str(tmp_path / "no-python3")})
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "outputs.json").read_text())["hello.out"] == "hi"
    assert not list((tmp_path / "run").glob("usage*.json"))
    assert "usage sampler cannot start" in (tmp_path / "run" / "task.log").read_text()


def test_sampling_can_be_turned_off_and_its_interval_set(tmp_path):
    wdl = write_wdl(tmp_path, "nap.wdl", NAP_WDL)
    off = miniwdl_run(wdl, "local", tmp_path / "off", env={"MINIWDL__USAGE__SAMPLE": "false"})
    assert off.returncode == 0, off.stderr[-2000:]
    assert not list((tmp_path / "off").glob("usage*.json"))
    often = miniwdl_run(wdl, "local", tmp_path / "often", env={"MINIWDL__USAGE__INTERVAL_SECONDS": "1"})
    assert often.returncode == 0, often.stderr[-2000:]
    default = miniwdl_run(wdl, "local", tmp_path / "default")
    assert default.returncode == 0, default.stderr[-2000:]
    # early samples at 0.2, 1 and 2 s, then one a second, against one every 5 s
    assert _usage(tmp_path / "often")["samples"] >= 4 > _usage(tmp_path / "default")["samples"] >= 3


NAP_WDL = """
version 1.1
task nap {
  command <<< sleep 4.5 >>>
}
"""


# A stand-in nvidia-smi (no GPU on these machines; as tests/test_gpu_scheduling.py's, plus the usage
# query): four devices, each using the memory (MiB) and utilisation (%) a task wrote into STATE/<index>.
FAKE_NVIDIA_SMI = """#!/bin/sh
case "$*" in
  *--query-gpu=index,uuid,name,memory.total*) for i in 0 1 2 3; do echo "$i, GPU-000$i, Tesla T4, 15360"; done ;;
  *--query-gpu=index,uuid,memory.used,utilization.gpu*)
    for i in 0 1 2 3; do echo "$i, GPU-000$i, $(cat STATE/$i 2>/dev/null || echo '0, 0')"; done ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""

GPU_LOAD_WDL = """
version 1.1
workflow loads {
  input { String state }
  scatter (load in ["2048, 90", "4096, 40"]) { call use { input: state = state, load = load } }
  call plain
}
task use {
  input { String state  String load }
  # what this task's device "uses" while it runs, as the stand-in nvidia-smi reports it
  command <<< echo '~{load}' > "~{state}/$CUDA_VISIBLE_DEVICES"; sleep 3; rm "~{state}/$CUDA_VISIBLE_DEVICES" >>>
  runtime { gpu: true }
}
task plain {
  command <<< sleep 2.5 >>>
}
"""


def test_gpu_memory_and_utilisation_of_the_tasks_own_devices(tmp_path):
    """On `local`, the sampler asks nvidia-smi about the devices the task was given
    (CUDA_VISIBLE_DEVICES): two GPU tasks at once each show their own device's figures, and a task
    given no GPU shows none."""
    state = tmp_path / "state"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI.replace("STATE", str(state)))
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "MINIWDL__JUPYTER__GPU_LOCK_DIR": str(tmp_path / "locks"),
           "MINIWDL__SCHEDULER__TASK_CONCURRENCY": "8"}
    wdl = write_wdl(tmp_path, "loads.wdl", GPU_LOAD_WDL)
    run = miniwdl_run(wdl, "local", tmp_path / "run", {"state": str(state)}, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    for index, (memory_mib, utilization) in enumerate([(2048, 90), (4096, 40)]):
        usage = _usage(next((tmp_path / "run").glob(f"call-use-{index}-*")))  # named after the scatter's value too
        assert usage["gpu_memory_peak_bytes"] == memory_mib * MIB, usage
        assert usage["gpu_utilization_max_percent"] == utilization, usage
    plain = _usage(tmp_path / "run" / "call-plain")
    assert plain["samples"] >= 1 and not any(key.startswith("gpu_") for key in plain), plain


# In a GPU container the NVIDIA container toolkit mounts nvidia-smi, which lists the container's own
# devices. This stand-in, mounted the same way, lists two: the first "uses" what the task wrote to
# /tmp/gpu-load, the second a constant 500 MiB at 10%.
CONTAINER_NVIDIA_SMI = """#!/bin/sh
cat /tmp/gpu-load 2>/dev/null || echo '0, 0'
echo '500, 10'
"""

CONTAINER_GPU_WDL = """
version 1.1
task use {
  # the load lasts 3 s and is gone at exit: only a sample taken while it ran can see it
  command <<< echo '3000, 55' > /tmp/gpu-load; sleep 3; rm /tmp/gpu-load >>>
  runtime { docker: "IMAGE" }
}
"""


@pytest.fixture(params=["docker_run", "slurm-docker"])
def container_backend(request) -> tuple:
    """A backend whose task runs in a container under the shell sampler, and its settings."""
    if request.param == "docker_run":
        requires_docker(request, "docker_run")
        return "docker_run", {}
    return "slurm", slurm_backend(request, "docker").env


def test_gpu_memory_and_utilisation_in_a_container(tmp_path, docker_image, container_backend):
    """docker_run and slurm's docker runtime: the shell sampler asks the container's nvidia-smi
    every [usage] interval_seconds while the command runs; the peak is the largest sum over the
    container's devices."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text(CONTAINER_NVIDIA_SMI)
    smi.chmod(0o755)
    wdl = write_wdl(tmp_path, "use.wdl", CONTAINER_GPU_WDL.replace("IMAGE", docker_image))
    backend, settings = container_backend
    env = {**settings, "MINIWDL__USAGE__INTERVAL_SECONDS": "1",
           "MINIWDL__DOCKER_RUN__EXTRA_ARGS": json.dumps(["-v", f"{smi}:/usr/local/bin/nvidia-smi:ro"])}
    run = miniwdl_run(wdl, backend, tmp_path / "run", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    usage = _usage(tmp_path / "run")
    assert usage["gpu_memory_peak_bytes"] == 3500 * MIB and usage["gpu_utilization_max_percent"] == 55, usage
    assert usage["source"] == "cgroup", usage
