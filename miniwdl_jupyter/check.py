"""Lint and typecheck WDL, as `miniwdl check` does, returning a short report."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Optional

import WDL
import WDL.Lint
from WDL.runtime.config import Loader

from . import run_dirs, wdl_source
from .runs import load_config


def check(wdl: str, cfg: Optional[Loader] = None) -> str:
    """Report for WDL text or a path: lint warnings with their line, or 'no problems'.
    Raises WDLSourceError when it does not parse or typecheck."""
    cwd = Path.cwd()
    if wdl_source.is_wdl_text(wdl):
        root = run_dirs.prepare_root(run_dirs.run_root(load_config(cfg), cwd))
        source_path, name, text = str(wdl_source.stage_cell_source(wdl, root)), "cell", wdl
    elif wdl.startswith(("http://", "https://")):
        source_path, name, text = wdl, wdl, None
    else:
        source_path, name, text = str((cwd / wdl).resolve()), wdl, None
    loaded = wdl_source.load(source_path, cwd=cwd, display_name=name, text=text)

    def _lint():
        WDL.Lint.lint(loaded.doc, descend_imports=False)
        return WDL.Lint.collect(loaded.doc)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        findings = pool.submit(_lint).result()
    lines = [
        f"{name}:{pos.line}:{pos.column}: {kind} {message}"
        for pos, kind, message, suppressed in sorted(findings, key=lambda f: (f[0].line, f[0].column))
        if not suppressed
    ]
    summary = f"{loaded.name}: {'no problems' if not lines else f'{len(lines)} lint warning(s)'}"
    return "\n".join([summary, *lines])
