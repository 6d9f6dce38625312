"""A run's outputs, rendered by WDL type: one output per declared output name.

Values arrive as `Run.outputs` gives them: Files and Directories as pathlib.Path, Arrays as lists,
Pairs as tuples, Maps and structs as dicts, scalars as themselves. A File that is an image becomes
its own image output (rendered by every frontend, trusted or not); images nested in arrays or maps
are embedded in the HTML, up to a budget, then linked.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Dict, List

from .previews import IMAGE_TYPES, Fragment, file_label, human_size, image_bytes, preview_file
from .summary import esc

ITEMS_SHOWN = 50  # per array/map; the rest is counted
TREE_ENTRIES = 200  # per directory tree
TREE_DEPTH = 4
NESTED_IMAGES = 12  # embedded images per output


def render_outputs(run: Any) -> None:
    """Display each of `run.outputs` by type (after a run succeeds, and for `%wdl show`)."""
    from IPython.display import display

    outputs: Dict[str, Any] = run.outputs
    if not outputs:
        display({"text/plain": f"{getattr(run, 'name', run.run_dir)}: no outputs ({run.status})"}, raw=True)
        return
    for name, value in outputs.items():
        if isinstance(value, Path) and (data := image_bytes(value)) is not None:
            label = file_label(value, len(data))
            display({"text/html": f"<b>{esc(name)}</b> {label.html}", "text/plain": f"{name}: {label.text}"}, raw=True)
            mime = IMAGE_TYPES[value.suffix.lower()]
            display({mime: base64.b64encode(data).decode("ascii"), "text/plain": f"[{mime} {value.name}]"}, raw=True)
            continue
        fragment = render_value(value)
        display(
            {
                "text/html": f"<div class='miniwdl-output'><b>{esc(name)}</b> {fragment.html}</div>",
                "text/plain": f"{name}: {fragment.text}",
            },
            raw=True,
        )


def render_value(value: Any) -> Fragment:
    return _Renderer().render(value)


class _Renderer:
    """Walks one output value; holds the embedded-image budget for it."""

    def __init__(self) -> None:
        self.images_left = NESTED_IMAGES

    def render(self, value: Any) -> Fragment:
        if isinstance(value, Path):
            if value.is_dir():
                return directory_tree(value)
            fragment = preview_file(value, embed_images=self.images_left > 0)
            if "<img " in fragment.html:
                self.images_left -= 1
            return fragment
        if isinstance(value, list):
            return self._group(f"Array, {len(value):,} items", [(str(i), v) for i, v in enumerate(value)])
        if isinstance(value, tuple):
            return self._group("Pair", list(zip(("left", "right"), value)))
        if isinstance(value, dict):
            return self._group(f"{len(value):,} entries", list(value.items()))
        return _scalar(value)

    def _group(self, what: str, items: List[tuple]) -> Fragment:
        shown = items[:ITEMS_SHOWN]
        parts = [(key, self.render(item)) for key, item in shown]
        more = len(items) - len(shown)
        html_rows = "".join(
            f"<li><span style='color:#757575'>{esc(key)}</span> {frag.html}</li>" for key, frag in parts
        ) + (f"<li>... {more:,} more</li>" if more else "")
        text_rows = [f"  {key}: " + frag.text.replace("\n", "\n  ") for key, frag in parts] + ([f"  ... {more:,} more"] if more else [])
        return Fragment(
            f"<details open><summary>{esc(what)}</summary><ul style='margin:0;list-style:none;padding-left:1.2em'>{html_rows}</ul></details>",
            f"({what})\n" + "\n".join(text_rows),
        )


def _scalar(value: Any) -> Fragment:
    if isinstance(value, str):
        text = value if len(value) <= 2000 else value[:2000] + "..."
        return Fragment(f"<code>{esc(repr(text))}</code>", repr(text))
    return Fragment(f"<code>{esc(value)}</code>", repr(value))


def directory_tree(root: Path) -> Fragment:
    """A Directory output as a tree with sizes, at most TREE_ENTRIES entries and TREE_DEPTH levels."""
    lines: List[str] = []
    budget = [TREE_ENTRIES]
    html = _tree(root, 0, lines, budget)
    label = file_label(root, None)
    return Fragment(f"{label.html}/{html}", f"{root}/\n" + "\n".join(lines))


def _tree(directory: Path, depth: int, lines: List[str], budget: List[int]) -> str:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exn:
        lines.append("  " * (depth + 1) + f"(unreadable: {exn.strerror})")
        return f"<ul><li>(unreadable: {esc(exn.strerror)})</li></ul>"
    items = []
    for entry in entries:
        if budget[0] <= 0:
            items.append("<li>...</li>")
            lines.append("  " * (depth + 1) + "...")
            break
        budget[0] -= 1
        indent = "  " * (depth + 1)
        if entry.is_dir():
            lines.append(f"{indent}{entry.name}/")
            inner = _tree(Path(entry.path), depth + 1, lines, budget) if depth + 1 < TREE_DEPTH else ""
            items.append(f"<li>{file_label(Path(entry.path), None).html}/{inner}</li>")
        else:
            try:
                size = entry.stat().st_size
            except OSError:
                size = None
            lines.append(f"{indent}{entry.name} {human_size(size) if size is not None else '(missing)'}")
            items.append(f"<li>{file_label(Path(entry.path), size).html}</li>")
    return "<ul style='margin:0;padding-left:1.2em'>" + "".join(items) + "</ul>"
