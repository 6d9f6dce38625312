"""File helpers the run machinery shares: read the end of a file, write a file atomically, keep
text content-addressed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import List, Optional, Union

PathLike = Union[str, os.PathLike]
TAIL_BYTES = 64 * 1024


def tail_lines(path: Optional[PathLike], n: Optional[int]) -> List[str]:
    """The last `n` lines of a file (all lines if n is None), reading at most its last 64 KiB when
    n is given: a task's stderr can be gigabytes. [] if it cannot be read."""
    if path is None:
        return []
    try:
        with open(path, "rb") as f:
            if n:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - TAIL_BYTES))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    return lines[-n:] if n else lines


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old content or the new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def content_addressed(folder: PathLike, text: str, *, prefix: str = "", suffix: str = "") -> Path:
    """`folder/<prefix><hash of text><suffix>`, written once: an unchanged text keeps its file (and
    its mtime, which miniwdl's call cache compares with its entries)."""
    path = Path(folder) / f"{prefix}{hashlib.sha256(text.encode()).hexdigest()[:16]}{suffix}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return path
