"""Notebook steps end to end: papermill with a real kernel inside the shared step image, on the
core test backend (a real Docker daemon)."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

import miniwdl_jupyter
from miniwdl_jupyter.errors import TaskFailed
from miniwdl_jupyter.steps import LOCAL_IMAGE, NotebookFailed, run_notebook
from steps_fixtures import STEP_REQUIREMENTS, notebook, step_image  # noqa: F401 - fixtures
from test_papermill import papermill, write_notebook

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# What a %%wdl cell scattering the step over samples looks like.
SCATTER_WDL = """
version 1.1
import "notebook.wdl" as nb

workflow per_sample {
    input {
        File notebook
        Array[String] samples
        String image
    }
    scatter (sample in samples) {
        call nb.notebook_step { input: notebook = notebook, parameters = write_json({"sample": sample}), image = image }
    }
    output {
        Array[File] notebooks = notebook_step.executed_notebook
        Array[File] reports = notebook_step.html
        Array[Array[File]] files = notebook_step.outputs
    }
}
"""


def injected_parameters(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path} has no injected-parameters cell"
    return cells[0].source


def test_step_computes_from_its_parameters_and_writes_png_and_csv(step_image, workdir):
    build_output: list = []
    step = run_notebook(
        notebook("compute.ipynb"),
        {"sample": "abc", "scale": 2, "tags": ["x", 1], "opts": {"k": 0.5}},
        requirements=STEP_REQUIREMENTS,
        base_image=step_image.base,
        log=build_output.append,
    )
    assert build_output == [], "the session's image is reused: no rebuild"
    assert step.image == step_image.tag
    assert step.returncode == 0 and step.exception is None
    assert set(step.outputs) == {"plot.png", "values.csv"}
    assert step.outputs["plot.png"].read_bytes().startswith(PNG_SIGNATURE)
    rows = list(csv.reader(step.outputs["values.csv"].open()))
    assert rows[0] == ["i", "value"] and rows[-1] == ["7", str(7 * 2 * len("abc"))]
    injected = injected_parameters(step.executed_notebook)
    assert "sample = \"abc\"" in injected
    # parameters travel as JSON: numbers, lists and dicts keep their types (docs/notebook_steps.md)
    assert "scale = 2\n" in injected and 'tags = ["x", 1]' in injected and 'opts = {"k": 0.5}' in injected, injected
    assert "sample=abc scale=2 total=168" in step.stdout_tail
    assert "sample=abc scale=2 total=168" in step.html.read_text()

    again = run_notebook(notebook("compute.ipynb"), {"sample": "abc", "scale": 2, "tags": ["x", 1], "opts": {"k": 0.5}}, requirements=STEP_REQUIREMENTS, base_image=step_image.base)
    assert again.returncode == 0 and again.outputs["values.csv"].read_text() == step.outputs["values.csv"].read_text()
    assert any(c.cached for c in again.run.calls), "an unchanged step is a call-cache hit"


def test_three_way_scatter_gives_three_notebooks_with_their_parameter(step_image, workdir):
    samples = ["a", "bb", "ccc"]
    run = miniwdl_jupyter.run(
        SCATTER_WDL, {"notebook": str(notebook("compute.ipynb")), "samples": samples, "image": step_image.tag}
    )
    outputs = run.outputs
    assert len(outputs["notebooks"]) == len(outputs["reports"]) == 3
    for sample, executed, report, files in zip(samples, outputs["notebooks"], outputs["reports"], outputs["files"]):
        assert f'sample = "{sample}"' in injected_parameters(executed)
        assert f"sample={sample} " in report.read_text()
        values = {Path(f).name: Path(f) for f in files}["values.csv"]
        assert list(csv.reader(values.open()))[-1] == ["7", str(7 * len(sample))]


def test_failing_notebook_keeps_executed_notebook_and_html_and_names_the_cell(step_image, workdir):
    with pytest.raises(NotebookFailed) as info:
        run_notebook(notebook("fails.ipynb"), {"divisor": 0}, image=step_image.tag)
    error = info.value
    assert isinstance(error, TaskFailed) and error.exit_code == 1
    assert error.ename == "ZeroDivisionError" and error.evalue == "division by zero"
    assert "In [" in error.message and "ZeroDivisionError: division by zero" in error.message
    assert "ratio = 1 / divisor" in "\n".join(error._render_traceback_())
    executed = nbformat.read(error.executed_notebook, as_version=4)
    failing = executed.cells[error.cell_index]
    assert failing.source == "ratio = 1 / divisor"
    assert any(o.get("ename") == "ZeroDivisionError" for o in failing.outputs)
    assert "ZeroDivisionError" in error.html.read_text()
    # docs/notebook_steps.md: beside them in the call's work/ folder, notebook_error.json
    recorded = json.loads((error.executed_notebook.parent / "notebook_error.json").read_text())
    assert error.executed_notebook.parent.name == "work" and error.html.parent == error.executed_notebook.parent
    assert (recorded["cell_index"], recorded["ename"], recorded["evalue"], recorded["source"]) == (
        error.cell_index, "ZeroDivisionError", "division by zero", "ratio = 1 / divisor")
    assert recorded["execution_count"] == failing.execution_count

    # Without raising, the same facts are on the result (the ExecResult shape).
    step = run_notebook(notebook("fails.ipynb"), {"divisor": 0}, image=step_image.tag, raise_on_failure=False, cache=False)
    assert step.returncode == 1 and isinstance(step.exception, NotebookFailed)
    # What the user opens: the executed notebook with the error in its failing cell, and its HTML.
    assert nbformat.read(step.executed_notebook, as_version=4).cells[step.exception.cell_index].source == "ratio = 1 / divisor"
    assert "ZeroDivisionError" in step.html.read_text()
    assert step.stdout_tail == ["before the failure"], "the cell after the failure did not run"
    assert step.stderr_tail[-1] == step.exception.message


def test_kernel_falls_back_to_the_images_kernel_for_the_notebooks_language(step_image, workdir):
    step = run_notebook(notebook("other_kernel.ipynb"), image=step_image.tag)
    assert step.returncode == 0
    assert any("'conda-env-analysis-py' is not in the image; using 'python3'" in line for line in step.stderr_tail)
    assert any(line.startswith("kernel python /opt/notebook-step/") for line in step.stdout_tail)


def test_failing_step_in_a_workflow_names_the_cell(step_image, workdir):
    with pytest.raises(TaskFailed) as info:
        miniwdl_jupyter.run(
            SCATTER_WDL.replace('{"sample": sample}', '{"divisor": sample}'),
            {"notebook": str(notebook("fails.ipynb")), "samples": ["0"], "image": step_image.tag},
        )
    assert "ZeroDivisionError" not in info.value.stderr_tail[-1], "a string divisor raises a TypeError"
    assert "TypeError: unsupported operand type(s) for /: 'int' and 'str'" in info.value.stderr_tail[-1]
    assert "failed at cell In [" in info.value.stderr_tail[-1]


def test_papermill_parameter_reaches_a_step_in_a_wdl_cell(step_image, workdir):
    cell = (
        f"%%wdl -o r notebook={notebook('compute.ipynb')} samples={{[sample]}} image={step_image.tag} --progress none\n"
        + SCATTER_WDL
    )
    src = write_notebook(
        workdir / "driver.ipynb",
        "%load_ext miniwdl_jupyter",
        cell,
        "import json; print(json.dumps([str(f) for f in r.outputs['files'][0]]))",
        parameters="sample = 'default'",
    )
    proc = papermill(src, workdir / "driver.out.ipynb", "-p", "sample", "zed")
    assert proc.returncode == 0, proc.stderr[-2000:]
    nb = nbformat.read(workdir / "driver.out.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    files = json.loads(printed)
    wdl_cell = next(c for c in nb.cells if c.source.startswith("%%wdl"))
    rendered = "".join(o.get("data", {}).get("text/html", "") for o in wdl_cell.outputs)
    assert "compute.ipynb" in rendered and "compute.html" in rendered, "the outputs view lists the step's notebook and HTML"
    values = next(Path(f) for f in files if f.endswith("values.csv"))
    assert list(csv.reader(values.open()))[-1] == ["7", str(7 * len("zed"))]


def test_papermill_fails_with_the_short_error_when_a_step_fails(step_image, workdir):
    src = write_notebook(
        workdir / "driver_fails.ipynb",
        "%load_ext miniwdl_jupyter",
        f"%%wdl notebook={notebook('fails.ipynb')} samples={{['0']}} image={step_image.tag} --progress none\n"
        + SCATTER_WDL.replace('{"sample": sample}', '{"divisor": sample}'),
        "print('never reached')",
    )
    proc = papermill(src, workdir / "driver_fails.out.ipynb")
    assert proc.returncode != 0
    nb = nbformat.read(workdir / "driver_fails.out.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "TaskFailed"
    traceback = "\n".join(errors[0]["traceback"])
    assert "failed at cell In [" in traceback and "TypeError" in traceback
    assert len(errors[0]["traceback"]) < 40, "a short error, not a Python traceback"


def test_local_backend_runs_the_step_without_an_image(workdir, monkeypatch):
    # No Docker needed: the task runs on the python3 first on PATH; make that the environment under
    # test (it has papermill from the test extras), not whatever python3 the machine has.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    step = run_notebook(notebook("other_kernel.ipynb"), {"sample": "here"}, backend="local")
    assert step.image == LOCAL_IMAGE
    assert step.returncode == 0
    assert 'sample = "here"' in injected_parameters(step.executed_notebook)
    assert "here" in step.html.read_text(), "the HTML rendering shows the injected parameter"
    printed = "".join(o.get("text", "") for c in nbformat.read(step.executed_notebook, as_version=4).cells for o in c.get("outputs", []))
    assert f"kernel python {Path(sys.executable).parent}{os.sep}" in printed, printed


def test_input_files_are_linked_in_and_output_patterns_collected(step_image, workdir):
    numbers = workdir / "numbers.txt"
    numbers.write_text("1 2 3 4\n")
    step = run_notebook(
        notebook("reads_input.ipynb"),
        {"label": "total"},
        image=step_image.tag,
        input_files=[numbers],
        outputs=["results/*.tsv", "*.txt"],
        wait=False,
    )
    assert step.wait() is step and step.returncode == 0
    assert set(step.outputs) == {"summary.tsv", "notes.txt"}, "inputs linked in are not collected"
    assert step.outputs["summary.tsv"].read_text() == "total\t10\n"
    assert step.outputs["notes.txt"].read_text() == "4 numbers\n"
