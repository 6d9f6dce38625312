"""The local backend (no container), through `miniwdl run`: selection by config, host paths,
one notice for the ignored image, cancel and leftovers killed with the process group, and `auto`
falling back to it when no Docker daemon answers. None of these need Docker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backend_fixtures import (
    HELLO_SCATTER_WDL,
    SLEEP_SCATTER_WDL,
    json_events,
    miniwdl_env,
    miniwdl_run,
    miniwdl_start,
    processes_under,
    root_cause,
    wait_until,
    write_wdl,
)
from conftest import require
from miniwdl_jupyter import backend_choice, config, protocol
from miniwdl_jupyter.errors import ConfigError

IGNORED_IMAGE_NOTICE = "local backend ignores runtime.docker: commands run on this machine with its own tools"


def test_miniwdl_run_selects_local_from_a_cfg_file(tmp_path):
    wdl = write_wdl(tmp_path, "hello.wdl", HELLO_SCATTER_WDL)
    (tmp_path / "miniwdl.cfg").write_text("[scheduler]\ncontainer_backend = local\n")
    proc = subprocess.run(
        [sys.executable, "-m", "WDL", "run", str(wdl), "--cfg", "miniwdl.cfg", "--dir", "out/.", "--log-json"],
        capture_output=True, text=True, cwd=tmp_path, env=miniwdl_env(None, tmp_path), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = tmp_path / "out"
    outputs = json.loads((run_dir / "outputs.json").read_text())
    assert [Path(f).read_text() for f in outputs["hello.files"]] == ["hello a\n", "hello b\n"]
    # container paths are host paths: each command ran in its own call's work dir
    assert outputs["hello.dirs"] == [str(run_dir / "call-greet-0-a" / "work"), str(run_dir / "call-greet-1-b" / "work")]
    events = json_events(run_dir / "workflow.log.json")
    messages = [e["message"] for e in events]
    assert messages.count(IGNORED_IMAGE_NOTICE) == 1, "one notice per run, not per task"
    assert [e["backend"] for e in events if e["message"] == protocol.TASK_RUNNING] == ["local", "local"]


def test_inputs_are_at_the_paths_the_command_is_given(tmp_path):
    source = tmp_path / "data.txt"
    source.write_text("payload\n")
    wdl = write_wdl(tmp_path, "t.wdl", """
version 1.1
task t {
  input { File f }
  command <<< cat "~{f}"; echo "~{f}" >&2 >>>
  output { String content = read_string(stdout())  String path = read_string(stderr()) }
}
""")
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "local", run_dir, {"f": str(source)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = json.loads((run_dir / "outputs.json").read_text())
    assert outputs["t.content"] == "payload"
    assert outputs["t.path"].startswith(str(run_dir / "work" / "_miniwdl_inputs"))
    assert Path(outputs["t.path"]).samefile(source), "a hard link to the input, not a copy"


@pytest.mark.slow
def test_cancel_of_a_10_way_scatter_leaves_no_process(tmp_path):
    wdl = write_wdl(tmp_path, "sleepers.wdl", SLEEP_SCATTER_WDL)
    run_dir = tmp_path / "run"
    proc = miniwdl_start(wdl, "local", run_dir, {"n": 10, "seconds": 600})
    try:
        wait_until(lambda: len(processes_under(run_dir)) >= 2, 60, "2 task processes")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 2, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert processes_under(run_dir) == []
    assert root_cause(run_dir)["error"] == "Terminated"


def test_background_children_do_not_outlive_their_task(tmp_path):
    wdl = write_wdl(tmp_path, "t.wdl", "version 1.1\ntask t { command <<< sleep 300 & echo started >>> }\n")
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "local", run_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run_dir / "stdout.txt").read_text() == "started\n"
    assert processes_under(run_dir) == []


def test_auto_falls_back_to_local_when_no_daemon_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIWDL_CFG", str(tmp_path / "none.cfg"))
    monkeypatch.setenv("MINIWDL__DOCKER_RUN__EXE", '["docker", "-H", "unix:///nonexistent/docker.sock"]')
    assert backend_choice.resolve_backend("auto", config.load()) == "local"


def test_unknown_backend_names_list_the_installed_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIWDL_CFG", str(tmp_path / "none.cfg"))
    cfg = config.load()
    assert {"docker_run", "local", "docker_swarm"} <= set(backend_choice.installed_backends(cfg))
    assert backend_choice.resolve_backend("local", cfg) == "local"
    with pytest.raises(ConfigError, match=r"unknown backend 'nosuch'; installed backends: .*docker_run.*local"):
        backend_choice.resolve_backend("nosuch", cfg)


def test_container_only_runtime_keys_get_one_notice_each(tmp_path):
    wdl = write_wdl(tmp_path, "w.wdl", """
version 1.2
workflow w {
  scatter (i in range(2)) { call t }
}
task t {
  command <<< echo ran >>>
  runtime {
    docker_network: "sagemaker"
    inlineDockerfile: <<<
      FROM IMAGE
    >>>
  }
}
""")
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, "local", run_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    messages = [e["message"] for e in json_events(run_dir / "workflow.log.json")]
    for key in ("docker_network", "inlineDockerfile"):
        notices = [m for m in messages if m.startswith(f"local backend ignores runtime.{key}:")]
        assert len(notices) == 1, (key, messages)


WRITES_INPUT_WDL = """
version 1.1
task t {
  input { File f }
  command <<< echo appended >> "~{f}" >>>
  runtime { docker: "IMAGE" }
}
"""


def test_a_command_writing_into_an_input_is_warned_about_and_copy_input_files_avoids_it(tmp_path):
    source = tmp_path / "data.txt"
    source.write_text("original\n")
    wdl = write_wdl(tmp_path, "t.wdl", WRITES_INPUT_WDL)
    proc = miniwdl_run(wdl, "local", tmp_path / "linked", {"f": str(source)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert source.read_text() == "original\nappended\n", "a hard link is the original file"
    warnings = [e for e in json_events(tmp_path / "linked" / "task.log.json") if e["message"].startswith("the command wrote into input files")]
    assert len(warnings) == 1 and warnings[0]["files"] == [str(source)]

    source.write_text("original\n")
    env = {"MINIWDL__FILE_IO__COPY_INPUT_FILES_FOR": '["t"]'}
    proc = miniwdl_run(wdl, "local", tmp_path / "copied", {"f": str(source)}, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert source.read_text() == "original\n"
    assert "the command wrote into input files" not in (tmp_path / "copied" / "task.log").read_text()


@pytest.fixture
def other_filesystem(tmp_path):
    """A tmpfs mounted for this test (as root; elsewhere it skips, and fails under CI=true)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], capture_output=True, text=True)
    require("a tmpfs mount", mounted.returncode == 0, f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        assert mount_point.stat().st_dev != tmp_path.stat().st_dev
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_inputs_on_another_filesystem_are_copied(tmp_path, other_filesystem):
    """No hard link from another filesystem into the run directory: the input is copied."""
    source = other_filesystem / "data.txt"
    source.write_text("payload\n")
    wdl = write_wdl(tmp_path, "t.wdl", 'version 1.1\ntask t { input { File f } command <<< cat "~{f}"; echo "~{f}" >&2 >>> output { String content = read_string(stdout())  String path = read_string(stderr()) } }\n')
    proc = miniwdl_run(wdl, "local", tmp_path / "run", {"f": str(source)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = json.loads((tmp_path / "run" / "outputs.json").read_text())
    assert outputs["t.content"] == "payload"
    seen = Path(outputs["t.path"])
    assert not seen.is_symlink() and not seen.samefile(source) and seen.stat().st_dev != source.stat().st_dev


def test_the_command_runs_through_command_shell_bash_by_default(tmp_path):
    """docs/backends.md (local): the command runs through [task_runtime] command_shell."""
    wdl = write_wdl(tmp_path, "sh.wdl", 'version 1.1\ntask sh { command <<< echo "[${BASH_VERSION:+bash}]" >>> output { String out = read_string(stdout()) } }\n')
    proc = miniwdl_run(wdl, "local", tmp_path / "default")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "default" / "outputs.json").read_text())["sh.out"] == "[bash]"
    shell = tmp_path / "my-shell"
    shell.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/shell-args\nexec /bin/sh "$@"\n')
    shell.chmod(0o755)
    proc = miniwdl_run(wdl, "local", tmp_path / "custom", env={"MINIWDL__TASK_RUNTIME__COMMAND_SHELL": str(shell)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "shell-args").read_text().strip().endswith("/command")
    shown = json.loads((tmp_path / "custom" / "outputs.json").read_text())["sh.out"]
    assert shown == "[]" or os.path.realpath("/bin/sh").endswith("bash"), shown  # dash has no BASH_VERSION


def test_a_symlink_inside_a_directory_input_stays_a_symlink(tmp_path):
    """docs/backends.md (local): a Directory input is a real directory of hard links to its files,
    and a symbolic link inside it stays a symbolic link, as a bind mount shows it."""
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "data.txt").write_text("data\n")
    (folder / "link.txt").symlink_to("data.txt")
    wdl = write_wdl(
        tmp_path, "dir.wdl",
        'version 1.2\ntask d { input { Directory d }\n'
        '  command <<< cd ~{d}; test -L link.txt && echo "link -> $(readlink link.txt)"; find . -type f | sort; cat link.txt >>>\n'
        '  output { Array[String] seen = read_lines(stdout()) } }\n',
    )
    proc = miniwdl_run(wdl, "local", tmp_path / "run", {"d": str(folder)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "outputs.json").read_text())["d.seen"] == ["link -> data.txt", "./data.txt", "data"]
    assert (folder / "link.txt").is_symlink() and (folder / "data.txt").read_text() == "data\n"
