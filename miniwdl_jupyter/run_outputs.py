"""A finished run's outputs.json as Python values: Files and Directories as pathlib.Path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

import WDL

from . import launch_record, wdl_source


def read(outputs_json: Dict[str, Any], run_dir: Path) -> Dict[str, Any]:
    """Outputs keyed by declared name, typed by the WDL's output declarations when it can be read
    here, else told apart by where their paths point."""
    typed = _typed_outputs(outputs_json, run_dir)
    if typed is not None:
        return typed
    return {_strip_namespace(k): _python_value(v, run_dir) for k, v in outputs_json.items()}


def _strip_namespace(key: str) -> str:
    return key.split(".", 1)[1] if "." in key else key


def _typed_outputs(outputs_json: Dict[str, Any], run_dir: Path) -> Optional[Dict[str, Any]]:
    """outputs.json read with the WDL's declared output types: Files and Directories become Paths
    wherever they point (a cached call's outputs point into the run that made them). None when the
    WDL cannot be read here (a URL, a moved file): the caller falls back to `_python_value`."""
    record = launch_record.read(run_dir) or {}
    source_path = record.get("source_path")
    if not isinstance(source_path, str) or source_path.startswith(wdl_source.URL_PREFIXES) or not os.path.isfile(source_path):
        return None
    try:
        loaded = wdl_source.load(
            source_path, cwd=Path(record.get("cwd") or run_dir), display_name=str(record.get("source")), task=record.get("task")
        )
        values = WDL.values_from_json(outputs_json, loaded.target.effective_outputs, namespace=loaded.target.name)
    except Exception:  # noqa: BLE001 - an unreadable WDL only costs the types
        return None
    return {binding.name: _from_wdl_value(binding.value) for binding in values}


def _from_wdl_value(value: "WDL.Value.Base") -> Any:
    if isinstance(value, (WDL.Value.File, WDL.Value.Directory)):
        # a run on a WES server gives its files back as URLs: those stay strings
        return value.value if "://" in value.value else Path(value.value)
    if isinstance(value, WDL.Value.Array):
        return [_from_wdl_value(v) for v in value.value]
    if isinstance(value, WDL.Value.Pair):
        return (_from_wdl_value(value.value[0]), _from_wdl_value(value.value[1]))
    if isinstance(value, WDL.Value.Map):
        return {_from_wdl_value(k): _from_wdl_value(v) for k, v in value.value}
    if isinstance(value, WDL.Value.Struct):
        return {k: _from_wdl_value(v) for k, v in value.value.items()}
    if isinstance(value, WDL.Value.Null):
        return None
    return value.value


def _python_value(value: Any, run_dir: Path) -> Any:
    # outputs.json does not carry types; miniwdl writes File/Directory outputs as absolute paths
    # inside the run directory (its out/ links), which is what tells them apart from Strings.
    if isinstance(value, str) and value.startswith(str(run_dir) + os.sep):
        return Path(value)
    if isinstance(value, list):
        return [_python_value(v, run_dir) for v in value]
    if isinstance(value, dict):
        if set(value) == {"left", "right"}:
            return (_python_value(value["left"], run_dir), _python_value(value["right"], run_dir))
        return {k: _python_value(v, run_dir) for k, v in value.items()}
    return value
