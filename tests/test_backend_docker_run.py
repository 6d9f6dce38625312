"""The docker_run backend on the real Docker daemon, through `miniwdl run`: selection by config,
labels, cancel without leftovers, orphan cleanup, and short errors for a missing image, a daemon
that does not answer and a failing `docker run`; plus the command lines it builds (GPU, users)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from backend_fixtures import (  # noqa: F401 (fixtures)
    HELLO_SCATTER_WDL,
    SLEEP_SCATTER_WDL,
    docker_image,
    json_events,
    labelled_containers,
    miniwdl_env,
    miniwdl_run,
    miniwdl_start,
    require,
    root_cause,
    wait_until,
    write_wdl,
)
from miniwdl_jupyter import backend_choice, config, protocol
from miniwdl_jupyter.backends.container_cli import LABEL_CALL, LABEL_RUN_DIR, mount_args
from miniwdl_jupyter.backends.docker_run import DockerRunContainer
from miniwdl_jupyter.backends.task_dir import run_dir_of
from miniwdl_jupyter.companions.docker_run import remove_containers
from miniwdl_jupyter.errors import BackendError

FAILING_TASK_WDL = 'version 1.1\ntask t { command <<< echo hi >>> runtime { docker: "IMAGE" } }\n'


def test_miniwdl_run_selects_docker_run_from_a_cfg_file(docker_image, tmp_path):
    wdl = write_wdl(tmp_path, "hello.wdl", HELLO_SCATTER_WDL)
    (tmp_path / "miniwdl.cfg").write_text("[scheduler]\ncontainer_backend = docker_run\n")
    env = miniwdl_env(None, tmp_path)  # the backend comes from the cfg file alone
    proc = subprocess.run(
        [sys.executable, "-m", "WDL", "run", str(wdl), "--cfg", "miniwdl.cfg", "--dir", "out/.", "--log-json"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = tmp_path / "out"
    outputs = json.loads((run_dir / "outputs.json").read_text())
    assert [Path(f).read_text() for f in outputs["hello.files"]] == ["hello a\n", "hello b\n"]
    assert outputs["hello.dirs"] == ["/mnt/miniwdl_task_container/work"] * 2, "commands run inside the container"
    events = json_events(run_dir / "workflow.log.json")
    messages = [e["message"] for e in events]
    assert "docker_run initialized" in messages
    # the run-directory protocol's events, named by the backend that wrote them
    running = [e for e in events if e["message"] == protocol.TASK_RUNNING]
    assert len(running) == 2 and all(e["backend"] == "docker_run" and e["container"] for e in running)
    assert [e["exit_code"] for e in events if e["message"] == protocol.TASK_EXIT and e["backend"] == "docker_run"] == [0, 0]
    assert "docker_run pull" not in messages, "the image is present: no pull"
    # outputs are owned by the invoking user, with no chown pass
    assert (run_dir / "call-greet-0-a" / "work" / "out.txt").stat().st_uid == os.geteuid()


@pytest.mark.slow
def test_labels_and_cancel_of_a_10_way_scatter_leave_no_container(docker_image, tmp_path):
    wdl = write_wdl(tmp_path, "sleepers.wdl", SLEEP_SCATTER_WDL)
    run_dir = tmp_path / "run"
    proc = miniwdl_start(wdl, "docker_run", run_dir, {"n": 10, "seconds": 600})
    try:
        running = wait_until(lambda: len(labelled_containers(run_dir)) >= 2 and labelled_containers(run_dir), 120, "2 containers")
        labels = subprocess.run(
            ["docker", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL_CALL}"}}}}', *running],
            capture_output=True, text=True,
        ).stdout.split()
        assert labels and all(label.startswith("call-nap-") for label in labels)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 2, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert labelled_containers(run_dir) == []
    assert root_cause(run_dir)["error"] == "Terminated"


@pytest.mark.slow
def test_containers_of_a_killed_run_are_removed_by_cleanup_orphans(docker_image, tmp_path):
    wdl = write_wdl(tmp_path, "sleepers.wdl", SLEEP_SCATTER_WDL)
    run_dir = tmp_path / "run"
    proc = miniwdl_start(wdl, "docker_run", run_dir, {"n": 2, "seconds": 600})
    try:
        wait_until(lambda: len(labelled_containers(run_dir)) == 2, 120, "2 containers")
        remove_containers(config.load())
        assert len(labelled_containers(run_dir)) == 2, "a live run's containers are not orphans"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # miniwdl and its docker CLIs, with no chance to clean up
        proc.wait()
    assert len(labelled_containers(run_dir)) == 2, "the hard kill left its containers"
    assert remove_containers(config.load()) >= 2
    assert labelled_containers(run_dir) == []


def test_cleanup_orphans_of_one_run_dir_removes_all_its_containers(docker_image, tmp_path):
    run_dir = tmp_path / "run"
    for i in range(2):
        subprocess.run(
            ["docker", "create", "--label", f"miniwdl_jupyter.run_dir={run_dir}", docker_image, "true"],
            check=True, capture_output=True,
        )
    assert len(labelled_containers(run_dir)) == 2
    assert remove_containers(config.load(), run_dir) == 2
    assert labelled_containers(run_dir) == []


def test_missing_image_is_a_backend_error_naming_it(docker_image, tmp_path):
    wdl = write_wdl(tmp_path, "t.wdl", FAILING_TASK_WDL.replace("IMAGE", "no-such/image:0.1"))
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "docker_run", run_dir)
    assert proc.returncode != 0
    cause = root_cause(run_dir)
    assert cause["error"] == "BackendError"
    assert "image no-such/image:0.1 is not on this machine and could not be pulled" in cause["message"]


def _http_ok(url: str) -> bool:
    """Does a server answer 2xx at url? (urllib, not curl: the test needs no tool the machine may lack)"""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return 200 <= response.status < 300
    except OSError:  # URLError, HTTPError, timeouts
        return False


@pytest.fixture
def image_only_in_registry(docker_image):
    """The test image pushed to the loopback registry under a fresh name that is then removed
    locally: present in a registry, missing on the machine."""
    registry = os.environ.get("MINIWDL_JUPYTER_TEST_REGISTRY", "127.0.0.1:5055")
    answers = _http_ok(f"http://{registry}/v2/")
    require("a container registry", answers, f"no registry answers at {registry} (.ci/provision starts one)")
    name = f"{registry}/miniwdl-jupyter/pull-test:{uuid.uuid4().hex[:8]}"
    for command in (["tag", docker_image, name], ["push", name], ["rmi", name]):
        subprocess.run(["docker", *command], check=True, capture_output=True)
    yield name
    subprocess.run(["docker", "rmi", name], capture_output=True)


def test_a_missing_image_is_pulled_once_for_all_tasks(image_only_in_registry, tmp_path):
    wdl = write_wdl(tmp_path, "hello.wdl", HELLO_SCATTER_WDL.replace("IMAGE", image_only_in_registry))
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "docker_run", run_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pulls = [e for e in json_events(run_dir / "workflow.log.json") if e["message"] == "docker_run pull"]
    assert [e["image"] for e in pulls] == [image_only_in_registry]


def test_daemon_not_answering_is_a_backend_error_naming_it(docker_image, tmp_path):
    wdl = write_wdl(tmp_path, "t.wdl", FAILING_TASK_WDL)
    run_dir = tmp_path / "run"
    exe = '["docker", "-H", "unix:///nonexistent/docker.sock"]'
    proc = miniwdl_run(wdl, "docker_run", run_dir, env={"MINIWDL__DOCKER_RUN__EXE": exe})
    assert proc.returncode != 0
    cause = root_cause(run_dir)
    assert cause["error"] == "BackendError"
    assert "Docker daemon is not answering `docker -H unix:///nonexistent/docker.sock info`" in cause["message"]
    assert "/nonexistent/docker.sock" in cause["message"].split("info`:", 1)[1], "the daemon's own error is shown"


def test_a_failing_docker_run_is_a_backend_error_not_an_exit_status(docker_image, tmp_path):
    wdl = write_wdl(tmp_path, "t.wdl", FAILING_TASK_WDL)
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "docker_run", run_dir, env={"MINIWDL__DOCKER_RUN__EXTRA_ARGS": '["--memory", "bogus"]'})
    assert proc.returncode != 0
    cause = root_cause(run_dir)
    assert cause["error"] == "BackendError" and "`docker run` failed" in cause["message"] and "bogus" in cause["message"]


def container(tmp_path: Path, runtime_values: dict, **docker_run_cfg) -> DockerRunContainer:
    cfg = config.load(overrides={"docker_run": docker_run_cfg} if docker_run_cfg else None)
    made = DockerRunContainer(cfg, "call-t", str(tmp_path / f"call-{len(list(tmp_path.iterdir()))}"))
    made.runtime_values = runtime_values
    return made


def option(args: list, flag: str) -> list:
    return args[args.index(flag): args.index(flag) + 2]


def test_run_arguments_follow_runtime_values(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIWDL_CFG", str(tmp_path / "none.cfg"))
    args = container(tmp_path, {"cpu": 2, "memory_limit": 2**30, "gpu": True}).run_arguments(logging.getLogger("test"))
    assert args[:2] == ["docker", "run"] and "--rm" in args and "--init" in args
    assert option(args, "--cpus") == ["--cpus", "2"]
    assert option(args, "--memory") == ["--memory", str(2**30)]
    assert option(args, "--gpus") == ["--gpus", "all"]
    assert option(args, "--user") == ["--user", f"{os.geteuid()}:{os.getegid()}"]
    assert "--privileged" not in args
    assert option(args, "--label")[1].startswith("miniwdl_jupyter.run_dir=")

    # miniwdl puts "privileged" in runtime_values only under [task_runtime] allow_privileged = true
    assert "--privileged" in container(tmp_path, {"privileged": True}).run_arguments(logging.getLogger("test"))
    plain = container(tmp_path, {"cpu": 0, "gpu": False}).run_arguments(logging.getLogger("test"))
    assert not {"--cpus", "--memory", "--gpus"} & set(plain)


def test_run_arguments_for_podman_root_and_cdi_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIWDL_CFG", str(tmp_path / "none.cfg"))
    made = container(
        tmp_path, {"gpu": True},
        exe=["podman"], as_root=True, init=False, gpu_flags=["--device", "nvidia.com/gpu=all"], extra_args=["--network", "none"],
    )
    args = made.run_arguments(logging.getLogger("test"))
    assert args[:2] == ["podman", "run"] and "--user" not in args and "--init" not in args
    assert option(args, "--device") == ["--device", "nvidia.com/gpu=all"]
    assert args[-2:] == ["--network", "none"]


def test_container_names_differ_between_nested_calls_with_one_call_id(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIWDL_CFG", str(tmp_path / "none.cfg"))
    cfg = config.load()
    names = {
        DockerRunContainer(cfg, "call-upper", str(tmp_path / sub / "call-upper")).container_name
        for sub in ("call-shout-0/call-x", "call-shout-1/call-x")
    }
    assert len(names) == 2


def test_auto_picks_docker_run_when_the_daemon_answers(docker_image, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIWDL_CFG", str(tmp_path / "none.cfg"))
    assert backend_choice.resolve_backend("auto", config.load()) == "docker_run"
    assert backend_choice.resolve_backend(None, config.load()) == "docker_run"


PODMAN_ARGS = '["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]'


@pytest.mark.slow
def test_podman_through_docker_run_exe(docker_image, tmp_path):
    require("podman", shutil.which("podman") is not None, "podman is not installed (.ci/provision installs it)")
    wdl = write_wdl(tmp_path, "hello.wdl", HELLO_SCATTER_WDL)
    run_dir = tmp_path / "run"
    # Root's hard open-files limit here is below podman's default; see docs/backends.md.
    env = {"MINIWDL__DOCKER_RUN__EXE": '["podman"]', "MINIWDL__DOCKER_RUN__EXTRA_ARGS": PODMAN_ARGS}
    proc = miniwdl_run(wdl, "docker_run", run_dir, {"names": ["pod"]}, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = json.loads((run_dir / "outputs.json").read_text())
    assert Path(outputs["hello.files"][0]).read_text() == "hello pod\n"
    initialized = [e for e in json_events(run_dir / "workflow.log.json") if e["message"] == "docker_run initialized"]
    assert initialized[0]["exe"] == "podman" and "podman version" in initialized[0]["version"]


def test_the_run_dir_label_is_the_top_run_directory(tmp_path):
    run = tmp_path / "runs" / "20261123_120000_wf"
    nested_call = run / "call-sub-0" / "call-t"
    nested_call.mkdir(parents=True)
    (run / "workflow.log").touch()
    (run / "call-sub-0" / "workflow.log").touch()  # a sub-workflow's own log does not make it a run
    assert run_dir_of(str(nested_call)) == str(run)
    task_run = tmp_path / "runs" / "20261123_120001_t"  # `miniwdl run --task`: the call dir is the run
    task_run.mkdir()
    assert run_dir_of(str(task_run)) == str(task_run)


# Docker refuses these flags on any host, with the error it gives where there is no GPU: so the
# GPU-less path is exercised on a GPU machine too.
NO_GPU_FLAGS = {"MINIWDL__DOCKER_RUN__GPU_FLAGS": '["--gpus", "driver=no-such-driver"]'}


def test_gpu_tasks_fail_when_require_gpu_and_docker_gives_no_gpu(docker_image, tmp_path):
    wdl = write_wdl(tmp_path, "t.wdl", 'version 1.1\ntask t { command <<< echo hi >>> runtime { docker: "IMAGE"  gpu: true } }\n')
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "docker_run", run_dir, env={"MINIWDL__DOCKER_RUN__REQUIRE_GPU": "true", **NO_GPU_FLAGS})
    assert proc.returncode != 0
    cause = root_cause(run_dir)
    assert cause["error"] == "BackendError"
    assert cause["message"].startswith("runtime.gpu: `docker run` cannot give this task a GPU")
    assert "require_gpu = false" in cause["message"]


def test_gpu_tasks_run_without_a_gpu_docker_cannot_give_warning_once_a_run(docker_image, tmp_path):
    """The default (require_gpu = false): the first gpu task's refused `docker run` gives one
    warning for the run, and it and the later gpu task run without GPU flags."""
    wdl = write_wdl(tmp_path, "two.wdl", """version 1.1
workflow two {
  call first
  call second { input: after = first.out }
  output { String said = second.out }
}
task first { command <<< echo one >>> output { String out = read_string(stdout()) } runtime { docker: "IMAGE"  gpu: true } }
task second {
  input { String after }
  command <<< echo "~{after} two" >>>
  output { String out = read_string(stdout()) }
  runtime { docker: "IMAGE"  gpu: true }
}
""")
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "docker_run", run_dir, env=NO_GPU_FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "outputs.json").read_text()) == {"two.said": "one two"}
    warned = [call.name for call in sorted(run_dir.glob("call-*")) if "runtime.gpu ignored" in (call / "task.log").read_text()]
    assert warned == ["call-first"], warned


def test_preemptible_has_nothing_to_act_on_only_max_retries_retries(docker_image, tmp_path):
    """A failing task with `preemptible: 3` and `maxRetries: 1`: docker_run reports no interruption,
    so the failure is retried once (maxRetries), not more."""
    wdl = write_wdl(tmp_path, "t.wdl", 'version 1.1\ntask t { command <<< exit 3 >>> runtime { docker: "IMAGE"  preemptible: 3  maxRetries: 1 } }\n')
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "docker_run", run_dir)
    assert proc.returncode != 0
    assert root_cause(run_dir)["error"] == "CommandFailed"
    # one stderr file per attempt (stderr.txt, stderr2.txt...): two attempts
    assert sorted(f.name for f in run_dir.glob("stderr*.txt")) == ["stderr.txt", "stderr2.txt"]


def test_input_files_with_any_name_are_mounted(docker_image, tmp_path):
    """One mount per input file, whatever its name: CR LF (not expressible in --mount) goes
    through -v; quotes, commas, colons through CSV-quoted --mount fields."""
    names = ["cr\r\nlf", 'q"uote', "c,d:e", "tab\tx", " lead"]
    files = []
    for i, name in enumerate(names):
        folder = tmp_path / f"in{i}"  # one folder each: the names differ only in odd characters
        folder.mkdir()
        (folder / name).write_text(f"{i}\n")
        files.append(str(folder / name))
    wdl = write_wdl(tmp_path, "t.wdl", """
version 1.1
task t {
  input { Array[File] files }
  command <<< find _miniwdl_inputs -type f -exec cat {} + | sort >>>
  output { Array[String] seen = read_lines(stdout()) }
  runtime { docker: "IMAGE" }
}
""")
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "docker_run", run_dir, {"files": files})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run_dir / "outputs.json").read_text())["t.seen"] == [str(i) for i in range(len(names))]


def test_mount_arguments_quote_what_docker_parses():
    assert mount_args("/a:b/c,d", "/mnt/x", False) == ["--mount", 'type=bind,"src=/a:b/c,d",dst=/mnt/x,readonly']
    assert mount_args('/a/"q"', "/mnt/w", True) == ["--mount", 'type=bind,"src=/a/""q""",dst=/mnt/w']
    assert mount_args("/a/cr\r\nlf", "/mnt/cr\r\nlf", False) == ["-v", "/a/cr\r\nlf:/mnt/cr\r\nlf:ro"]
    with pytest.raises(BackendError, match="both ':' and a carriage return"):
        mount_args("/a:b/cr\r\nlf", "/mnt/x", False)


@pytest.fixture
def overlay_network_not_attachable(docker_image):
    state = subprocess.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], capture_output=True, text=True).stdout.strip()
    require("Docker swarm mode", state == "active", "Docker is not in swarm mode (.ci/provision runs `docker swarm init`)")
    name = f"miniwdl_jupyter_test_{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "network", "create", "-d", "overlay", name], check=True, capture_output=True)
    yield name
    subprocess.run(["docker", "network", "rm", name], capture_output=True)


def test_a_network_docker_run_cannot_join_is_a_backend_error_saying_why(overlay_network_not_attachable, tmp_path):
    name = overlay_network_not_attachable
    wdl = write_wdl(tmp_path, "t.wdl", f'version 1.1\ntask t {{ command <<< true >>> runtime {{ docker: "IMAGE"  docker_network: "{name}" }} }}\n')
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "docker_run", run_dir, env={"MINIWDL__DOCKER_SWARM__ALLOW_NETWORKS": json.dumps([name])})
    assert proc.returncode != 0
    cause = root_cause(run_dir)
    assert cause["error"] == "BackendError" and "--attachable" in cause["message"], cause


def test_choosing_from_python_as_docs_backends_md_shows(docker_image, tmp_path, monkeypatch):
    """docs/backends.md's "Choosing from Python" block, run as written: each expression's value is
    what its comment says. A container of a dead run (its run directory holds no locked log) is
    there to be removed."""
    import ast
    import re

    monkeypatch.delenv("MINIWDL__JUPYTER__BACKEND", raising=False)
    page = (Path(__file__).resolve().parent.parent / "docs" / "backends.md").read_text()
    block = re.search(r"## Choosing from Python\n\n```python\n(.*?)```", page, re.DOTALL).group(1)
    dead = tmp_path / "dead_run"
    dead.mkdir()
    subprocess.run(["docker", "run", "-d", "--label", f"{LABEL_RUN_DIR}={dead}", docker_image, "sleep", "600"], check=True, capture_output=True)
    namespace: dict = {}
    values = []
    for statement in ast.parse(block).body:
        if isinstance(statement, ast.Expr):
            values.append(eval(compile(ast.Expression(statement.value), "backends.md", "eval"), namespace))
        else:
            exec(compile(ast.Module([statement], []), "backends.md", "exec"), namespace)
    installed, chosen, removed = values
    assert {"docker_run", "docker_swarm", "local"} <= set(installed) and installed == sorted(installed)
    assert chosen == "docker_run"  # the daemon answers
    assert removed >= 1 and labelled_containers(dead) == []
