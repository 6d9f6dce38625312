"""The magics through a real IPython InteractiveShell, on a real Docker daemon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from miniwdl_jupyter.errors import InputError, TaskFailed, WDLSourceError
from miniwdl_jupyter.runs import Run

from conftest import wdl


def run_cell(shell, line: str, body: str):
    result = shell.run_cell(f"%%wdl {line}\n{body}")
    return result


def test_scatter_with_python_bound_inputs_then_cached_then_no_cache(docker, shell, capsys):
    shell.user_ns["samples"] = ["a", "b", "c"]
    body = wdl("scatter.wdl", docker)
    result = run_cell(shell, '-o run names=$samples greeting="hi" --progress text', body)
    assert result.success, result.error_in_exec
    run = shell.user_ns["run"]
    assert isinstance(run, Run) and run.status == "succeeded"
    assert [p.read_text() for p in run.outputs["files"]] == ["hi a\n", "hi b\n", "hi c\n"]

    assert run_cell(shell, '-o again names=$samples greeting="hi" --progress none', body).success
    assert sorted(c.state for c in shell.user_ns["again"].calls) == ["cached"] * 3

    assert run_cell(shell, '-o fresh names=$samples greeting={"h" + "i"} --no-cache --progress none', body).success
    fresh = shell.user_ns["fresh"]
    assert sorted(c.state for c in fresh.calls) == ["succeeded"] * 3


def test_file_with_inputs_in_the_cell_body(docker, shell, workdir):
    lib = workdir / "lib"
    lib.mkdir()
    for name in ("main.wdl", "greet.wdl"):
        (lib / name).write_text(wdl(f"lib/{name}", docker))
    assert run_cell(shell, "-f lib/main.wdl --progress none", "who: bea\n").success
    assert shell.user_ns["wdl_run"].outputs == {"message": "hi bea"}
    (workdir / "inputs.json").write_text(json.dumps({"main.who": "cy"}))
    assert shell.run_cell("%wdl run -f lib/main.wdl -i inputs.json -o r2 --progress none").success
    assert shell.user_ns["r2"].outputs == {"message": "hi cy"}


def test_errors_are_short_and_fail_the_cell(docker, shell, capsys):
    result = run_cell(shell, "--progress none", "version 1.1\nworkflow w {\n  call nothere\n}\n")
    assert isinstance(result.error_in_exec, WDLSourceError)
    assert "cell:3:3" in capsys.readouterr().out + "".join(result.error_in_exec._render_traceback_())

    result = run_cell(shell, "--progress none", wdl("scatter.wdl", docker))
    assert isinstance(result.error_in_exec, InputError)
    assert "names (Array[String])" in str(result.error_in_exec)

    result = run_cell(shell, "-o failed --progress none", wdl("exit3.wdl", docker))
    assert isinstance(result.error_in_exec, TaskFailed)
    assert shell.user_ns["failed"].status == "failed", "the handle is kept when the run fails"
    out = capsys.readouterr()
    assert "something went wrong" in out.out + out.err
    assert "Traceback" not in out.out + out.err


def test_bad_arguments_are_usage_errors(docker, shell):
    result = run_cell(shell, "--backend nosuch --progress none", wdl("exit3.wdl", docker))
    assert isinstance(result.error_in_exec, UsageError)
    assert "docker_swarm" in str(result.error_in_exec) and "local" in str(result.error_in_exec)
    for line in ("%wdl frobnicate", "%wdl logs", "%wdl run", "%wdl attach nosuchrun"):
        result = shell.run_cell(line)
        assert isinstance(result.error_in_exec, UsageError), line
    result = run_cell(shell, "names=$undefined_var", wdl("scatter.wdl", docker))
    assert isinstance(result.error_in_exec, UsageError)
    assert "undefined_var" in str(result.error_in_exec)


def test_subcommands(docker, shell, capsys, workdir):
    shell.user_ns["samples"] = ["p"]
    assert run_cell(shell, "-o r names=$samples --progress none", wdl("scatter.wdl", docker)).success
    name = shell.user_ns["r"].run_dir.name
    capsys.readouterr()

    assert shell.run_cell("%wdl runs").success
    out = capsys.readouterr().out
    assert name in out and "succeeded" in out and "1/1" in out
    # README: status, duration, calls done and failed, size on disk (and a failed run's error)
    assert out.split()[:9] == ["run", "status", "started", "duration", "calls", "done", "failed", "backend", "size"], out
    row = next(line.split() for line in out.splitlines() if line.startswith(name + " "))
    assert row[1] == "succeeded" and row[5:7] == ["1/1", "0"] and row[-1] in ("kB", "MB"), row

    assert shell.run_cell(f"%wdl logs {name} greet -n 100").success
    assert "task setup" in capsys.readouterr().out

    assert shell.run_cell("%wdl attach last -o same --progress none").success
    assert shell.user_ns["same"].run_dir == shell.user_ns["r"].run_dir

    assert shell.run_cell("%wdl config jupyter").success
    out = capsys.readouterr().out
    assert "backend" in out and "env MINIWDL__JUPYTER__BACKEND" in out and "miniwdl-jupyter default" in out

    assert shell.run_cell("%%wdl check\n" + wdl("scatter.wdl", docker)).success
    assert "hello:" in capsys.readouterr().out

    result = shell.run_cell("%%wdl check\nversion 1.1\nworkflow w { Int x = [1, 2] }\n")
    assert isinstance(result.error_in_exec, WDLSourceError)


def test_help_shows_the_argument_spec(shell, capsys):
    # What a user sees from `%wdl?`: the usage line with every option, and every subcommand.
    assert shell.run_cell("%wdl?").success
    shown = capsys.readouterr().out
    usage = shown[shown.index("%wdl [") : shown.index("name=value ...]")]
    for option in ("-f WDL", "-i FILE|$dict", "-o VAR", "--task NAME", "--backend NAME", "--dir DIR", "--no-cache", "--no-wait", "--progress", "--cfg FILE"):
        assert option in usage, option
    for sub in ("runs", "attach", "wait", "cancel", "logs", "show", "check", "config", "build"):
        assert f"%wdl {sub}" in shown, sub


def test_no_wait_then_wait_and_cancel(docker, shell):
    assert shell.run_cell("%%wdl --no-wait -o bg --progress none n=2 seconds=600\n" + wdl("sleep_scatter.wdl", docker)).success
    bg = shell.user_ns["bg"]
    assert bg.status in ("queued", "running")
    assert shell.run_cell("%wdl cancel $bg").success
    assert bg.status == "cancelled"
    result = shell.run_cell(f"%wdl wait {bg.run_dir}")
    assert type(result.error_in_exec).__name__ == "Cancelled"
