"""Write a run request's `workflow_attachment` files into the run's folder, and nowhere else.

A WES client names each attachment (the multipart part's filename, subfolders allowed). Names are
untrusted: `..`, absolute paths, backslashes, drive letters, NUL bytes, empty segments and two parts
claiming the same path (or a file and a folder of the same name) are refused before anything is
written; each file is created with O_EXCL | O_NOFOLLOW inside folders we create ourselves, and its
resolved path is checked to lie inside the attachments folder, so neither a crafted name nor a
symlink can write outside it.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable, List, Tuple

_CHUNK = 1 << 20
MAX_NAME_BYTES = 1024
MAX_DEPTH = 32


class AttachmentError(ValueError):
    """An attachment name or size that the server refuses (a 400/413 for the client)."""

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


def safe_name(name: str) -> str:
    """The attachment's relative POSIX path, or AttachmentError saying why the name is refused."""
    if not name:
        raise AttachmentError("a workflow_attachment part has no filename")
    if "\x00" in name or len(name.encode()) > MAX_NAME_BYTES:
        raise AttachmentError(f"attachment name {name[:80]!r} is not a usable file name")
    if "\\" in name:
        raise AttachmentError(f"attachment name {name!r} contains a backslash; use '/' between folders")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise AttachmentError(f"attachment name {name!r} is absolute; name it relative to the workflow's folder")
    parts = name.split("/")
    if any(p == ".." for p in parts):
        raise AttachmentError(f"attachment name {name!r} refers to a parent folder ('..'); attachments stay in the run's folder")
    parts = [p for p in parts if p not in ("", ".")]
    if not parts:
        raise AttachmentError(f"attachment name {name!r} names no file")
    if len(parts) > MAX_DEPTH:
        raise AttachmentError(f"attachment name {name!r} is nested more than {MAX_DEPTH} folders deep")
    return "/".join(parts)


def check_names(names: Iterable[str]) -> List[str]:
    """Normalised names; refuses duplicates and a name used both as a file and as a folder."""
    seen: dict = {}
    folders = set()
    result = []
    for raw in names:
        name = safe_name(raw)
        key = name.casefold()  # case-insensitive filesystems would merge these silently
        if key in seen:
            raise AttachmentError(f"two attachments are both named {name!r}")
        seen[key] = name
        result.append(name)
        parents = PurePosixPath(name).parents
        folders.update(str(p).casefold() for p in parents if str(p) != ".")
    for key, name in seen.items():
        if key in folders:
            raise AttachmentError(f"attachment {name!r} is both a file and a folder of other attachments")
    return result


def write_all(base: Path, files: Iterable[Tuple[str, BinaryIO]], *, max_bytes: int) -> List[str]:
    """Write (name, stream) pairs under `base` (created here, must not exist). Returns the names.
    Refuses the whole set when any name is unsafe or the total exceeds max_bytes."""
    files = list(files)
    names = check_names(name for name, _ in files)
    base.mkdir(parents=True)
    root = base.resolve()
    total = 0
    for name, (_, stream) in zip(names, files):
        target = _create_parents(root, name)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise AttachmentError(f"attachments exceed the server's limit of {max_bytes} bytes", status_code=413)
                out.write(chunk)
    return names


def _create_parents(root: Path, name: str) -> Path:
    """Create the folders of `name` one at a time, refusing anything that is not a real folder
    inside root (a symlink planted there, or a file)."""
    current = root
    for part in PurePosixPath(name).parts[:-1]:
        current = current / part
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            pass
        info = os.lstat(current)
        if not stat.S_ISDIR(info.st_mode):
            raise AttachmentError(f"attachment {name!r}: {part!r} is not a folder inside the run's folder")
    target = current / PurePosixPath(name).name
    if not _inside(root, target.parent.resolve()):
        raise AttachmentError(f"attachment {name!r} would be written outside the run's folder")
    return target


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def resolve_relative(base: Path, url: str) -> Path:
    """A relative `workflow_url` (or input path) naming an attachment -> its path under base."""
    name = safe_name(posixpath.normpath(url) if url.startswith("./") else url)
    path = (base / name).resolve()
    if not _inside(base.resolve(), path):
        raise AttachmentError(f"{url!r} points outside the run's attachments")
    return path
