"""A failed run -> the line of the cell that failed, with a one-line message.

miniwdl's error.json nests the failure from the workflow down to its root cause: the first
`call-NAME` node is this document's call (deeper ones are inside a called workflow), and the root
cause says what happened: the command's exit status (with the last stderr line), or an evaluation
error with the position of the expression that failed. A task run on its own (no workflow) is
marked on its `task` line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Optional

from .. import run_errors
from ..files import tail_lines
from . import symbols
from .documents import Analysis


def read_error(run_dir: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads((run_dir / "error.json").read_text())
    except (OSError, ValueError):
        return None


def failure_mark(analysis: Analysis, error: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """`{line, column, message}` in the analysed text (1-based), or None when no line fits."""
    chain = run_errors.cause_chain(error)
    if not chain:
        return None
    root = chain[-1]
    message = _message(root)
    main_source = (chain[0].get("pos") or {}).get("source")
    pos = root.get("pos") or {}
    if root.get("error") != "CommandFailed" and pos.get("line") and pos.get("source") == main_source:
        # An evaluation error in this very document: the expression's line.
        return {"line": int(pos["line"]) + _offset(analysis), "column": int(pos.get("column") or 1), "message": message}
    call_name = _first_call(chain)
    doc = analysis.doc
    call = next((c for c in symbols.calls(doc.workflow) if c.name == call_name), None) if doc and doc.workflow and call_name else None
    if call is not None:
        return {"line": call.pos.line, "column": call.pos.column, "message": message}
    if pos.get("line") and pos.get("source") == main_source:  # a task run on its own: its `task` line
        return {"line": int(pos["line"]) + _offset(analysis), "column": int(pos.get("column") or 1), "message": message}
    return None


def _offset(analysis: Analysis) -> int:
    """A cell's WDL is run without its magic line: the editor's lines are one further down."""
    return 1 if analysis.lines and analysis.lines[0].startswith("%%") else 0


def _first_call(chain) -> Optional[str]:  # type: ignore[no-untyped-def]
    for node in chain:
        for where in (node.get("run"), node.get("node"), Path(node["dir"]).name if node.get("dir") else None):
            match = re.match(r"call-([A-Za-z_]\w*)", where or "")
            if match:
                return match.group(1)
    return None


def _message(root: Dict[str, Any]) -> str:
    if root.get("error") == "CommandFailed":
        last = ""
        if root.get("stderr_file"):
            lines = [l for l in tail_lines(Path(root["stderr_file"]), 20) if l.strip()]
            last = lines[-1].strip() if lines else ""
        code = root.get("exit_status")
        return f"exit code {code}" + (f": {last}" if last else "")
    kind = root.get("error", "error")
    text = (root.get("message") or "").strip().splitlines()
    return f"{kind}: {text[0]}" if text else kind
