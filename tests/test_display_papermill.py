"""The display in a headless notebook: papermill runs a %%wdl cell with a 20-way scatter on Docker."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from display_fixtures import report_wdl

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")


def test_papermill_notebook_holds_final_summary_and_outputs_and_stays_small(docker, workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "docker_run")  # the fast local backend
    nb = new_notebook(cells=[new_code_cell("%load_ext miniwdl_jupyter"), new_code_cell("%%wdl -o r\n" + report_wdl(docker))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, workdir / "report.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", "report.ipynb", "report.out.ipynb", "--kernel", "python3"],
        capture_output=True, text=True, timeout=300, cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = nbformat.read(workdir / "report.out.ipynb", as_version=4)
    outputs = out.cells[1].outputs
    assert {o.output_type for o in outputs} == {"display_data"}, [o.output_type for o in outputs]
    # The progress board, updated in place to the final state: first, and only once.
    board = outputs[0].data
    assert "report" in board["text/plain"] and "succeeded" in board["text/plain"] and "21/21 calls" in board["text/plain"]
    assert sum("calls (" in o.data.get("text/plain", "") for o in outputs) == 1
    html = "\n".join(o.data.get("text/html", "") for o in outputs)
    assert any(t in o.data for o in outputs for t in IMAGE_TYPES), "the PNG output renders as an image"
    assert "counts_19.txt" in html and "(Array, 20 items)" in "\n".join(o.data["text/plain"] for o in outputs)
    assert "<iframe sandbox=''" in html and "<script>" not in html
    assert "<th style='text-align:left'>reads</th>" in html
    # The scalar output as the reader sees it: its name and its value, in both renderings.
    assert "total: 20" in [o.data["text/plain"] for o in outputs]
    assert "<b>total</b> <code>20</code>" in html
    # Under 200 KB apart from images.
    for o in outputs:
        for t in IMAGE_TYPES:
            o.data.pop(t, None)
    assert len(json.dumps(nbformat.writes(out))) < 200_000
