"""Fixtures for the display tests: synthetic run directories and a real ipykernel.

Import what a test module needs: `from display_fixtures import kernel, synthetic_run, ...`.
"""

from __future__ import annotations

import base64
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from make_synthetic_run import SyntheticRun, make_run, scatter_ids  # noqa: E402

# A 16x16 PNG (red over blue), small enough to write from a task's shell with base64 -d.
TINY_PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAG0lEQVR4nGM4ISdHEmIY1UATDSSqPzGqgSYaADpiBBBGOHCLAAAAAElFTkSuQmCC"
TINY_PNG = base64.b64decode(TINY_PNG_BASE64)

__all__ = ["SyntheticRun", "make_run", "scatter_ids", "TINY_PNG", "TINY_PNG_BASE64", "kernel", "KernelSession", "report_wdl"]


class KernelSession:
    """A real ipykernel, and the messages each executed cell produced on iopub."""

    def __init__(self, km: Any, kc: Any):
        self.km, self.kc = km, kc

    def run(self, code: str, timeout: float = 60, allow_stdin: bool = False) -> List[Dict[str, Any]]:
        """Execute `code`; return its iopub messages (minus status/execute_input). Fails on error.
        allow_stdin=False is how nbclient/papermill execute; interactive frontends allow it."""
        messages: List[Dict[str, Any]] = []
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=messages.append, allow_stdin=allow_stdin)
        errors = [m["content"] for m in messages if m["msg_type"] == "error"]
        assert reply["content"]["status"] == "ok", errors or reply["content"]
        return [m for m in messages if m["msg_type"] not in ("status", "execute_input")]

    def value(self, expression: str, allow_stdin: bool = False) -> str:
        """The text/plain repr of an expression evaluated in the kernel."""
        out = [m for m in self.run(expression, allow_stdin=allow_stdin) if m["msg_type"] == "execute_result"]
        return out[0]["content"]["data"]["text/plain"]

    def open_widget_control_comm(self) -> None:
        """Do what JupyterLab's widget manager does when it connects: open the control comm."""
        msg = self.kc.session.msg(
            "comm_open",
            {"comm_id": uuid.uuid4().hex, "target_name": "jupyter.widget.control", "data": {}},
            metadata={"version": "1.0.0"},  # the control protocol version ipywidgets 8 speaks
        )
        self.kc.shell_channel.send(msg)


@pytest.fixture
def kernel(tmp_path: Path):
    """A fresh python3 ipykernel whose working directory is tmp_path."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        yield KernelSession(km, kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def report_wdl(image: str, n: int = 20) -> str:
    """A workflow whose outputs exercise the renderers: an n-way scatter of text files, a PNG, an
    HTML page carrying a script that must not run, a TSV table, a scalar."""
    return f"""version 1.1
workflow report {{
  input {{ Int n = {n} }}
  scatter (i in range(n)) {{
    call count {{ input: i = i }}
  }}
  call plot
  output {{
    Array[File] counts = count.out
    File png = plot.png
    File page = plot.page
    File table = plot.table
    Int total = n
  }}
}}
task count {{
  input {{ Int i }}
  command <<<
    seq 0 ~{{i}} > counts_~{{i}}.txt
  >>>
  output {{ File out = "counts_~{{i}}.txt" }}
  runtime {{ docker: "{image}" }}
}}
task plot {{
  command <<<
    echo '{TINY_PNG_BASE64}' | base64 -d > plot.png
    printf '<h1>report</h1><script>parent.document.title="pwned"; top.document.title="pwned"; window.top.pwned = 1;</script>\\n' > page.html
    printf 'sample\\treads\\ns1\\t10\\ns2\\t20\\n' > table.tsv
  >>>
  output {{
    File png = "plot.png"
    File page = "page.html"
    File table = "table.tsv"
  }}
  runtime {{ docker: "{image}" }}
}}
"""
