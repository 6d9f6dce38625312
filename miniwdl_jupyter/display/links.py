"""Links from output paths to JupyterLab: a relative href under the server root opens the file in
JupyterLab (its HTML renderer resolves relative links against the notebook's directory).

Where things are, as far as the kernel can tell:
- the notebook's directory: dirname of `JPY_SESSION_NAME` (jupyter_server sets it to the notebook's
  path), else the kernel's working directory (which JupyterLab sets to the notebook's directory);
- the server root: the `root_dir` of the running jupyter_server that contains the notebook, else the
  notebook's directory (so headless runs still link what is beside the notebook).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional
from urllib.parse import quote


def notebook_dir() -> Path:
    session = os.environ.get("JPY_SESSION_NAME", "")
    if os.path.isabs(session):
        return Path(session).parent
    return Path.cwd()


@functools.lru_cache(maxsize=4)
def server_root(notebook: Path) -> Path:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return notebook
    roots = []
    for info in list_running_servers():
        root = Path(info.get("root_dir") or info.get("notebook_dir") or "/")
        if _is_within(notebook, root):
            roots.append(root)
    return max(roots, key=lambda r: len(r.parts)) if roots else notebook


def href(path: os.PathLike | str) -> Optional[str]:
    """A link to open `path` in JupyterLab, or None when the server can't serve it."""
    here = notebook_dir()
    # abspath, not resolve(): run outputs are symlinks (out/...) that the server serves as such.
    target = Path(os.path.abspath(path))
    if not _is_within(target, server_root(here)):
        return None
    return quote(os.path.relpath(target, here).replace(os.sep, "/"))


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
