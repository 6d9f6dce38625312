"""A call cache that reuses task results but not whole-workflow results.

miniwdl caches a workflow's outputs too, so re-running an unchanged cell would finish with no calls
at all. In a notebook a person wants to see the workflow's calls, each marked `cached`: this cache
backend (registered as `notebook` in `miniwdl.plugin.cache_backend`) skips the keys of the run's
workflows, which `runs.py` names in `[call_cache] skip_key_prefixes`.
"""

from __future__ import annotations

from typing import Optional

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
