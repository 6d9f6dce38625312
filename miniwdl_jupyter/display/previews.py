"""Previews of one output file by its kind, reading at most a bounded prefix of it.

Each preview is a `Fragment` (escaped HTML + plain text). Task outputs are untrusted: text is
escaped, and HTML/SVG go into an iframe with an empty `sandbox` attribute (no scripts, an opaque
origin, so nothing reaches the notebook) plus a CSP that blocks network loads.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .links import href
from .summary import esc

HEAD_BYTES = 64 * 1024  # what a text/CSV preview reads
LINE_COUNT_BYTES = 16 * 1024 * 1024  # line counts read at most this much (in chunks)
TEXT_LINES = 15
TABLE_ROWS = 10
JSON_MAX_BYTES = 1024 * 1024
EMBED_MAX_BYTES = 2 * 1024 * 1024  # images and HTML larger than this are linked, not embedded

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
SANDBOXED = {".html", ".htm", ".svg"}
TABLES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_CSP = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"


@dataclass
class Fragment:
    html: str
    text: str


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def file_label(path: Path, size: Optional[int]) -> Fragment:
    """The file's name (a link when JupyterLab can open it) and size."""
    link = href(path)
    name = f"<a href='{esc(link)}' title='{esc(path)}'>{esc(path.name)}</a>" if link else f"<code title='{esc(path)}'>{esc(path.name)}</code>"
    size_text = human_size(size) if size is not None else ""
    return Fragment(f"{name} <span style='color:#757575'>{esc(size_text)}</span>", f"{path} ({size_text})")


def preview_file(path: Path, embed_images: bool = True) -> Fragment:
    """A file's label and, for the kinds we know, a bounded preview. Never raises for a bad file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return Fragment(f"<code>{esc(path)}</code> <b>(missing)</b>", f"{path} (missing)")
    except OSError as exn:
        return Fragment(f"<code>{esc(path)}</code> <b>(unreadable: {esc(exn.strerror)})</b>", f"{path} (unreadable)")
    label = file_label(path, size)
    suffix = path.suffix.lower()
    try:
        if suffix in IMAGE_TYPES:
            if embed_images and size <= EMBED_MAX_BYTES:
                return Fragment(f"{label.html}<br>{_image(path, suffix)}", label.text)
            return label
        if suffix in SANDBOXED:
            return _join(label, _sandboxed(path, size))
        if suffix in TABLES:
            return _join(label, _table(path, size, TABLES[suffix]))
        if suffix == ".json" and size <= JSON_MAX_BYTES:
            return _join(label, _json(path))
        head = _head(path)
        if _looks_like_text(head):
            return _join(label, _text(path, head, size))
        return label
    except OSError as exn:
        return Fragment(f"{label.html} <b>(unreadable: {esc(exn.strerror or exn)})</b>", f"{label.text} (unreadable)")


def _join(label: Fragment, body: Fragment) -> Fragment:
    return Fragment(f"{label.html}{body.html}", f"{label.text}\n{body.text}".rstrip("\n"))


def _head(path: Path, limit: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exn:
        return exn.start > len(head) - 4  # a multi-byte character cut at the end of the prefix
    return True


def count_lines(path: Path, size: int) -> str:
    """'1,234 lines', or 'over N lines' when the file is larger than we are willing to read."""
    count, read = 0, 0
    with open(path, "rb") as f:
        while read < LINE_COUNT_BYTES:
            chunk = f.read(1024 * 1024)
            if not chunk:
                break
            read += len(chunk)
            count += chunk.count(b"\n")
            last = chunk[-1:]
    if read < size:
        return f"over {count:,} lines"
    if size and last != b"\n":
        count += 1  # a last line without its newline
    return "1 line" if count == 1 else f"{count:,} lines"


def _text(path: Path, head: bytes, size: int) -> Fragment:
    lines = head.decode("utf-8", errors="replace").splitlines()[:TEXT_LINES]
    shown = "\n".join(lines)
    info = f"{count_lines(path, size)}" + (f", first {len(lines)} shown" if size > len(head) or len(lines) == TEXT_LINES else "")
    return Fragment(
        f" <span style='color:#757575'>{esc(info)}</span><pre style='margin:0.2em 0;max-height:20em;overflow:auto'>{esc(shown)}</pre>",
        f"  ({info})\n" + "\n".join("  | " + line for line in lines),
    )


def _table(path: Path, size: int, delimiter: str) -> Fragment:
    head = _head(path)
    text = head.decode("utf-8", errors="replace")
    if len(head) < size:
        text = text[: text.rfind("\n") + 1]  # drop the row cut in half
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))[: TABLE_ROWS + 1]
    if not rows:
        return Fragment(" (empty)", "  (empty)")
    columns = len(rows[0])
    info = f"{columns} columns, {count_lines(path, size)}"
    head_html = "".join(f"<th style='text-align:left'>{esc(c)}</th>" for c in rows[0])
    body_html = "".join("<tr>" + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return Fragment(
        f" <span style='color:#757575'>{esc(info)}</span><div style='max-height:24em;overflow:auto'>"
        f"<table><thead><tr>{head_html}</tr></thead><tbody>{body_html}</tbody></table></div>",
        f"  ({info})\n" + "\n".join("  | " + delimiter.join(row) for row in rows),
    )


def _json(path: Path) -> Fragment:
    raw = path.read_bytes()
    try:
        pretty = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return _text(path, raw[:HEAD_BYTES], len(raw))
    lines = pretty.splitlines()
    shown = "\n".join(lines[: TEXT_LINES * 3]) + ("\n..." if len(lines) > TEXT_LINES * 3 else "")
    return Fragment(
        f"<pre style='margin:0.2em 0;max-height:24em;overflow:auto'>{esc(shown)}</pre>",
        "\n".join("  | " + line for line in shown.splitlines()),
    )


def _image(path: Path, suffix: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img src='data:{IMAGE_TYPES[suffix]};base64,{data}' alt='{esc(path.name)}' style='max-width:100%;max-height:30em'>"


def _sandboxed(path: Path, size: int) -> Fragment:
    if size > EMBED_MAX_BYTES:
        return Fragment(" (too large to preview)", "  (too large to preview)")
    content = path.read_bytes().decode("utf-8", errors="replace")
    # sandbox="" : no scripts, no same origin, no forms, no top navigation.
    return Fragment(
        f"<br><iframe sandbox='' referrerpolicy='no-referrer' srcdoc='{esc(_CSP + content)}' "
        f"style='width:100%;height:24em;border:1px solid #ddd;background:white' title='{esc(path.name)}'></iframe>",
        "",
    )


def image_bytes(path: Path) -> Optional[bytes]:
    """An image output's bytes when it can be shown inline as its own output, else None."""
    if path.suffix.lower() not in IMAGE_TYPES:
        return None
    try:
        if os.stat(path).st_size > EMBED_MAX_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None
