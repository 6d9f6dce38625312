"""A POST /runs request, checked and turned into what `runs.run` is given.

The form's fields (WES RunRequest), the workflow_url (an http(s) URL or an attachment's name), the
allow-listed workflow_engine_parameters (with this server's defaults, for service-info) and the
inputs that name attachments. Every refusal is a WESError naming the field and what is accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from WDL.runtime.config import Loader

from .. import config
from . import attachments


class WESError(Exception):
    """An error the API returns as a WES ErrorResponse {msg, status_code}."""

    def __init__(self, status_code: int, msg: str):
        super().__init__(msg)
        self.status_code = status_code
        self.msg = msg


@dataclass
class EngineParameter:
    name: str
    type: str  # "string" | "boolean" | "integer" | "json"
    default: str
    section: Optional[str] = None  # the miniwdl cfg option it sets, if any
    key: Optional[str] = None
    description: str = ""


def parse(fields: Dict[str, str], files: List[Tuple[str, Any]], max_attachments: int) -> Dict[str, Any]:
    """The RunRequest in a POST /runs form, checked: a 400 (413) WESError names what is wrong."""
    if len(files) > max_attachments:
        raise WESError(413, f"{len(files)} attachments exceed the server's limit of {max_attachments}")
    wtype = fields.get("workflow_type", "")
    if wtype.upper() != "WDL":
        raise WESError(400, f"workflow_type must be 'WDL' (this server runs WDL with miniwdl), not {wtype!r}")
    version = fields.get("workflow_type_version", "")
    if version not in wdl_versions():
        raise WESError(400, f"workflow_type_version {version!r} is not supported; use one of {', '.join(wdl_versions())}")
    engine = fields.get("workflow_engine")
    if engine and engine.lower() != "miniwdl":
        raise WESError(400, f"workflow_engine {engine!r} is not available here; this server runs miniwdl")
    engine_version = fields.get("workflow_engine_version")
    if engine_version and engine_version not in (miniwdl_version(), "v" + miniwdl_version()):
        raise WESError(400, f"workflow_engine_version {engine_version!r} is not available; this server runs miniwdl {miniwdl_version()}")
    if not fields.get("workflow_url"):
        raise WESError(400, "workflow_url is required: an http(s) URL or the name of one of the workflow_attachment files")
    request: Dict[str, Any] = {"workflow_type": "WDL", "workflow_type_version": version, "workflow_url": fields["workflow_url"]}
    for name, expect in (("workflow_params", dict), ("tags", dict), ("workflow_engine_parameters", dict)):
        text = fields.get(name)
        value = json_field(name, text) if text not in (None, "") else {}
        if not isinstance(value, expect):
            raise WESError(400, f"{name} must be a JSON object, not {type(value).__name__}")
        request[name] = value
    request["tags"] = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in request["tags"].items()}
    request["workflow_engine_parameters"] = {
        str(k): v if isinstance(v, str) else json.dumps(v) for k, v in request["workflow_engine_parameters"].items()
    }
    for name in ("workflow_engine", "workflow_engine_version"):
        if fields.get(name):
            request[name] = fields[name]
    return request


def workflow_source(base: Path, url: str, attached: List[str]) -> str:
    """What runs.run is given for workflow_url: an http(s) URL, or the attachment it names."""
    if url.startswith(("http://", "https://")):
        return url
    if "://" in url or url.startswith("/"):
        raise WESError(400, f"workflow_url {url!r}: give an http(s) URL or the name of one of the workflow_attachment files (local paths on the server are not accepted)")
    path = attachments.resolve_relative(base, url)
    if not path.is_file():
        names = ", ".join(attached) or "none"
        raise WESError(400, f"workflow_url {url!r} names no attached file (attachments: {names})")
    return str(path)


def engine_settings(parameters: List[EngineParameter], given: Dict[str, str], backends: List[str], default_backend: str) -> Dict[str, Any]:
    """workflow_engine_parameters (allow-listed) -> runs.run's backend, cache and cfg overrides."""
    allowed = {p.name: p for p in parameters}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise WESError(400, f"workflow_engine_parameters {', '.join(unknown)} not allowed; allowed: {', '.join(allowed)}")
    settings: Dict[str, Any] = {"backend": default_backend, "cache": None, "cfg": {}}
    for name, text in given.items():
        param = allowed[name]
        value = parse_param(param, text)
        if name == "backend":
            if value not in backends:
                raise WESError(400, f"backend {value!r} is not offered by this server; choose one of {', '.join(backends)}")
            settings["backend"] = value
        elif name == "cache":
            settings["cache"] = value
        else:
            settings["cfg"].setdefault(param.section, {})[param.key] = value
            if name == "delete_work" and value != "false":
                # miniwdl ignores delete_work unless outputs are hard links (not links into work/)
                settings["cfg"]["file_io"]["output_hardlinks"] = True
    return settings


def engine_parameters(default_backend: str, cache_default: bool, cfg: Loader) -> List[EngineParameter]:
    """The allow list, with the defaults this server's configuration actually has."""

    def current(section: str, key: str) -> str:
        return config.option(cfg, section, key)

    return [
        EngineParameter("backend", "string", default_backend, description="container backend for the run's tasks"),
        EngineParameter("cache", "boolean", json.dumps(cache_default), description="reuse finished tasks from the call cache"),
        EngineParameter("task_concurrency", "integer", current("scheduler", "task_concurrency"), "scheduler", "task_concurrency", "tasks run at once (0: one per CPU)"),
        EngineParameter("fail_fast", "boolean", current("scheduler", "fail_fast"), "scheduler", "fail_fast", "stop the run when a task fails"),
        EngineParameter("task_runtime_defaults", "json", compact_json(current("task_runtime", "defaults")), "task_runtime", "defaults", "runtime defaults for every task (JSON object)"),
        EngineParameter("delete_work", "string", current("file_io", "delete_work"), "file_io", "delete_work", "false | success | failure | always"),
    ]


def compact_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text))
    except ValueError:
        return text


def parse_param(param: EngineParameter, text: str) -> Any:
    try:
        if param.type == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if param.type == "integer":
            return int(text)
        if param.type == "json":
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError
            return value
        if param.name == "delete_work" and text not in ("false", "success", "failure", "always"):
            raise ValueError
        return text
    except ValueError:
        raise WESError(400, f"workflow_engine_parameters {param.name}={text!r} is not a valid {param.type}") from None


def json_field(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exn:
        raise WESError(400, f"{name} is not valid JSON: {exn}") from None


def attachment_paths(value: Any, base: Path, attached: set) -> Any:
    """Input values naming an attachment (relative, as WES says) -> its path on this server."""
    if isinstance(value, str):
        name = value[2:] if value.startswith("./") else value
        if name in attached or any(a.startswith(name + "/") for a in attached):  # a file or a folder of them
            return str(base / name)
        return value
    if isinstance(value, list):
        return [attachment_paths(v, base, attached) for v in value]
    if isinstance(value, dict):
        return {k: attachment_paths(v, base, attached) for k, v in value.items()}
    return value


def wdl_versions() -> List[str]:
    from WDL import _grammar

    return list(_grammar.versions.keys())


def miniwdl_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("miniwdl")
