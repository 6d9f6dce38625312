"""Stop what a run left running after its miniwdl process died (SIGKILL, OOM killer, a crashed
node), and sweep what runs killed earlier left.

Cleaning up is the runs layer's job (docs/design.md): each backend's companion says how to find
and stop its own leftovers (containers by label, task processes by working directory, scheduler
jobs by name), so nothing here names a backend.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import List

from WDL.runtime.config import Loader

from . import launch_record
from .companions import Companion, all_companions, get_companion

_logger = logging.getLogger("miniwdl_jupyter.leftovers")


def stop_leftovers(run_dir: Path, cfg: Loader) -> int:
    """Stop every task `run_dir`'s run left running. Call it only once its miniwdl process is gone
    (or has been told to stop). Returns how many were stopped."""
    record = launch_record.read(run_dir) or {}
    backend = record.get("backend")
    # A run started outside miniwdl-jupyter (`miniwdl run`) does not say its backend: ask those
    # whose tasks run on this machine (a scheduler's jobs are found through the record).
    companions: List[Companion] = [get_companion(backend)] if backend else [c for c in all_companions() if not c.runs_elsewhere]
    return sum(companion.stop_leftovers(run_dir, record, cfg) for companion in companions)


def sweep_in_background(backend: str, cfg: Loader) -> None:
    """Let `backend`'s companion remove what runs killed earlier left, off the new run's critical path."""
    threading.Thread(target=_sweep, args=(get_companion(backend), cfg), daemon=True).start()


def _sweep(companion: Companion, cfg: Loader) -> None:
    """A convenience: it must never disturb the run that started it."""
    try:
        companion.sweep(cfg)
    except Exception:  # noqa: BLE001 - e.g. the daemon went away meanwhile
        _logger.debug("sweeping leftovers of killed runs failed", exc_info=True)
