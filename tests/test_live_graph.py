"""The workflow graph in the live view, as users watch it: real runs on the local backend whose
calls wait for a file the test writes, so each graph node is seen waiting, running and done.

- in a real kernel executing as papermill does (the html board, updated in place), reading the
  graph nodes' data-state from every update_display_data;
- in JupyterLab in Chromium (the widget), unfolding the graph and watching a node change state
  (screenshots lab-live-graph-running.png and lab-live-graph-done.png in test-artifacts/).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import pytest

from display_fixtures import kernel  # noqa: F401 - fixture
from miniwdl_jupyter.report.svg import STATE_COLOURS
from lab_fixtures import ARTIFACTS, browser_page, jupyterlab, lab_backend, labextension, open_notebook  # noqa: F401
from test_lab import cell, write_notebook

pytestmark = [pytest.mark.timeout(300)]


def gated_wdl(gates: Path) -> str:
    """`first` then `second` (which reads first's output); each waits for its file in `gates`.
    Re-run with another `tag`, `first` comes from the call cache and `second` runs again."""
    return f"""version 1.1
workflow gated {{
  input {{ String tag = "a" }}
  call first {{ input: gate = "{gates}/first" }}
  call second {{ input: gate = "{gates}/second", x = first.out, tag = tag }}
}}
task first {{
  input {{ String gate }}
  command <<< for i in $(seq 1200); do [ -e ~{{gate}} ] && break; sleep 0.1; done; echo 1 >>>
  output {{ Int out = read_int(stdout()) }}
}}
task second {{
  input {{ String gate  Int x  String tag }}
  command <<< for i in $(seq 1200); do [ -e ~{{gate}} ] && break; sleep 0.1; done; echo ~{{x}} ~{{tag}} >>>
}}
"""


NODE = re.compile(r"<g class='miniwdl-graph-node' data-node='([^']+)' data-state='(\w+)'")


def node_states(html: str) -> Dict[str, str]:
    return dict(NODE.findall(html))


def node_fill(html: str, node: str) -> str:
    return re.search(rf"data-node='{node}'[^>]*>.*?<rect [^>]*fill='([^']+)'", html).group(1)


def watch_run(kernel, command: str, gates: Path):  # noqa: F811
    """Run `command` in the kernel as papermill does; open each gate once its call shows running.
    Returns the graph states of every board (live and final) and the live boards themselves."""
    seen: List[Dict[str, str]] = []
    live: List[dict] = []

    def watch(msg: dict) -> None:
        if msg["msg_type"] not in ("display_data", "update_display_data"):
            return
        data = msg["content"]["data"]
        states = node_states(data.get("text/html", ""))  # the live graph, or the final report's
        if not states:
            return
        seen.append(states)
        if "miniwdl-live-graph" in data["text/html"]:
            live.append(data)
        for node, gate in (("call-first", "first"), ("call-second", "second")):
            if states.get(node) == "running":
                (gates / gate).touch()

    reply = kernel.kc.execute_interactive(command, timeout=240, output_hook=watch, allow_stdin=False)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert live, "the live board shows the graph"
    return seen, live


def test_the_live_board_recolours_the_graph_as_calls_move(workdir, kernel):  # noqa: F811
    gates = workdir / "gates"
    gates.mkdir()
    (workdir / "gated.wdl").write_text(gated_wdl(gates))
    kernel.run("%load_ext miniwdl_jupyter")
    seen, live = watch_run(kernel, "%wdl run -f gated.wdl --backend local -o r", gates)
    assert {"call-first", "call-second"} == set(seen[-1]), seen[-1]
    # Each node goes queued -> running -> succeeded (the last in the final summary's folded
    # report), and second starts only after first is done.
    for node in ("call-first", "call-second"):
        states = [s[node] for s in seen]
        order = [state for i, state in enumerate(states) if i == 0 or states[i - 1] != state]
        assert order == ["queued", "running", "succeeded"] or order == ["running", "succeeded"], (node, order)
    assert {"call-first": "running", "call-second": "queued"} in seen
    assert {"call-first": "succeeded", "call-second": "running"} in seen
    # In the colours of the call counts, at the foot of the board (after the log tail).
    both = next(b["text/html"] for b in live if node_states(b["text/html"]) == {"call-first": "succeeded", "call-second": "running"})
    assert node_fill(both, "call-first") == STATE_COLOURS["succeeded"] and node_fill(both, "call-second") == STATE_COLOURS["running"]
    assert both.index("raw log") < both.index("miniwdl-live-graph") < both.index("run directory:")
    assert "max-height:16em;overflow:auto" in both
    # Headless, the plain-text fallback carries no picture: it stays as small as the board without it.
    texts = [b["text/plain"] for b in live]
    assert all("<svg" not in t and "graph" not in t for t in texts)
    assert max(len(t) for t in texts) < 2000, max(texts, key=len)

    # Again with another tag: first comes from the call cache, second runs again.
    for gate in gates.iterdir():
        gate.unlink()
    seen, live = watch_run(kernel, "%wdl run -f gated.wdl tag=b --backend local -o r2", gates)
    assert {"call-first": "cached", "call-second": "running"} in seen, seen
    cached = next(b["text/html"] for b in live if node_states(b["text/html"]).get("call-first") == "cached")
    assert node_fill(cached, "call-first") == STATE_COLOURS["cached"]


@pytest.mark.slow
def test_jupyterlab_live_widget_graph_shows_a_node_change_state(workdir, jupyterlab, browser_page):
    base, token = jupyterlab
    gates = workdir / "gates"
    gates.mkdir()
    write_notebook(workdir / "graph.ipynb", "%load_ext miniwdl_jupyter", "%%wdl -o gated_run\n" + gated_wdl(gates))
    page = browser_page
    open_notebook(page, base, token, "graph.ipynb")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    widget = ".miniwdl-run-widget"
    folded = f"{widget} .miniwdl-live-graph"
    page.wait_for_selector(f"{folded} :text('workflow graph')", timeout=120_000)  # the folded section's title
    page.click(f"{folded} :text('workflow graph')")  # unfolds in the browser while the cell runs
    first = f"{folded} g.miniwdl-graph-node[data-node='call-first']"
    page.wait_for_selector(f"{first}[data-state='running']", timeout=120_000)
    assert page.locator(f"{folded} g.miniwdl-graph-node[data-node='call-second'][data-state='queued']").count() == 1
    bar = page.locator(f"{widget} .widget-hprogress").first  # the run's progress bar stays above the graph
    assert bar.is_visible() and bar.bounding_box()["y"] < page.locator(folded).bounding_box()["y"]
    page.screenshot(path=str(ARTIFACTS / "lab-live-graph-running.png"))
    (gates / "first").touch()
    page.wait_for_selector(f"{first}[data-state='succeeded']", timeout=60_000)
    page.wait_for_selector(f"{folded} g.miniwdl-graph-node[data-node='call-second'][data-state='running']", timeout=60_000)
    assert "2 steps" in page.inner_text(folded), page.inner_text(folded)  # the title counts the steps
    page.screenshot(path=str(ARTIFACTS / "lab-live-graph-done.png"))
    (gates / "second").touch()
    page.wait_for_selector(".miniwdl-run-summary[data-status='succeeded']", timeout=120_000)
    assert page.locator(widget).count() == 0, "one view left when the run ends"
