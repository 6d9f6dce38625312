"""Load WDL (cell text, a file or a URL) and typecheck it (its inputs: wdl_inputs.py).

Everything here happens in the caller's process before a run starts, so a syntax error, a missing
input or a type mismatch is reported at once, naming the line or the input, and nothing is created.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import WDL
from WDL import Error, Tree

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
