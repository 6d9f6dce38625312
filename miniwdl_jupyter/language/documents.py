"""WDL documents as the editor holds them, parsed once per change.

Each request names its document (`key`: the notebook cell or file) and carries its text; the
text is parsed and typechecked only when it differs from the last one seen for that key, so any
number of completion and hover requests between two keystrokes share one parse. While the text
does not parse (the usual state mid-typing), the last tree that did is kept: names, calls and
types move little between keystrokes, and the answers work from the text around the cursor.

Imports resolve as `%%wdl` resolves them (the importing file's folder, then the notebook's folder
and the package's library; http(s) URLs too). Imported documents are cached while their files do
not change; a URL is fetched once per server process.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from WDL import Error, Tree, _parser

from .. import wdl_source

_DOCUMENTS_KEPT = 64  # documents (cells and files) whose last parse is kept
_fetched: Dict[str, str] = {}  # URL -> text: an http(s) import is fetched once
_fetched_lock = threading.Lock()


@dataclass
class Analysis:
    """One version of a document: its text and the newest tree that parsed (maybe an older text's)."""

    text: str
    lines: List[str]
    doc: Optional[Tree.Document]
    version: str  # WDL version (the document's, else 1.0 as miniwdl assumes)
    folder: Path
    imports: Dict[str, Tree.Document] = field(default_factory=dict)  # namespace -> document


def fetch_url(url: str) -> str:
    with _fetched_lock:
        if url in _fetched:
            return _fetched[url]
    text = wdl_source._fetch(url)  # errors already say whether the host answered
    with _fetched_lock:
        _fetched[url] = text
    return text


async def _read_source(uri: str, path: List[str], importer: Optional[Tree.Document]) -> Tree.ReadSourceResult:
    if uri.startswith(("http://", "https://")):
        return Tree.ReadSourceResult(fetch_url(uri), uri)
    return await wdl_source._read_source(uri, path, importer)


class Documents:
    """Parsed documents by key, plus imported documents by where they were found."""

    def __init__(self) -> None:
        self._analyses: "collections.OrderedDict[str, Analysis]" = collections.OrderedDict()
        self._imported: Dict[Tuple[str, Tuple[str, ...], str], Tuple[Tree.Document, Dict[str, int]]] = {}
        self._lock = threading.Lock()
        self.parses = 0  # how many texts were parsed (the benchmark and tests read it)
        self._later: Dict[str, Tuple[str, Path]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wdl-parse")
        self._queued = 0
        self._idle = threading.Event()
        self._idle.set()

    def analyze(self, key: str, text: str, folder: Path, *, wait: bool = True) -> Analysis:
        """The analysis of `text`. With wait=False, a text that changed since the last parse is
        answered at once from that parse (with the new text's lines, which give the context),
        and parsed in the background: typing changes the text at every keystroke, and a
        2,000-line document takes longer to parse than a completion may."""
        digest = hashlib.sha1(f"{folder}\0{text}".encode()).hexdigest()
        with self._lock:
            known = self._analyses.get(key)
            if known is not None and getattr(known, "_digest", None) == digest:
                self._analyses.move_to_end(key)
                return known
        if not wait and known is not None and known.folder == folder:
            self._parse_later(key, text, folder)
            return dataclasses.replace(known, text=text, lines=text.split("\n"))
        analysis = self._parse(key, text, folder, previous=known)
        analysis._digest = digest  # type: ignore[attr-defined]
        with self._lock:
            self._analyses[key] = analysis
            self._analyses.move_to_end(key)
            while len(self._analyses) > _DOCUMENTS_KEPT:
                self._analyses.popitem(last=False)
        return analysis

    def _parse_later(self, key: str, text: str, folder: Path) -> None:
        with self._lock:
            self._later[key] = (text, folder)  # only the newest text of a document is parsed
            self._idle.clear()
            self._queued += 1
        self._pool.submit(self._parse_newest, key)

    def _parse_newest(self, key: str) -> None:
        try:
            with self._lock:
                newest = self._later.pop(key, None)
            if newest is not None:
                self.analyze(key, *newest)
        finally:
            with self._lock:
                self._queued -= 1
                if not self._queued:
                    self._idle.set()

    def wait_idle(self, timeout: float = 60) -> bool:
        """Wait until background parses are done (tests and benchmarks)."""
        return self._idle.wait(timeout)

    def _parse(self, key: str, text: str, folder: Path, previous: Optional[Analysis]) -> Analysis:
        self.parses += 1
        lines = text.split("\n")
        abspath = str(folder / (os.path.basename(key) if key.endswith(".wdl") else "cell.wdl"))
        try:
            doc = _parser.parse_document(text, uri=os.path.basename(abspath), abspath=abspath)
        except Exception as exn:
            doc = _without_bad_line(text, exn, abspath)
            if doc is None:  # keep answering from the last tree that parsed
                old = previous.doc if previous else None
                return Analysis(text, lines, old, _version_of(text, old), folder, dict(previous.imports) if previous else {})
            imports, _ = self._resolve_imports(doc, folder)
            return Analysis(text, lines, doc, doc.effective_wdl_version or "1.0", folder, imports)
        imports, complete = self._resolve_imports(doc, folder)
        if complete:
            try:
                doc.typecheck()
            except (Error.ValidationError, Error.MultipleValidationErrors):
                pass  # what typechecked is typed; the rest keeps its declared types (and `check` says why)
        return Analysis(text, lines, doc, doc.effective_wdl_version or "1.0", folder, imports)

    def _resolve_imports(self, doc: Tree.Document, folder: Path) -> Tuple[Dict[str, Tree.Document], bool]:
        """The imported documents by namespace, and whether every import was found (an import
        that fails is left out: the `check` diagnostics say why)."""
        imports: Dict[str, Tree.Document] = {}
        search = tuple(wdl_source.search_path(folder))
        for i, imp in enumerate(doc.imports):
            try:
                sub = self._imported_doc(imp.uri, search, doc)
            except Exception:
                continue
            doc.imports[i] = Tree.DocImport(pos=imp.pos, uri=imp.uri, namespace=imp.namespace, aliases=imp.aliases, doc=sub)
            imports[imp.namespace] = sub
        return imports, len(imports) == len(doc.imports)

    def _imported_doc(self, uri: str, search: Tuple[str, ...], importer: Tree.Document) -> Tree.Document:
        key = (uri, search, os.path.dirname(importer.pos.abspath))
        cached = self._imported.get(key)
        if cached and all(_mtime(p) == m for p, m in cached[1].items()):
            return cached[0]

        async def load() -> Tree.Document:
            return await Tree._load_async(uri, path=list(search), read_source=_read_source, importer=importer)

        sub = asyncio.run(load())  # handlers and benchmarks call this from a worker thread
        files = {p: m for p, m in ((d.pos.abspath, _mtime(d.pos.abspath)) for d in _all_docs(sub))}
        self._imported[key] = (sub, files)
        return sub


def _without_bad_line(text: str, exn: Exception, abspath: str) -> Optional[Tree.Document]:
    """Mid-typing, the text rarely parses: braces are still open, and the line being typed (where
    the parser stops) is half-written. The text with its open braces closed, else also without
    that line, often parses, and then knows the names typed since the last good parse."""
    line = getattr(getattr(exn, "pos", None), "line", None) or getattr(exn, "line", None)
    lines = text.split("\n")
    candidates = [text]
    if line and 0 < line <= len(lines):
        candidates.append("\n".join(lines[: line - 1] + [""] + lines[line:]))
    for candidate in candidates:
        open_braces = candidate.count("{") - candidate.count("}")
        if candidate is text and open_braces <= 0:
            continue
        try:
            return _parser.parse_document(candidate + "\n}" * max(open_braces, 0), uri=os.path.basename(abspath), abspath=abspath)
        except Exception:
            continue
    return None


def _all_docs(doc: Tree.Document) -> List[Tree.Document]:
    found, stack = [], [doc]
    while stack:
        d = stack.pop()
        if d not in found:
            found.append(d)
            stack.extend(i.doc for i in d.imports if i.doc)
    return found


def _mtime(path: str) -> int:
    if path.startswith(("http://", "https://")):
        return 0  # fetched once: never changes for this process
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _version_of(text: str, old: Optional[Tree.Document]) -> str:
    for line in text.split("\n"):
        words = line.split()
        if words and words[0] == "version" and len(words) > 1:
            return words[1]
        if words and not line.lstrip().startswith("#"):
            break
    return (old.effective_wdl_version if old else None) or "1.0"
