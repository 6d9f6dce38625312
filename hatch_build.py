"""Build hook: the prebuilt JupyterLab extension goes into the wheel, so `pip install
miniwdl-jupyter[notebook]` brings it with no Node.js on the user's machine.

- A standard wheel (`pip install .`, `pip wheel .`, `python -m build`) builds the extension with
  `jlpm` (from the `jupyter-builder` build requirement; Node.js needed) unless a build newer than
  the TypeScript sources is already in miniwdl_jupyter/labextension, and ships it as shared data
  under share/jupyter/labextensions/miniwdl-jupyter.
- An editable install (`pip install -e .`) does not run Node: it ships a build already made
  (`jlpm build`), if there is one, and otherwise installs without the extension, as quickly as
  before. `MINIWDL_JUPYTER_BUILD_LABEXTENSION=1` makes it build first.
The server extension's config file is shipped in both cases (see pyproject.toml's shared-data).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LABEXTENSION = "miniwdl_jupyter/labextension"
INSTALLED_AS = "share/jupyter/labextensions/miniwdl-jupyter"
SOURCES = ("src", "style", "package.json", "yarn.lock", "tsconfig.json")


def _newest_mtime(root: Path, names) -> float:  # type: ignore[no-untyped-def]
    newest = 0.0
    for name in names:
        path = root / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
        for f in files:
            newest = max(newest, f.stat().st_mtime)
    return newest


class LabExtensionBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        built = root / LABEXTENSION / "package.json"
        fresh = built.exists() and built.stat().st_mtime >= _newest_mtime(root, SOURCES)
        wanted = version == "standard" or os.environ.get("MINIWDL_JUPYTER_BUILD_LABEXTENSION") == "1"
        if wanted and not fresh and (root / "package.json").exists():
            self._build(root)
        if built.exists():
            build_data["shared_data"][LABEXTENSION] = INSTALLED_AS
            if not (root / LABEXTENSION / "install.json").exists():
                build_data["shared_data"]["install.json"] = f"{INSTALLED_AS}/install.json"
        elif version == "standard":
            raise RuntimeError(f"the JupyterLab extension was not built ({built} is missing)")
        else:
            self.app.display_info(
                "miniwdl-jupyter: editable install without the JupyterLab extension "
                "(build it with `jlpm install && jlpm build`, or set MINIWDL_JUPYTER_BUILD_LABEXTENSION=1)"
            )

    def _build(self, root: Path) -> None:
        jlpm = shutil.which("jlpm") or str(Path(sys.executable).with_name("jlpm"))
        if not shutil.which("node"):
            raise RuntimeError("building the JupyterLab extension needs Node.js (node) on PATH")
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        self.app.display_info("miniwdl-jupyter: building the JupyterLab extension (jlpm install, jlpm build:prod)")
        for args in ([jlpm, "install", "--immutable"], [jlpm, "build:prod"]):
            subprocess.run(args, cwd=root, env=env, check=True)
