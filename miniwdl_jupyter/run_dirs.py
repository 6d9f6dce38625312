"""Where runs live: the run root, new run directories (miniwdl's `--dir` convention), and telling a
run directory from any other folder."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Optional, Union

from WDL.runtime.config import Loader

from . import config, launch_record
from .errors import InputError

PathArg = Union[None, str, os.PathLike]


def run_root(cfg: Loader, cwd: Optional[Path] = None) -> Path:
    """`[jupyter] root`, relative to the working directory."""
    return ((cwd or Path.cwd()) / os.path.expanduser(config.option(cfg, "jupyter", "root"))).resolve()


def prepare_root(root: Path) -> Path:
    """The run root, created if missing; a short error if it cannot be a directory."""
    _make_dir(root, "run root")
    return root


def new_run_dir(root: Path, name: str, requested: PathArg = None, cwd: Optional[Path] = None) -> Path:
    """A new, empty run directory, as `miniwdl run --dir` makes them: `DIR` (default: the run root)
    gets a new `<YYYYmmdd_HHMMSS>_<name>` folder and a `_LAST` link to it; `DIR/.` is used exactly,
    and must be new or empty."""
    if requested is not None:
        text = os.fspath(requested)
        path = ((cwd or Path.cwd()) / os.path.expanduser(text)).resolve()
        if text.rstrip("/").endswith("/.") or text in (".", "./"):
            return _exact_dir(path)
        _make_dir(path, "--dir folder")
        root = path
    else:
        _make_dir(root, "run root")
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    for n in range(1, 1000):
        run_dir = root / (f"{stamp}_{name}" if n == 1 else f"{stamp}_{name}_{n}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        _point_last_at(root, run_dir)
        return run_dir
    raise InputError(f"could not create a new run directory under {root}")


def _exact_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise InputError(f"--dir {path}/. names a file; give a directory")
    if path.is_dir() and any(path.iterdir()):
        raise InputError(
            f"run directory {path} already exists and is not empty; give `--dir {path.parent}` for a "
            "new timestamped run directory under it, or a new DIR/."
        )
    _make_dir(path, "run directory")
    return path


def _make_dir(path: Path, what: str) -> None:
    if path.exists() and not path.is_dir():
        raise InputError(f"the {what} {path} is a file; set [jupyter] root or --dir to a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exn:
        raise InputError(f"cannot create the {what} {path}: {exn.strerror}; choose another with --dir or [jupyter] root") from None


def _point_last_at(root: Path, run_dir: Path) -> None:
    try:
        tmp = root / f".{run_dir.name}.last"
        os.symlink(run_dir.name, tmp)
        os.replace(tmp, root / "_LAST")
    except OSError:
        pass  # _LAST is a convenience; a filesystem without symlinks still runs


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (
        launch_record.path(path).exists() or (path / "workflow.log").exists() or (path / "task.log").exists()
    )


def remove_unstarted(run_dir: Path) -> None:
    """Remove a run directory that never got a miniwdl process (only our own files are in it)."""
    if not log_files(run_dir)[0].exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def log_files(run_dir: Path) -> tuple[Path, Path]:
    """(the flock'd plain log, the JSON log) of a workflow run or a single-task (--task) run."""
    for stem in ("workflow", "task"):
        plain = run_dir / f"{stem}.log"
        if plain.exists():
            return plain, run_dir / f"{stem}.log.json"
    return run_dir / "workflow.log", run_dir / "workflow.log.json"


def is_locked(path: Path) -> bool:
    """True while a miniwdl process holds its exclusive lock on the log (i.e. it is running)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exn:
        if exn.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # closing drops our shared lock, if we got it
    return False
