"""A call cache that reuses task results but not whole-workflow results.

miniwdl caches a workflow's outputs too, so re-running an unchanged cell would finish with no calls
at all. In a notebook a person wants to see the workflow's calls, each marked `cached`: this cache
backend (registered as `notebook` in `miniwdl.plugin.cache_backend`) skips the keys of the run's
workflows, which `runs.py` names in `[call_cache] skip_key_prefixes`. `cache_origin` finds the call a
cache hit came from, whose logs readers (the WES server) show for it.
"""

from __future__ import annotations

import functools
import glob
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from WDL import Env, Type, Value
from WDL.runtime.cache import CallCache

from . import config


class NotebookCallCache(CallCache):
    def get(
        self, key: str, inputs: Env.Bindings[Value.Base], output_types: Env.Bindings[Type.Base]
    ) -> Optional[Env.Bindings[Value.Base]]:
        skip = config.option(self._cfg, "call_cache", "skip_key_prefixes", "list")
        if any(key.startswith(prefix) for prefix in skip):
            return None
        return super().get(key, inputs, output_types)


def cache_origin(call_dir: Path, cache_dir: str) -> Optional[Path]:
    """The directory of the call whose results a call-cache hit reused (its logs, exit status and
    stdout are there, not in the cached call's own directory), or None when no entry in
    `cache_dir` matches any more. miniwdl logs nothing that names the entry; but an entry lives
    under `<cache_dir>/<task name>/<digest>/`, holds the inputs and outputs of the call it came
    from and that call's directory, and the cached call wrote those same inputs and outputs."""
    try:
        with open(call_dir / "task.log.json") as log:
            task = json.loads(log.readline()).get("name")  # "task setup" {name: the task's name}
        inputs = json.loads((call_dir / "inputs.json").read_text())
        outputs = json.loads((call_dir / "outputs.json").read_text())
    except (OSError, ValueError, AttributeError):
        return None
    if not task:
        return None
    outputs = {key[len(task) + 1 :] if key.startswith(task + ".") else key: value for key, value in outputs.items()}
    best: Optional[Tuple[int, str]] = None
    for entry in glob.glob(os.path.join(glob.escape(os.path.join(cache_dir, task)), "*", "*.json")):
        try:
            mtime = os.stat(entry).st_mtime_ns
        except OSError:
            continue
        envelope = _read_entry(entry, mtime)
        if envelope.get("inputs") == inputs and envelope.get("outputs") == outputs and envelope.get("dir"):
            if best is None or mtime > best[0]:
                best = (mtime, envelope["dir"])
    if best is None or Path(best[1]) == call_dir or not os.path.isdir(best[1]):
        return None
    return Path(best[1])


@functools.lru_cache(maxsize=4096)
def _read_entry(path: str, mtime_ns: int) -> Dict[str, Any]:
    """A cache entry's JSON, read once per version of the file."""
    try:
        with open(path) as infile:
            envelope = json.load(infile)
        return envelope if isinstance(envelope, dict) else {}
    except (OSError, ValueError):
        return {}
