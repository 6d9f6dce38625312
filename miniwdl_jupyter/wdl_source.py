"""Load WDL (cell text, a file or a URL), typecheck it, and bind Python values to its inputs.

Everything here happens in the caller's process before a run starts, so a syntax error, a missing
input or a type mismatch is reported at once, naming the line or the input, and nothing is created.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import WDL
from WDL import Env, Error, Tree, Type, Value

from .errors import InputError, WDLSourceError
from .files import content_addressed

PACKAGE_WDL_DIR = Path(__file__).with_name("wdl")  # WDL libraries shipped with the package
URL_PREFIXES = ("http://", "https://", "s3://", "gs://", "file://")
_HTTP_PREFIXES = ("http://", "https://")
URL_TIMEOUT = 30  # seconds to wait for a WDL file's host to answer


@dataclass
class LoadedWDL:
    doc: Tree.Document
    target: Union[Tree.Workflow, Tree.Task]
    source_path: str  # what `miniwdl run` is given: a local file or a URL
    display_name: str  # how errors name the source ("cell" or the path the user gave)

    @property
    def name(self) -> str:
        return self.target.name


def is_wdl_text(wdl: str) -> bool:
    """Source text rather than a path or URL.

    Text has a newline. On one line, a URL or a file that exists is a path; so is one word, or
    anything ending in `.wdl` (a missing file is then reported as missing); what remains, such as
    `version 1.1 task t { ... }`, is text. A file named `workflow.wdl` or `version.wdl` is a file.
    """
    if "\n" in wdl:
        return True
    if wdl.startswith(URL_PREFIXES) or _exists(wdl):
        return False
    stripped = wdl.strip()
    return "{" in stripped or (any(c.isspace() for c in stripped) and not stripped.endswith(".wdl"))


def _exists(path: str) -> bool:
    try:
        return Path(os.path.expanduser(path)).exists()
    except (OSError, ValueError):  # too long for a file name, a NUL byte...
        return False


def stage_cell_source(text: str, root: Path) -> Path:
    """Keep cell text as a content-addressed file, so `miniwdl run` (and its call cache) see it."""
    return content_addressed(root / ".cells", text, suffix=".wdl")


def search_path(cwd: Path) -> List[str]:
    """Where `import` looks besides the importing file's folder: the notebook's folder, our library."""
    return [str(cwd), str(PACKAGE_WDL_DIR)]


# Parsed documents by (source, search path), kept while none of their files changed: re-running
# a cell is the common case, and parsing + typechecking is most of the magic's own overhead.
_loaded_docs: Dict[tuple, tuple] = {}
_LOADED_DOCS_MAX = 32


def _files_of(doc: Tree.Document) -> Dict[str, float]:
    files, stack = {}, [doc]
    while stack:
        d = stack.pop()
        path = d.pos.abspath
        if path not in files:
            files[path] = _mtime(path)
            stack.extend(imp.doc for imp in d.imports if imp.doc)
    return files


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _parse(source_path: str, cwd: Path) -> Tree.Document:
    key = (source_path, tuple(search_path(cwd)))
    cached = _loaded_docs.get(key)
    if cached and all(_mtime(p) == m for p, m in cached[1].items()):
        return cached[0]

    def _load() -> Tree.Document:
        # WDL.load runs its own asyncio loop: in a kernel (which has a running loop) do it in a
        # worker thread.
        return WDL.load(source_path, search_path(cwd), read_source=_read_source)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        doc = pool.submit(_load).result()
    files = _files_of(doc)
    if any(p.startswith(URL_PREFIXES) for p in files):
        return doc  # a URL's content can change under the same name: never reuse it
    if len(_loaded_docs) >= _LOADED_DOCS_MAX:
        _loaded_docs.pop(next(iter(_loaded_docs)))
    _loaded_docs[key] = (doc, files)
    return doc


async def _read_source(uri: str, path: List[str], importer: Optional[Tree.Document]) -> Tree.ReadSourceResult:
    """What miniwdl's loader reads for the main document and each import: local files (which must be
    UTF-8) and http(s) URLs, where a relative import resolves against the importing document's URL,
    as `miniwdl run` does."""
    if uri.startswith(_HTTP_PREFIXES):
        return Tree.ReadSourceResult(_fetch(uri), uri)
    if importer is not None and importer.pos.abspath.startswith(_HTTP_PREFIXES) and not os.path.isabs(uri) and "://" not in uri:
        return await _read_source(urllib.parse.urljoin(importer.pos.abspath, uri), path, importer)
    abspath = await Tree.resolve_file_import(uri, path, importer)
    with open(abspath, "rb") as file:
        return Tree.ReadSourceResult(_decode(file.read(), abspath), abspath)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exn:
        raise WDLSourceError(f"{name} is not UTF-8 text (byte {exn.start}: {data[exn.start:exn.start + 1]!r}); save it as UTF-8") from None


def _fetch(url: str) -> str:
    """A WDL document over http(s); errors say whether the host answered at all."""
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as response:  # noqa: S310 - the user's own URL
            return _decode(response.read(), url)
    except urllib.error.HTTPError as exn:
        if exn.code in (404, 410):
            raise FileNotFoundError(url) from None
        raise WDLSourceError(f"{host} answered HTTP {exn.code} {exn.reason} for {url}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exn:
        reason = getattr(exn, "reason", exn)
        if isinstance(reason, socket.gaierror):
            why = "its name does not resolve"
        elif isinstance(reason, (socket.timeout, TimeoutError)):
            why = f"no answer within {URL_TIMEOUT} s"
        else:
            why = getattr(reason, "strerror", None) or str(reason)
        raise WDLSourceError(f"{host} did not answer ({why}): could not fetch {url}") from None


def load(source_path: str, *, cwd: Path, display_name: str, task: Optional[str] = None, text: Optional[str] = None) -> LoadedWDL:
    """Parse, resolve imports and typecheck. Raises WDLSourceError with file:line:col and a caret."""
    try:
        doc = _parse(source_path, cwd)
    except (Error.SyntaxError, Error.ValidationError, Error.MultipleValidationErrors, Error.ImportError) as exn:
        raise _source_error(exn, source_path, display_name, text) from None
    except FileNotFoundError:
        raise WDLSourceError(f"WDL file not found: {display_name}") from None
    except IsADirectoryError:
        raise WDLSourceError(f"{display_name} is a directory, not a WDL file") from None
    return LoadedWDL(doc, _target(doc, task, display_name), source_path, display_name)


def workflow_cache_prefixes(doc: Tree.Document) -> List[str]:
    """Call-cache key prefixes of every workflow in the document and its imports (see call_cache)."""
    prefixes, stack, seen = [], [doc], set()
    while stack:
        d = stack.pop()
        if id(d) in seen:
            continue
        seen.add(id(d))
        if d.workflow:
            prefixes.append(f"{d.workflow.name}/{d.workflow.digest}/")
        stack.extend(imp.doc for imp in d.imports if imp.doc)
    return prefixes


def _target(doc: Tree.Document, task: Optional[str], display_name: str) -> Union[Tree.Workflow, Tree.Task]:
    if task:
        found = next((t for t in doc.tasks if t.name == task), None)
        if not found:
            names = ", ".join(t.name for t in doc.tasks) or "none"
            raise InputError(f"no task named {task!r} in {display_name} (tasks: {names})")
        return found
    if doc.workflow:
        return doc.workflow
    if len(doc.tasks) == 1:
        return doc.tasks[0]
    if not doc.tasks:
        raise WDLSourceError(f"{display_name} has no workflow or task to run")
    names = ", ".join(t.name for t in doc.tasks)
    raise InputError(f"{display_name} has no workflow; choose a task with --task NAME (tasks: {names})")


def _source_error(exn: Exception, source_path: str, display_name: str, text: Optional[str]) -> WDLSourceError:
    if isinstance(exn, Error.MultipleValidationErrors):
        first = exn.exceptions[0]
        more = len(exn.exceptions) - 1
        err = _source_error(first, source_path, display_name, text)
        if more:
            err.details.append(f"(and {more} more error{'s' if more > 1 else ''})")
        return err
    pos = getattr(exn, "pos", None)
    message = str(exn).splitlines()[0] if str(exn) else type(exn).__name__
    if isinstance(exn, Error.ImportError):
        message = _import_failure(exn)
    if pos is None:
        return WDLSourceError(message, source=display_name)
    is_main = pos.abspath in (source_path, os.path.abspath(source_path)) or pos.uri == source_path
    name = display_name if is_main else pos.uri
    if text is None or not is_main:
        text = getattr(exn, "source_text", None)  # miniwdl keeps it; it is all a URL's text there is
    lines = text.splitlines() if text is not None else _read_lines(pos.abspath)
    source_line = lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""
    return WDLSourceError(message, source=name, line=pos.line, column=pos.column, source_line=source_line)


def _import_failure(exn: BaseException) -> str:
    """`cannot import b.wdl: cannot import c.wdl: not found`, from miniwdl's chain of causes."""
    if isinstance(exn, Error.ImportError):
        what = str(exn.args[0] if exn.args else "").replace("Failed to import ", "", 1)
        return f"cannot import {what}: {_import_failure(exn.__cause__) if exn.__cause__ else 'failed'}"
    if isinstance(exn, FileNotFoundError):
        return "not found"
    if isinstance(exn, (Error.SyntaxError, Error.ValidationError)) and getattr(exn, "pos", None):
        return f"{exn.pos.uri}:{exn.pos.line}:{exn.pos.column}: {str(exn).splitlines()[0]}"
    return str(exn).splitlines()[0] if str(exn) else type(exn).__name__


def _read_lines(path: str) -> List[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


# --- inputs ----------------------------------------------------------------------------------


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
