"""WDL editing in a real JupyterLab in headless Chromium (see lab_fixtures.py): completion of a
call's missing inputs and of a kernel variable after `names=$`, hover on a call, go to
definition into an imported file, and the failure mark a failed run leaves on its `call` line.

Screenshots land in test-artifacts/: lab-completion-call-inputs.png, lab-completion-kernel.png,
lab-hover-call.png, lab-definition.png, lab-failure-mark.png.
"""

from __future__ import annotations

import pytest

from lab_fixtures import ARTIFACTS, browser_page, jupyterlab, lab_backend, labextension, open_notebook  # noqa: F401
from test_lab import FAILS, cell, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LIB = """version 1.1
# a small library beside the notebook

task greet {
  input {
    String name
    Int times = 1
    Boolean? loud
  }
  command <<< echo "hello ~{name}" >>>
  output { String msg = read_string(stdout()) }
}
"""
CALLER = """%%wdl -o r
version 1.1
import "lib.wdl"
workflow w {
  input { Array[String] names }
  call lib.greet { input: name = names[0] }
}
"""


def editor_coords(page, index: int, needle: str, delta: int = 0):  # type: ignore[no-untyped-def]
    """Screen coordinates of `needle` (+delta characters) in the editor of cell `index`."""
    return page.evaluate(
        """([index, needle, delta]) => {
          const view = window.jupyterapp.shell.currentWidget.content.widgets[index].editor.editor;
          const pos = view.state.doc.toString().indexOf(needle) + delta;
          const box = view.coordsAtPos(pos);
          return {x: box.left + 2, y: (box.top + box.bottom) / 2};
        }""",
        [index, needle, delta],
    )


def completion_labels(page) -> list:  # type: ignore[no-untyped-def]
    page.wait_for_selector(".cm-tooltip-autocomplete .cm-completionLabel", timeout=30_000)
    return page.eval_on_selector_all(".cm-tooltip-autocomplete .cm-completionLabel", "els => els.map(e => e.textContent)")


def test_completion_hover_and_definition(workdir, jupyterlab, browser_page):
    base, token = jupyterlab
    (workdir / "lib.wdl").write_text(LIB)
    write_notebook(workdir / "edit.ipynb", CALLER, "")
    page = browser_page
    open_notebook(page, base, token, "edit.ipynb")
    page.wait_for_selector(f"{cell(0)} .tok-keyword", timeout=30_000)
    page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        ".requestExecute({code: \"samples = ['a.fq', 'b.fq']\\ncount = 3\"}).done"
    )

    # Inside a call's braces: the callee's inputs not yet given, required first.
    page.click(f"{cell(1)} .cm-content")
    page.keyboard.insert_text(CALLER.replace("input: name = names[0] }", "input: ").rstrip("}\n") + "\n")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("End")
    page.keyboard.press("Control+Space")
    assert completion_labels(page) == ["name", "times", "loud"]
    page.screenshot(path=str(ARTIFACTS / "lab-completion-call-inputs.png"))
    page.wait_for_timeout(300)  # the completion list ignores Enter in its first 75 ms (interactionDelay)
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"document.querySelector(\"{cell(1)} .cm-content\").textContent.includes('input: name')", timeout=10_000
    )

    # After `names=$` on the magic line: the kernel's variables whose type fits Array[String].
    page.keyboard.press("Control+Home")
    page.keyboard.press("End")
    page.keyboard.type(" names=$")
    labels = completion_labels(page)
    assert "samples" in labels and "count" not in labels, labels
    page.screenshot(path=str(ARTIFACTS / "lab-completion-kernel.png"))
    page.keyboard.press("Escape")

    # Hover on a call: the task's inputs and outputs with their types.
    where = editor_coords(page, 0, "lib.greet", 5)
    page.mouse.move(where["x"], where["y"])
    hover = page.wait_for_selector(".miniwdl-hover", timeout=30_000).inner_text()
    assert "task lib.greet" in hover and "String name (required)" in hover and "Int times (default 1)" in hover, hover
    page.screenshot(path=str(ARTIFACTS / "lab-hover-call.png"))

    # An answer to text that changed meanwhile is dropped: the server's answer is held back
    # (by the browser) until the cell has been edited, and no tooltip shows.
    page.mouse.move(0, 0)
    page.wait_for_selector(".miniwdl-hover", state="detached", timeout=10_000)
    held = []
    hold = lambda route: held.append(route)  # noqa: E731 - Playwright needs a Python function
    page.route("**/miniwdl-jupyter/language/hover*", hold)
    page.mouse.move(where["x"], where["y"])
    while not held:
        page.wait_for_timeout(50)
    page.evaluate(
        "() => { const view = window.jupyterapp.shell.currentWidget.content.widgets[0].editor.editor;"
        " view.dispatch({changes: {from: view.state.doc.length, insert: ' '}}); }"
    )
    held[0].fulfill(response=held[0].fetch())
    page.wait_for_timeout(1000)
    assert page.locator(".miniwdl-hover").count() == 0
    page.unroute("**/miniwdl-jupyter/language/hover*", hold)

    # Go to definition on the imported task (F12, then Ctrl+click): lib.wdl opens at its line.
    task_line = LIB.split("\n").index("task greet {")  # 0-based, as the editor counts
    at_task = (
        "line => { const w = window.jupyterapp.shell.currentWidget;"
        " return w?.context?.path === 'lib.wdl' && w.content.editor.getCursorPosition().line === line; }"
    )
    page.mouse.click(where["x"], where["y"])
    page.keyboard.press("F12")
    page.wait_for_function(at_task, arg=task_line, timeout=30_000)
    page.evaluate("() => window.jupyterapp.commands.execute('application:close')")
    page.wait_for_function("window.jupyterapp.shell.currentWidget?.context?.path === 'edit.ipynb'", timeout=30_000)
    page.keyboard.down("Control")
    page.mouse.click(where["x"], where["y"])
    page.keyboard.up("Control")
    page.wait_for_function(at_task, arg=task_line, timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "lab-definition.png"))
    # In the .wdl file too: hover on a standard-library function shows its signature.
    where = page.evaluate(
        """() => { const view = window.jupyterapp.shell.currentWidget.content.editor.editor;
          const box = view.coordsAtPos(view.state.doc.toString().indexOf('read_string') + 3);
          return {x: box.left + 2, y: (box.top + box.bottom) / 2}; }"""
    )
    page.mouse.move(where["x"], where["y"])
    hover = page.wait_for_selector(".miniwdl-hover", timeout=30_000).inner_text()
    assert hover.startswith("String read_string(File)"), hover


def test_a_failed_run_marks_the_call_line_until_the_cell_is_edited(workdir, jupyterlab, browser_page):
    base, token = jupyterlab
    write_notebook(workdir / "fails.ipynb", "%load_ext miniwdl_jupyter", "%%wdl -o bad\n" + FAILS)
    page = browser_page
    open_notebook(page, base, token, "fails.ipynb")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_selector(".miniwdl-run-summary[data-status='failed']", timeout=150_000)
    marked = page.wait_for_selector(f"{cell(1)} .miniwdl-failed-line", timeout=30_000)
    assert marked.inner_text().strip().startswith("call crash"), marked.inner_text()
    message = page.inner_text(f"{cell(1)} .miniwdl-failure-message")
    assert message == "exit code 3: reading sample 3: bad header", message
    page.screenshot(path=str(ARTIFACTS / "lab-failure-mark.png"))
    # Editing the cell clears the mark.
    page.click(f"{cell(1)} .cm-line:has-text('task crash')")
    page.keyboard.press("End")
    page.keyboard.type(" ")
    page.wait_for_function(f"document.querySelectorAll(\"{cell(1)} .miniwdl-failed-line\").length === 0", timeout=10_000)
