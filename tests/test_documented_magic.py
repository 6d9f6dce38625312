"""What README's "Using it" promises for the magic, each through a real IPython shell on a real
Docker daemon (the docker_run backend): showing outputs, --task, -i $dict and -i FILE with pairs
overriding them, repeated names filling an Array, call.input names, %wdl check -f, %wdl runs
--root/-n, %wdl attach on a running run, %wdl config --cfg."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter.errors import WDLSourceError
from miniwdl_jupyter.runs import Run

from conftest import wdl

# A workflow whose call input is left open, so it can be set from outside as `call.input`.
CALL_INPUT_WDL = """version 1.1
workflow wf {
  input { String prefix = "p" }
  call say { input: prefix = prefix }
  output { String said = say.out }
}
task say {
  input {
    String prefix
    String word = "default"
  }
  command <<< echo "~{prefix}:~{word}" >>>
  output { String out = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""


@pytest.fixture
def fast(docker, workdir, monkeypatch) -> str:
    """The docker_run backend (real containers, no swarm polling); returns the test image."""
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "docker_run")
    return docker


def texts(run: Run) -> list:
    return [p.read_text() for p in run.outputs["files"]]


def test_show_renders_a_finished_runs_outputs_by_magic_and_method(fast, shell, capsys):
    assert shell.run_cell("%%wdl -o r --progress none names=ann\n" + wdl("scatter.wdl", fast)).success
    name = shell.user_ns["r"].run_dir.name
    capsys.readouterr()
    for line in (f"%wdl show {name}", "%wdl show $r", "r.show()"):
        assert shell.run_cell(line).success, line
        shown = capsys.readouterr().out
        # What the reader sees: each output by name, the Array as a group, the file previewed.
        assert "count: 1" in shown, (line, shown)
        assert "files: (Array, 1 items)" in shown and "ann.txt" in shown and "hello ann" in shown, (line, shown)


def test_task_option_runs_one_task_of_the_cell(fast, shell):
    assert shell.run_cell("%%wdl --task greet -o t --progress none name=solo greeting=yo\n" + wdl("scatter.wdl", fast)).success
    run = shell.user_ns["t"]
    assert run.outputs["out"].read_text() == "yo solo\n"
    assert [c.name for c in run.calls] == ["greet"] and run.name == "greet"


def test_inputs_from_a_dict_variable_with_pairs_overriding_it(fast, shell):
    shell.user_ns["params"] = {"names": ["a", "b"], "greeting": "hey"}
    body = wdl("scatter.wdl", fast)
    assert shell.run_cell("%%wdl -i $params -o d --progress none\n" + body).success
    assert texts(shell.user_ns["d"]) == ["hey a\n", "hey b\n"]
    assert shell.run_cell("%%wdl -i $params -o e --progress none greeting=yo\n" + body).success
    assert texts(shell.user_ns["e"]) == ["yo a\n", "yo b\n"], "a pair overrides the same input from -i"
    assert shell.user_ns["params"] == {"names": ["a", "b"], "greeting": "hey"}, "the notebook's dict is not changed"


def test_inputs_from_a_yaml_file_with_pairs_overriding_it(fast, shell, workdir):
    (workdir / "hello.wdl").write_text(wdl("scatter.wdl", fast))
    (workdir / "inputs.yaml").write_text("# YAML, not JSON\nnames:\n  - x\n  - y\ngreeting: hola\n")
    assert shell.run_cell("%wdl run -f hello.wdl -i inputs.yaml -o y --progress none").success
    assert texts(shell.user_ns["y"]) == ["hola x\n", "hola y\n"]
    assert shell.run_cell("%wdl run -f hello.wdl -i inputs.yaml -o z --progress none names=solo").success
    assert texts(shell.user_ns["z"]) == ["hola solo\n"], "the pair replaced the file's names"


def test_a_pair_overrides_a_namespaced_key_of_the_inputs_file(fast, shell, workdir):
    # miniwdl's own inputs files name inputs with the workflow's namespace (hello.greeting).
    (workdir / "hello.wdl").write_text(wdl("scatter.wdl", fast))
    (workdir / "inputs.json").write_text('{"hello.names": ["x"], "hello.greeting": "hola"}')
    assert shell.run_cell("%wdl run -f hello.wdl -i inputs.json -o n --progress none greeting=ciao").success
    assert texts(shell.user_ns["n"]) == ["ciao x\n"]


def test_repeating_a_name_fills_an_array(fast, shell):
    body = wdl("scatter.wdl", fast)
    assert shell.run_cell("%%wdl -o r --progress none names=a names=b names=c greeting=hi\n" + body).success
    assert texts(shell.user_ns["r"]) == ["hi a\n", "hi b\n", "hi c\n"]
    assert shell.user_ns["r"].outputs["count"] == 3
    assert shell.run_cell("%%wdl -o one --progress none names=solo greeting=hi\n" + body).success
    assert texts(shell.user_ns["one"]) == ["hi solo\n"], "a single value for an Array is an Array of one"


def test_call_inputs_are_set_by_namespaced_names(fast, shell):
    body = CALL_INPUT_WDL.replace("IMAGE", fast)
    assert shell.run_cell("%%wdl -o plain --progress none\n" + body).success
    assert shell.user_ns["plain"].outputs == {"said": "p:default"}
    assert shell.run_cell("%%wdl -o call --progress none say.word=hi\n" + body).success
    assert shell.user_ns["call"].outputs == {"said": "p:hi"}
    assert shell.run_cell("%%wdl -o full --progress none wf.say.word=yo wf.prefix=q\n" + body).success
    assert shell.user_ns["full"].outputs == {"said": "q:yo"}


def test_check_a_file(shell, workdir, capsys):
    (workdir / "ok.wdl").write_text(wdl("scatter.wdl"))
    assert shell.run_cell("%wdl check -f ok.wdl").success
    assert capsys.readouterr().out.splitlines()[0] == "hello: no problems"
    (workdir / "lint.wdl").write_text("version 1.1\nworkflow w {\n  input { String unused }\n}\n")
    assert shell.run_cell("%wdl check -f lint.wdl").success
    shown = capsys.readouterr().out
    assert "w: 1 lint warning(s)" in shown and "lint.wdl:3:" in shown, shown
    (workdir / "bad.wdl").write_text("version 1.1\nworkflow w {\n  Int x = [1, 2]\n}\n")
    result = shell.run_cell("%wdl check -f bad.wdl")
    assert isinstance(result.error_in_exec, WDLSourceError)
    assert "bad.wdl:3:" in "\n".join(result.error_in_exec._render_traceback_())


def test_runs_lists_newest_first_capped_by_n_and_under_another_root(fast, shell, workdir, capsys):
    body = wdl("scatter.wdl", fast)
    names = []
    for who in ("first", "second", "third"):
        assert shell.run_cell(f"%%wdl -o r --progress none names={who}\n" + body).success
        names.append(shell.user_ns["r"].run_dir.name)
    # --dir DIR puts the run in a new timestamped directory under DIR, as miniwdl run does.
    assert shell.run_cell("%%wdl --dir elsewhere -o other --progress none names=far\n" + body).success
    other = shell.user_ns["other"].run_dir
    assert other.parent == Path("elsewhere").resolve()
    capsys.readouterr()

    assert shell.run_cell("%wdl runs -n 2").success
    shown = capsys.readouterr().out
    assert names[2] + " " in shown and names[1] + " " in shown and names[0] + " " not in shown, shown
    # (two runs started in one second are named NAME and NAME_2: a name is followed by spaces)
    assert shown.index(names[2] + " ") < shown.index(names[1] + " "), "newest first"
    # (runs under two roots started in one second may even share a name: compare only distinct ones)
    if other.name not in names:
        assert other.name + " " not in shown

    assert shell.run_cell("%wdl runs --root elsewhere").success
    shown = capsys.readouterr().out
    assert other.name + " " in shown and "succeeded" in shown, shown
    assert not any(n + " " in shown for n in names if n != other.name), shown


def test_attach_to_a_running_run_returns_at_once_with_a_live_handle(fast, shell, capsys):
    started = mj.run(wdl("sleep_scatter.wdl", fast), {"n": 1, "seconds": 600}, wait=False)
    try:
        deadline = time.monotonic() + 120
        while started.poll().counts["running"] < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.state.counts["running"] == 1, started.log()
        capsys.readouterr()
        # The cell returns while the run goes on (it would block for 600 s otherwise).
        assert shell.run_cell(f"%wdl attach {started.run_dir.name} -o h --progress text").success
        handle = shell.user_ns["h"]
        assert isinstance(handle, Run) and handle.run_dir == started.run_dir
        assert handle.status == "running"
        shown = capsys.readouterr()
        assert "sleepy" in shown.err and "running" in shown.err, "the text view shows the state once (stderr outside a kernel)"
        assert shell.run_cell("%wdl cancel $h").success
        assert handle.status == "cancelled" and started.status == "cancelled"
    finally:
        started.cancel()
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=miniwdl_jupyter.run_dir={started.run_dir}"],
        capture_output=True, text=True,
    ).stdout.split()
    assert left == [], "no container of the attached run is left"


def test_config_with_a_cfg_file_shows_its_values_and_where_they_came_from(shell, workdir, capsys, monkeypatch):
    monkeypatch.delenv("MINIWDL__JUPYTER__BACKEND")
    cfg = workdir / "project.cfg"
    cfg.write_text("[jupyter]\nroot = project_runs\nprogress = text\n")
    assert shell.run_cell("%wdl config jupyter --cfg project.cfg").success
    shown = capsys.readouterr().out
    rows = {line.split()[1]: line for line in shown.splitlines() if line.split()[:1] == ["jupyter"]}
    assert rows["root"].split()[2:] == ["project_runs", "file", "project.cfg"], shown
    assert rows["progress"].split()[2:] == ["text", "file", "project.cfg"], shown
    assert "miniwdl-jupyter default" in rows["cache"], shown
    assert shell.run_cell("%wdl config jupyter").success
    assert "project_runs" not in capsys.readouterr().out, "without --cfg the file is not read"


def test_config_docker_run_shows_the_effective_values_and_their_sources(shell, workdir, capsys, monkeypatch):
    """docs/backends.md: `%wdl config docker_run` shows the effective [docker_run] values and where
    each came from (here an environment variable and the package defaults)."""
    monkeypatch.setenv("MINIWDL__DOCKER_RUN__AS_ROOT", "true")
    assert shell.run_cell("%wdl config docker_run").success
    shown = capsys.readouterr().out
    rows = {line.split()[1]: line for line in shown.splitlines() if line.split()[:1] == ["docker_run"]}
    assert set(rows) >= {"exe", "as_root", "gpu_flags", "require_gpu", "init", "extra_args"}, shown
    assert "true" in rows["as_root"] and "MINIWDL__DOCKER_RUN__AS_ROOT" in rows["as_root"], shown
    assert "miniwdl-jupyter default" in rows["init"], shown


TYPES_WDL = """version 1.1
task types {
  input { String s  Int n  Float x  Boolean b  Array[String] a  Map[String, Int] m  File f }
  command <<< echo "~{s} ~{n} ~{x} ~{b} ~{sep(',', a)} ~{m['k']} $(cat ~{f})" >>>
  output { String out = read_string(stdout()) }
}
"""


def test_python_variables_of_each_documented_type_bind_as_inputs(shell, workdir, monkeypatch):
    """README: `name=$var` takes str, int, float, bool, list, dict and pathlib.Path (relative
    paths against the notebook's folder)."""
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "local")
    (workdir / "data.txt").write_text("from-file\n")
    shell.user_ns.update(s="word", n=3, x=2.5, b=True, a=["p", "q"], m={"k": 7}, f=Path("data.txt"))
    result = shell.run_cell(f"%%wdl -o typed --progress none s=$s n=$n x=$x b=$b a=$a m=$m f=$f\n{TYPES_WDL}")
    assert result.success, result.error_in_exec
    run = shell.user_ns["typed"]
    assert run.outputs == {"out": "word 3 2.500000 true p,q 7 from-file"}
    # README, "Where runs live": .miniwdl_jupyter/ holds the launch record, the inputs given and
    # miniwdl's own stdout/stderr, beside miniwdl's layout.
    meta = run.run_dir / ".miniwdl_jupyter"
    assert sorted(p.name for p in meta.iterdir()) >= ["inputs.json", "launch.json", "miniwdl.stderr", "miniwdl.stdout"]
    record = json.loads((meta / "launch.json").read_text())
    # docs/runs.md: the record has launcher and launch_time; the local launcher adds its handle
    assert record["launcher"] == "local" and {"launch_time", "pid", "pid_start_time", "host"} <= set(record), record
    given = json.loads((meta / "inputs.json").read_text())
    assert given["types.m"] == {"k": 7} and given["types.f"] == str(workdir / "data.txt")
    assert (run.run_dir / "task.log").exists() and (run.run_dir / "outputs.json").exists()


def test_auto_progress_in_a_terminal_ipython_is_text(shell, workdir, capsys, monkeypatch):
    """docs/display.md, `auto` rule 1: outside an IPython kernel (here a terminal IPython shell) the
    view is text lines, on stderr."""
    from miniwdl_jupyter.display.modes import resolve_mode

    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "local")
    assert resolve_mode("auto") == "text"
    result = shell.run_cell("%%wdl -o quiet s=hi\nversion 1.1\ntask echo { input { String s } command <<< echo ~{s} >>> }\n")
    assert result.success, result.error_in_exec
    shown = capsys.readouterr()
    assert "succeeded" in shown.err and "calls" in shown.err and "succeeded" not in shown.out.replace("(succeeded)", ""), shown
    ended = [line for line in shown.err.splitlines() if "succeeded" in line]
    assert len(ended) == 1 and ended[0].startswith("echo [local] succeeded ") and ended[0].endswith("1/1 calls (1 succeeded)"), shown.err
