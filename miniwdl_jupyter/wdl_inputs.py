"""Bind Python values (or `name=value` literals, or a JSON/YAML inputs file) to a loaded WDL's
inputs, before a run starts: a missing input or a type mismatch is reported at once, naming it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Union

import WDL
from WDL import Env, Error, Type, Value

from .errors import InputError, WDLSourceError
from .wdl_source import URL_PREFIXES, LoadedWDL


def read_inputs_file(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """A JSON or YAML inputs file (JSON is YAML, so one parser reads both)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"inputs file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"inputs file {path} is a directory; give a JSON or YAML file") from None
    except UnicodeDecodeError as exn:
        raise InputError(f"inputs file {path} is not UTF-8 text (byte {exn.start}); save it as UTF-8 JSON or YAML") from None
    except OSError as exn:
        raise InputError(f"cannot read inputs file {path}: {exn.strerror or exn}") from None
    except yaml.YAMLError as exn:
        raise InputError(f"inputs file {path} is not valid JSON or YAML: {exn}") from None
    return _require_mapping(data, f"inputs file {path}")


def parse_inputs_text(text: str) -> Dict[str, Any]:
    """Inputs given as JSON/YAML text (the cell body of `%%wdl -f FILE`)."""
    import yaml

    if not text.strip():
        return {}
    try:
        return _require_mapping(yaml.safe_load(text), "the cell's inputs")
    except (yaml.YAMLError, InputError) as exn:
        if re.search(r"^\s*(version|workflow|task|import|struct)\b", text, re.MULTILINE):
            raise InputError("with -f FILE the cell body holds inputs (JSON or YAML), but it looks like WDL; "
                             "drop -f to run the cell's WDL") from None
        if isinstance(exn, InputError):
            raise
        raise InputError(f"the cell's inputs are not valid JSON or YAML: {exn}") from None


def inputs_for_file(source: str, cell: str) -> Dict[str, Any]:
    """`%%wdl -f FILE` with inputs in the cell body: a missing FILE is reported before the body."""
    if not source.startswith(URL_PREFIXES):
        path = Path(os.path.expanduser(source))
        if not path.exists():
            raise WDLSourceError(f"WDL file not found: {source}")
        if path.is_dir():
            raise WDLSourceError(f"{source} is a directory, not a WDL file")
    return parse_inputs_text(cell)


def _require_mapping(data: Any, what: str) -> Dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a mapping of input names to values, not {type(data).__name__}")
    return data


def bind_inputs(loaded: LoadedWDL, inputs: Dict[str, Any], *, cwd: Path) -> Dict[str, Any]:
    """Typecheck Python values against the target's inputs; return miniwdl's namespaced input JSON.

    Keys may be plain (`x`), namespaced by the workflow (`hello.x`) or address a call's input
    (`call.input`), as in `miniwdl run`. Relative File/Directory paths resolve against `cwd`.
    """
    target = loaded.target
    available = target.available_inputs
    env: Env.Bindings[Value.Base] = Env.Bindings()
    for key, value in inputs.items():
        name = key[len(target.name) + 1 :] if key.startswith(target.name + ".") else key
        decl = available.get(name)
        if decl is None:
            known = ", ".join(sorted(b.name for b in available if not _internal(b.name))) or "none"
            raise InputError(f"{target.name} has no input {key!r} (inputs: {known})")
        env = env.bind(name, _to_value(name, decl.type, value, cwd), decl)
    missing = target.required_inputs.subtract(env)
    if missing:
        described = ", ".join(f"{b.name} ({b.value.type})" for b in missing)
        raise InputError(f"missing required input{'s' if len(list(missing)) > 1 else ''} for {target.name}: {described}")
    return WDL.values_to_json(env, namespace=target.name)


def _internal(name: str) -> bool:
    """miniwdl's own inputs, not the document's (`_runtime`, `call._runtime`: runtime overrides)."""
    return any(part.startswith("_") for part in name.split("."))


class Literal(str):
    """A value typed on a command line (`name=value`): its meaning depends on the input's type."""


def _from_literal(ty: Type.Base, value: Any) -> Any:
    """Literals -> JSON values by declared type; repeated `name=a name=b` pairs fill an Array."""
    if isinstance(value, list) and isinstance(ty, Type.Array):
        return [_from_literal(ty.item_type, v) for v in value]
    if not isinstance(value, Literal):
        return value
    if isinstance(ty, (Type.String, Type.File, Type.Directory)):
        return str(value)
    if isinstance(ty, Type.Array) and not value.lstrip().startswith("["):
        return [_from_literal(ty.item_type, value)]
    try:
        return json.loads(value)
    except ValueError:
        return str(value)


def _to_value(name: str, ty: Type.Base, value: Any, cwd: Path) -> Value.Base:
    try:
        v = Value.from_json(ty, to_json(_from_literal(ty, value)))
    except Error.InputError as exn:
        raise InputError(
            f"input {name} should be {ty}, but was given {type(value).__name__} {_preview(value)}",
            details=[f"({exn})"],
        ) from None
    except Exception as exn:  # miniwdl raises assorted errors for values it can't coerce
        raise InputError(f"input {name} should be {ty}, but was given {type(value).__name__} {_preview(value)}") from exn

    def resolve(path_value: Union[Value.File, Value.Directory]) -> str:
        path = path_value.value
        if path.startswith(URL_PREFIXES):
            return path
        resolved = (cwd / os.path.expanduser(path)).resolve()
        directory = isinstance(path_value, Value.Directory)
        if not (resolved.is_dir() if directory else resolved.is_file()):
            kind = "directory" if directory else "file"
            raise InputError(f"input {name}: {kind} not found: {path} (relative paths start at {cwd})")
        return str(resolved)

    return Value.rewrite_paths(v, resolve)


def to_json(value: Any) -> Any:
    """Python values -> JSON-able values: Paths become strings, tuples lists."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays, pandas Series
        return value.tolist()
    return value


def _preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dump_inputs(inputs_json: Dict[str, Any]) -> str:
    return json.dumps(inputs_json, indent=2)
