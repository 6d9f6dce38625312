"""Hand a `%%wdl` cell to the magic exactly as it was typed.

IPython cleans every cell before it dispatches cell magics: it drops leading blank lines, dedents,
and strips lines that look like pasted prompts. Since IPython 9 (ipython PR #15110) any line matching
`^\\s*>>>` counts as a doctest prompt, so a WDL `command <<< ... >>>` whose `>>>` sits on its own line
reached the magic without it; `...:` and `In [1]: ` lines can be stripped too. Those rules suit Python,
not WDL. This module adds a cleanup transform, run before IPython's own, that turns a cell whose
first line of code is `%%wdl ...` straight into the `run_cell_magic` call IPython itself would make,
with the body untouched, so later transforms find nothing left to change; and a second one that
keeps consoles' "is this cell finished?" question (check_complete) answered as for any cell magic.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Tuple

MAGIC_NAME = "wdl"
# `%%wdl`, then whitespace or the end of the line (`%%wdl?` is a help request: leave it to IPython).
_MAGIC_LINE = re.compile(r"^[ \t]*%%" + MAGIC_NAME + r"(?:[ \t]+(?P<args>.*?))?[ \t]*(?:\r?\n)?$")
_INDENT = re.compile(r"[ \t]*")


def _split_wdl_cell(lines: List[str]) -> Optional[Tuple[str, List[str]]]:
    """(the magic's arguments, the body's lines) of a `%%wdl` cell; None for any other cell.

    Blank lines and `#` comment lines may come before `%%wdl` (IPython would otherwise treat such a
    cell as Python and fail on it).
    """
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _MAGIC_LINE.match(line)
        return (match.group("args") or "", lines[index + 1 :]) if match else None
    return None


def wdl_cell_to_magic_call(lines: List[str]) -> List[str]:
    """Cleanup transform: a `%%wdl` cell -> one line calling the cell magic, body verbatim."""
    split = _split_wdl_cell(lines)
    if split is None:
        return lines
    args, body = split
    return [f"get_ipython().run_cell_magic({MAGIC_NAME!r}, {args!r}, {''.join(body)!r})\n"]


# check_complete() (a terminal or console asking "is this cell finished?") skips transforms marked
# so: it must not see a finished one-line call as soon as `%%wdl` is typed.
wdl_cell_to_magic_call.has_side_effects = True  # type: ignore[attr-defined]


def wdl_cell_shape(lines: List[str]) -> List[str]:
    """Cleanup transform for check_complete only (in transform_cell the cell is already a call).

    IPython's rule for a cell magic is "complete once the last line is blank"; its prompt stripper
    would blank a last line such as `  >>>` first and so run a cell still being typed. Hand it the
    cell's shape instead: each body line's indentation, and whether it is blank.
    """
    split = _split_wdl_cell(lines)
    if split is None:
        return lines
    shape = [line if not line.strip() else _INDENT.match(line).group(0) + "wdl\n" for line in split[1]]
    return [f"%%{MAGIC_NAME}\n", *shape]


def install(shell: Any) -> None:
    """Put the transforms first in the shell's cleanup transforms (once, however often loaded)."""
    cleanup = shell.input_transformer_manager.cleanup_transforms
    for position, transform in enumerate((wdl_cell_to_magic_call, wdl_cell_shape)):
        if transform not in cleanup:
            cleanup.insert(position, transform)
