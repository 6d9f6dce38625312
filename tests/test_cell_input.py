"""A `%%wdl` cell reaches the magic byte for byte, whatever IPython's input transformers do with
prompt-like lines (`>>>`, `...`, `In [1]:`), indentation, or blank and comment lines before it
(ipython PR #15110 made IPython 9 strip every line matching `^\\s*>>>`, closing heredocs included).

Checked three ways users run cells: a real InteractiveShell, a real ipykernel over jupyter_client,
and papermill. The cell source the magic received is what it keeps under `<root>/.cells/`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import IPython
from IPython.core.inputtransformer2 import TransformerManager
import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbformat.v4 import new_code_cell, new_notebook

from miniwdl_jupyter.errors import WDLSourceError

from conftest import wdl

PROMPTS_TEXT = ">>> x\n... \nIn [1]: y\n   ...: z"  # what tests/data/prompts.wdl's first task prints
MAGIC_LINE = "%%wdl --backend local --progress none -o r"

# (what comes before the magic line, the body): each body must reach the magic unchanged. Most are
# not WDL: they fail to parse after the magic has kept them, which is all these need.
CELLS = {
    "indented >>>": ("", "version 1.1\ntask t {\n  command <<<\n    echo hi\n  >>>\n}\n"),
    ">>> at the start of a line": ("", ">>> x\nversion 1.1\n"),
    "... continuation": ("", "version 1.1\n... \n...\n"),
    "In [1]: first body line": ("", "In [1]: x\n   ...: y\nversion 1.1\n"),
    "leading blank line": ("\n", "  >>>\nversion 1.1\n"),
    "leading comment and blank line": ("# run it\n\n", ">>> x\n"),
    "indented magic and body": ("  ", "  version 1.1\n    >>>\n  ... \n"),
    "blank lines in the body": ("", "\n\n>>>\n\n"),
}


def staged_cells(root: Path) -> list:
    return [p.read_text() for p in sorted((root / ".cells").glob("*.wdl"))]


@pytest.mark.parametrize("name", CELLS)
def test_cell_body_reaches_the_magic_unchanged(shell, workdir, name):
    before, body = CELLS[name]
    result = shell.run_cell(f"{before}{MAGIC_LINE}\n{body}")
    assert result.error_before_exec is None
    assert staged_cells(workdir / "wdl_runs") == [body], f"IPython {IPython.__version__} changed the cell"


def test_error_lines_count_from_the_cell_as_written(shell, workdir):
    body = "\n>>> comment-like line\n" + "version 1.1\nworkflow w {\n  call nothere\n}\n"
    result = shell.run_cell(f"\n{MAGIC_LINE}\n{body}")
    assert isinstance(result.error_in_exec, WDLSourceError)
    assert result.error_in_exec.message.startswith("cell:2:1"), result.error_in_exec.message


def test_workflow_with_prompt_lines_runs(shell, workdir):
    body = wdl("prompts.wdl")
    result = shell.run_cell(f"\n{MAGIC_LINE}\n{body}")
    assert result.success, result.error_in_exec
    assert shell.user_ns["r"].outputs == {"text": PROMPTS_TEXT, "lines": "4"}
    assert staged_cells(workdir / "wdl_runs") == [body]


def test_other_cells_keep_ipythons_own_handling(shell):
    # A pasted doctest session is still cleaned up for Python, and `%%wdl?` is still help.
    assert shell.run_cell(">>> a = 20\n>>> b = a + 1\n").success
    assert shell.user_ns["b"] == 21
    assert "run_cell_magic" not in shell.transform_cell("%%wdl?\n")
    # Loading the extension twice installs the transform once.
    shell.run_line_magic("reload_ext", "miniwdl_jupyter")
    names = [getattr(t, "__name__", "") for t in shell.input_transformer_manager.cleanup_transforms]
    assert names.count("wdl_cell_to_magic_call") == names.count("wdl_cell_shape") == 1


def test_console_still_waits_for_the_end_of_a_wdl_cell(shell):
    # Terminals and consoles ask check_complete whether to run what was typed so far: a cell magic
    # goes on until a blank line, as for any other cell magic.
    assert shell.check_complete("%%wdl\nversion 1.1\n  >>>")[0] == "incomplete"
    assert shell.check_complete("%%wdl\nversion 1.1\n  >>>\n\n")[0] == "complete"
    assert shell.check_complete("\n%%wdl\n  task t {")  == ("incomplete", "  ")
    # Python cells get IPython's own answer.
    plain = TransformerManager()
    for python in ("x = 1\n", "if x:\n", ">>> x = 1\n", "%%timeit\n>>> x\n"):
        assert shell.input_transformer_manager.check_complete(python) == plain.check_complete(python), python


@pytest.fixture
def kernel(workdir):
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir))
    try:
        reply = kc.execute_interactive("%load_ext miniwdl_jupyter", timeout=120)
        assert reply["content"]["status"] == "ok"
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def kernel_value(kc, expression: str) -> str:
    reply = kc.execute_interactive("import json", user_expressions={"v": expression}, timeout=60)
    value = reply["content"]["user_expressions"]["v"]
    assert value["status"] == "ok", value
    return value["data"]["text/plain"]


def test_in_a_real_kernel(workdir, kernel):
    body = wdl("prompts.wdl")
    reply = kernel.execute_interactive(f"\n{MAGIC_LINE}\n{body}", timeout=300)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert json.loads(ast.literal_eval(kernel_value(kernel, "json.dumps(r.outputs)"))) == {"text": PROMPTS_TEXT, "lines": "4"}
    for name in ("In [1]: first body line", "indented magic and body"):
        before, odd = CELLS[name]
        reply = kernel.execute_interactive(f"{before}{MAGIC_LINE}\n{odd}", timeout=120)
        assert reply["content"]["ename"] == "WDLSourceError"
    assert sorted(staged_cells(workdir / "wdl_runs")) == sorted([body, CELLS["In [1]: first body line"][1], CELLS["indented magic and body"][1]])
    # ipykernel's is_complete (jupyter console, qtconsole) goes through check_complete.
    kernel.is_complete("%%wdl\nversion 1.1\n  >>>")
    assert kernel.get_shell_msg(timeout=30)["content"]["status"] == "incomplete"


def test_under_papermill(workdir):
    body = wdl("prompts.wdl")
    nb = new_notebook(cells=[
        new_code_cell("%load_ext miniwdl_jupyter"),
        new_code_cell(f"\n{MAGIC_LINE}\n{body}"),
        new_code_cell("import json; print(json.dumps(r.outputs))"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, workdir / "prompts.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", "prompts.ipynb", "prompts.out.ipynb", "--kernel", "python3"],
        capture_output=True, text=True, timeout=600, cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = nbformat.read(workdir / "prompts.out.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in out.cells[-1].outputs if o.get("output_type") == "stream")
    assert json.loads(printed) == {"text": PROMPTS_TEXT, "lines": "4"}
    assert staged_cells(workdir / "wdl_runs") == [body]
