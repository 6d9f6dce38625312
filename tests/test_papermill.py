"""Notebooks that use the magics, executed headless by papermill with a real kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from conftest import wdl


def write_notebook(path: Path, *cells: str, parameters: str = "") -> Path:
    nb = new_notebook(cells=[new_code_cell(src) for src in cells])
    if parameters:
        cell = new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.insert(0, cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def papermill(src: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "papermill", str(src), str(out), "--kernel", "python3", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_outputs(nb_path: Path) -> list:
    nb = nbformat.read(nb_path, as_version=4)
    return [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_failing_wdl_cell_fails_papermill_with_the_short_error(docker, workdir):
    src = write_notebook(
        workdir / "fails.ipynb",
        "%load_ext miniwdl_jupyter",
        "%%wdl\n" + wdl("exit3.wdl", docker),
        "print('never reached')",
    )
    proc = papermill(src, workdir / "fails.out.ipynb")
    assert proc.returncode != 0
    errors = error_outputs(workdir / "fails.out.ipynb")
    assert len(errors) == 1
    traceback = "\n".join(errors[0]["traceback"])
    assert errors[0]["ename"] == "TaskFailed"
    assert "exited with status 3" in traceback and "something went wrong" in traceback
    assert len(errors[0]["traceback"]) < 15, "a short error, not a Python traceback"
    last = nbformat.read(workdir / "fails.out.ipynb", as_version=4).cells[-1]
    assert last.source == "print('never reached')" and last.get("outputs") == []


def test_parameters_flow_into_wdl_inputs(docker, workdir):
    src = write_notebook(
        workdir / "param.ipynb",
        "%load_ext miniwdl_jupyter",
        "%%wdl -o r names={[sample]}\n" + wdl("scatter.wdl", docker),
        "print(r.outputs['files'][0].read_text())",
        parameters="sample = 'default'",
    )
    proc = papermill(src, workdir / "param.out.ipynb", "-p", "sample", "zed")
    assert proc.returncode == 0, proc.stderr[-2000:]
    nb = nbformat.read(workdir / "param.out.ipynb", as_version=4)
    streams = [o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream"]
    assert "hello zed\n" in "".join(streams)
