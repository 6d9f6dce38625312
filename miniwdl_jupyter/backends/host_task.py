"""Host execution of a task's command: a node runtime that backends compose.

The local backend runs commands this way on this machine, and slurm's `none` runtime on a node;
what a container would give, and how this stands in for it:
- inputs: each File input is a hard link where miniwdl says the command will find it (a copy when
  the input is on another filesystem or may not be linked), and each Directory input a real
  directory tree of such links: `find -type f`, `stat` and `ls -l` see real files with their own
  modes, and removing or renaming them does not touch the user's originals;
- environment: `[task_runtime] env` and miniwdl's pass-through variables over a minimal base
  (BASE_ENVIRONMENT), not the caller's whole environment;
- memory: miniwdl's memory_limit as RLIMIT_DATA (`ulimit -d`) on the command's processes.

The functions take miniwdl's TaskContainer of the attempt (a SubprocessBase: its
`_bind_input_files` says whether miniwdl already copied the inputs).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from typing import Dict, List, Optional, Tuple

from WDL._util import StructuredLogMessage as _
from WDL.runtime.task_container import TaskContainer

from .. import config as jupyter_config

# The process environment every task command starts from (besides the task's own env): what a
# shell needs to find programs and speak UTF-8, taken from the caller's environment (the local
# backend's Popen, slurm's job script on the node).
BASE_ENVIRONMENT = ("PATH", "HOME", "LANG")
# A link to a file in an input is the original: (mtime, size) to notice a command writing into it.
Fingerprint = Tuple[int, int]


def invocation(container: TaskContainer, command_file: str) -> List[str]:
    """`command_shell command_file`, under `ulimit -d` when miniwdl set a memory_limit: the
    limit is set in the process that then becomes the shell, so every process of the command
    inherits it (setting it from Python after the start would race the command)."""
    shell = jupyter_config.option(container.cfg, "task_runtime", "command_shell")
    memory_limit = container.runtime_values.get("memory_limit", 0)
    if memory_limit <= 0:
        return [shell, command_file]
    kib = max(1, memory_limit // 1024)
    return ["/bin/sh", "-c", 'ulimit -d "$1" && exec "$2" "$3"', "sh", str(kib), shell, command_file]


def place_inputs(container: TaskContainer) -> Dict[str, Fingerprint]:
    """Put each input where the command will look for it. The command names "container" paths,
    which here are host paths under the first attempt's work/ (miniwdl maps them
    once per task), while a retry works in work2/...: so an input goes both there and under
    the current attempt's directory, and is put back if [file_io] delete_work removed it.
    Files are hard links (copies across filesystems, or where linking is not allowed);
    directories are real directories of such links. With copy_input_files, all are copies.
    Returns {original: fingerprint} of the files that were linked."""
    copy = not container._bind_input_files  # miniwdl's copy_input_files already ran this attempt
    linked: Dict[str, Fingerprint] = {}

    def link_or_copy(source: str, target: str) -> str:
        if not copy:
            try:
                # the file itself: os.link does not follow a symlink on Linux (and miniwdl's
                # outputs, passed on as inputs, are relative symlinks)
                os.link(os.path.realpath(source), target)
                linked[source] = _fingerprint(source)
                return target
            except OSError as exn:
                # another filesystem; fs.protected_hardlinks (a file you don't own); too many links
                if exn.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                    raise
        return shutil.copy2(source, target)

    for host_path, container_path in container.input_path_map.items():
        source = host_path.rstrip("/")
        for target in {container.host_work_path(container_path.rstrip("/")), container_path.rstrip("/")}:
            if os.path.lexists(target):
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.isdir(source):
                # symlinks inside stay symlinks, as a bind mount would show them
                shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)
            else:
                link_or_copy(source, target)
    return linked


def warn_of_changed_inputs(logger: logging.Logger, linked: Dict[str, Fingerprint]) -> None:
    """A container mounts inputs read-only; a hard link cannot be: say so when a command wrote
    into one (the user's original file changed with it)."""
    changed = sorted(original for original, before in linked.items() if _fingerprint(original) != before)
    if changed:
        logger.warning(
            _(
                "the command wrote into input files, which the local backend links to the originals: "
                "those changed too. Give such tasks copies with [file_io] copy_input_files_for",
                files=changed[:10],
                count=len(changed),
            )
        )


def task_env(container: TaskContainer) -> Dict[str, str]:
    """The runtime's env ([task_runtime] env, pass-through variables, WDL 1.2 env inputs), with
    TMPDIR (set by [file_io] mount_tmpdir to a path in the first attempt's work/) moved to the
    current attempt's work dir, where miniwdl created it."""
    env = dict(container.runtime_values.get("env", {}))
    first_work_dir = os.path.join(container.container_dir, "work")
    tmpdir = env.get("TMPDIR")
    if tmpdir and os.path.commonpath([tmpdir, first_work_dir]) == first_work_dir:
        env["TMPDIR"] = container.host_work_path(tmpdir)
    return env


def _fingerprint(path: str) -> Optional[Fingerprint]:
    """(mtime, size) of a file; None if it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)
