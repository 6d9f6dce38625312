"""One configuration per cell: settings given only through `%%wdl --cfg FILE` reach every part of
the run (root, backend, cache, progress view, docker_run's CLI for tasks and for leftover
cleanup); and arguments the magic must refuse before anything starts."""

from __future__ import annotations

import re
import stat
import textwrap
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from miniwdl_jupyter.runs import Run

ECHO = textwrap.dedent(
    """\
    version 1.1
    task echo {
      input { String s = "x" }
      command <<<
        echo "~{s}"
      >>>
      output { String out = read_string(stdout()) }
      runtime { docker: "IMAGE" }
    }
    """
)


def _cfg(workdir: Path, text: str) -> Path:
    path = workdir / "cell.cfg"
    path.write_text(textwrap.dedent(text))
    return path


def test_jupyter_settings_given_only_by_cfg_take_effect(shell, workdir, capsys, monkeypatch):
    monkeypatch.delenv("MINIWDL__JUPYTER__BACKEND")  # the environment would win over the file
    cfg = _cfg(
        workdir,
        """
        [jupyter]
        root = cfg_runs
        backend = local
        progress = text
        cache = false
        """,
    )
    for _ in range(2):
        result = shell.run_cell(f"%%wdl --cfg {cfg} -o r s=hello\n{ECHO.replace('IMAGE', 'ignored')}")
        assert result.success, result.error_in_exec
    run: Run = shell.user_ns["r"]
    assert run.run_dir.parent == workdir / "cfg_runs"  # [jupyter] root
    assert run.backend == "local"  # [jupyter] backend
    assert [c.state for c in run.calls] == ["succeeded"]  # [jupyter] cache = false: not "cached"
    assert run.outputs["out"] == "hello"
    assert "echo" in capsys.readouterr().err  # [jupyter] progress = text: lines on stderr
    # The subcommands read the same file: `runs` lists under [jupyter] root, `config` names the
    # file as the source, `attach` and `logs` find the run by name under that root.
    capsys.readouterr()
    assert shell.run_cell("%wdl runs").success
    assert run.run_dir.name not in capsys.readouterr().out, "without --cfg, the default root has no such run"
    assert shell.run_cell(f"%wdl runs --cfg {cfg}").success
    assert run.run_dir.name in capsys.readouterr().out
    assert shell.run_cell(f"%wdl config --cfg {cfg} jupyter").success
    shown = capsys.readouterr().out
    assert re.search(r"root\s*=?\s*cfg_runs", shown) and str(cfg) in shown, shown
    assert shell.run_cell(f"%wdl attach --cfg {cfg} {run.run_dir.name} -o again").success
    assert shell.user_ns["again"].run_dir == run.run_dir
    assert shell.run_cell(f"%wdl logs --cfg {cfg} {run.run_dir.name} -n 50").success
    assert 'name: "out", value: "hello"' in capsys.readouterr().out


def test_docker_run_exe_given_only_by_cfg_runs_tasks_and_cleans_up(docker, shell, workdir, monkeypatch):
    monkeypatch.delenv("MINIWDL__JUPYTER__BACKEND")
    calls = workdir / "docker-calls.txt"
    wrapper = workdir / "my-docker"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nexec docker "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    cfg = _cfg(
        workdir,
        f"""
        [jupyter]
        backend = docker_run
        [docker_run]
        exe = ["{wrapper}"]
        """,
    )
    result = shell.run_cell(f"%%wdl --cfg {cfg} -o r --no-cache --progress none s=hi\n{ECHO.replace('IMAGE', docker)}")
    assert result.success, result.error_in_exec
    assert shell.user_ns["r"].outputs["out"] == "hi"
    deadline = time.monotonic() + 60
    while "ps" not in calls.read_text().split() and time.monotonic() < deadline:  # the sweep runs in the background
        time.sleep(0.2)
    used = calls.read_text().split()
    assert "run" in used  # the task's container
    assert "ps" in used  # the sweep for killed runs' containers used the same CLI


def test_run_notebook_follows_its_cfg(workdir, monkeypatch):
    monkeypatch.delenv("MINIWDL__JUPYTER__BACKEND")
    from miniwdl_jupyter import run_notebook

    nb = workdir / "nb.ipynb"
    nb.write_text(
        '{"cells": [{"cell_type": "code", "execution_count": null, "id": "a", "metadata": {"tags": ["parameters"]},'
        ' "outputs": [], "source": ["x = 1"]}], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",'
        ' "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}'
    )
    cfg = _cfg(workdir, "[jupyter]\nroot = steps_root\nbackend = local\n")
    step = run_notebook(nb, {"x": 2}, cfg=str(cfg))
    assert step.run.run_dir.parent == workdir / "steps_root"
    assert step.run.backend == "local"
    assert (workdir / "steps_root" / ".steps").is_dir()  # the parameters file, under the same root


@pytest.mark.parametrize("name", ["1x", "class", "a-b"])
def test_o_must_name_a_python_variable(shell, workdir, name):
    with pytest.raises(UsageError, match="is not a Python variable name"):
        shell.run_cell_magic("wdl", f"-o {name}", ECHO.replace("IMAGE", "x"))
    assert not (workdir / "wdl_runs").exists() or not [p for p in (workdir / "wdl_runs").iterdir() if p.name != ".cells"]


def test_subcommands_refuse_bad_arguments_in_one_line(shell, workdir):
    shell.user_ns["x"] = ["not", "a", "run"]
    with pytest.raises(UsageError, match=r"\$x is a list"):
        shell.run_line_magic("wdl", "attach $x")
    with pytest.raises(UsageError, match="%wdl logs: .*required: run"):
        shell.run_line_magic("wdl", "logs")
    with pytest.raises(UsageError, match="%wdl runs: argument -n: invalid int"):
        shell.run_line_magic("wdl", "runs -n many")
    with pytest.raises(UsageError, match="no run at 'nope'"):
        shell.run_line_magic("wdl", "cancel nope")
    with pytest.raises(UsageError, match="configuration file not found"):
        shell.run_line_magic("wdl", "config --cfg missing.cfg")
