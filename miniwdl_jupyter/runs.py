"""The runs API: run() starts a WDL run as its own miniwdl process; attach() and list_runs() find runs.

A run is a directory, not kernel state (DESIGN.md): a `Run` handle is a thin view over its run
directory, so a handle made by `attach()` in a new process is as good as the one `run()` returned.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from WDL.runtime.config import Loader

from . import backends, config, launch_record, wdl_source
from .errors import BackendError, Cancelled, InputError, RunFailed, RunNotFound, TaskFailed
from .launchers import local as local_launcher
from .monitor import CANCELLED, FAILED, SUCCEEDED, CallState, RunMonitor, RunState, log_files

_logger = logging.getLogger("miniwdl_jupyter.runs")
STDERR_TAIL_LINES = 20
# How often wait() polls the run directory: fast at first (short runs end quickly), then 10 times
# a second; a poll is a flock attempt and a read of what was appended. Views throttle their own
# redraws.
_POLL_MIN, _POLL_MAX = 0.05, 0.1

CfgArg = Union[None, str, os.PathLike, Dict[str, Dict[str, Any]], Loader]


class Run:
    """Handle on one run directory. Cheap to create; every property reads the directory."""

    def __init__(self, run_dir: Union[str, os.PathLike], *, process: Optional[subprocess.Popen] = None):
        self.run_dir = Path(run_dir).absolute()
        self._monitor = RunMonitor(self.run_dir)
        self._process = process  # set when this process launched the run: reaps it when it ends
        self._lock = threading.Lock()  # the widget's updater thread and the cell may both poll

    def __repr__(self) -> str:
        return f"<Run {self.name} {self.poll().status} {self.run_dir}>"

    # -- state -------------------------------------------------------------------------------
    def poll(self) -> RunState:
        with self._lock:
            if self._process is not None and self._process.poll() is not None:
                self._process = None  # reaped: no zombie left to look alive
            return self._monitor.poll()

    @property
    def state(self) -> RunState:
        """The latest polled state (poll() to refresh)."""
        return self._monitor.state

    @property
    def name(self) -> str:
        return self.state.name or self.run_dir.name

    @property
    def backend(self) -> Optional[str]:
        return self.state.backend

    @property
    def status(self) -> str:
        return self.poll().status

    @property
    def done(self) -> bool:
        return self.poll().done

    @property
    def calls(self) -> List[CallState]:
        return list(self.poll().calls.values())

    @property
    def outputs(self) -> Dict[str, Any]:
        """Outputs keyed by declared name; Files and Directories as pathlib.Path."""
        state = self.poll()
        if state.status != SUCCEEDED or state.outputs is None:
            return {}
        return {_strip_namespace(key): _python_value(value, self.run_dir) for key, value in state.outputs.items()}

    @property
    def error(self) -> Optional[RunFailed]:
        """The run's failure as an exception (TaskFailed, BackendError, Cancelled...), or None."""
        state = self.poll()
        if state.status not in (FAILED, CANCELLED):
            return None
        return error_from_json(state.error or {}, self.run_dir, cancelled=state.status == CANCELLED)

    # -- control -------------------------------------------------------------------------------
    def wait(
        self,
        timeout: Optional[float] = None,
        *,
        on_poll: Optional[Callable[[RunState], None]] = None,
        raise_on_failure: bool = True,
    ) -> "Run":
        """Block until the run ends; raise its error if it failed. Ctrl-C / kernel interrupt cancels it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = _POLL_MIN
        try:
            while True:
                state = self.poll()
                if on_poll is not None:
                    on_poll(state)
                if state.done:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"run {self.name} still {state.status} after {timeout} s")
                time.sleep(interval)
                interval = min(interval * 1.5, _POLL_MAX)
        except KeyboardInterrupt:
            self.cancel()
            if on_poll is not None:
                on_poll(self.poll())
            raise Cancelled(f"run {self.name} cancelled (interrupted)", run_dir=self.run_dir) from None
        if raise_on_failure and self.error is not None:
            raise self.error
        return self

    def cancel(self, *, timeout: float = 30.0) -> None:
        """Stop the run: miniwdl gets SIGTERM, stops its containers and writes error.json."""
        record = launch_record.read(self.run_dir)
        if self.poll().done:
            return
        launch_record.request_cancel(self.run_dir)
        if record and record.get("launcher", "local") == "local":
            local_launcher.cancel(record)
        deadline = time.monotonic() + timeout
        while not self.poll().done and time.monotonic() < deadline:
            time.sleep(0.1)
        backends.cleanup_orphans(self.run_dir)

    def log(self, call: Optional[str] = None, tail: Optional[int] = 50) -> str:
        """The last `tail` lines of the run's log, or of one call's (by id or name) task log."""
        if call is None:
            path = log_files(self.run_dir)[0]
        else:
            found = self.find_call(call)
            path = (found.dir or self.run_dir / found.id) / "task.log"
        return _tail_text(path, tail)

    def find_call(self, call: str) -> CallState:
        calls = self.poll().calls
        if call in calls:
            return calls[call]
        matches = [c for c in calls.values() if c.name == call or c.id.endswith("/" + call) or c.id == f"call-{call}"]
        if len(matches) == 1:
            return matches[0]
        names = ", ".join(sorted(calls)) or "none yet"
        if not matches:
            raise RunNotFound(f"run {self.name} has no call {call!r} (calls: {names})")
        raise RunNotFound(f"{call!r} names {len(matches)} calls of run {self.name}; use one of: " + ", ".join(c.id for c in matches))

    def show(self) -> None:
        """Render the outputs in a notebook (the display layer registers the renderer on import)."""
        if _show_hook is None:
            raise RuntimeError("showing outputs needs the notebook layer: %load_ext miniwdl_jupyter")
        _show_hook(self)


_show_hook: Optional[Callable[[Run], None]] = None


def set_show_hook(hook: Callable[[Run], None]) -> None:
    """The notebook layer registers its output renderer here (the core never imports it)."""
    global _show_hook
    _show_hook = hook


# -- starting runs --------------------------------------------------------------------------------


def run(
    wdl: Union[str, os.PathLike],
    inputs: Optional[Dict[str, Any]] = None,
    *,
    backend: Optional[str] = None,
    dir: Union[None, str, os.PathLike] = None,
    cache: Optional[bool] = None,
    wait: bool = True,
    task: Optional[str] = None,
    cfg: CfgArg = None,
) -> Run:
    """Run a WDL workflow (or one task) as its own miniwdl process.

    `wdl` is WDL source text, a path, or a URL. Inputs are Python values keyed by input name
    (namespaced keys work as in `miniwdl run`). Everything is checked before anything starts.
    `cache=None` follows `[jupyter] cache` (on by default): re-running reuses every finished task.
    """
    loader = _config(cfg)
    if cache is None:
        cache = loader["jupyter"].get_bool("cache")
    cwd = Path.cwd()
    root = run_root(loader)
    source = os.fspath(wdl)
    text: Optional[str] = None
    if wdl_source.is_wdl_text(source):
        text = source
        source_path, display_name = str(wdl_source.stage_cell_source(text, root)), "cell"
    elif source.startswith(("http://", "https://", "s3://", "gs://")):
        source_path, display_name = source, source
    else:
        source_path, display_name = str((cwd / source).resolve()), source
    loaded = wdl_source.load(source_path, cwd=cwd, display_name=display_name, task=task, text=text)
    inputs_json = wdl_source.bind_inputs(loaded, inputs or {}, cwd=cwd)
    backend_name = backends.resolve_backend(backend or loader["jupyter"].get("backend"), loader)
    run_dir = _new_run_dir(root, loaded.name, dir, cwd)
    try:
        proc = _launch(loaded, inputs_json, run_dir, backend_name, cache, task, loader, cwd, cfg)
    except BaseException:
        _remove_unstarted(run_dir)  # nothing half-written is left behind
        raise
    handle = Run(run_dir, process=proc)
    _logger.info("started %s on %s in %s", loaded.name, backend_name, run_dir)
    if wait:
        handle.wait()
    return handle


def _launch(loaded, inputs_json, run_dir: Path, backend_name: str, cache: bool, task, loader: Loader, cwd: Path, cfg: CfgArg) -> subprocess.Popen:
    meta = launch_record.meta_dir(run_dir)
    meta.mkdir(parents=True, exist_ok=True)
    inputs_file = meta / "inputs.json"
    inputs_file.write_text(wdl_source.dump_inputs(inputs_json))
    command = [sys.executable, "-m", "WDL", "run", loaded.source_path, "-i", str(inputs_file)]
    command += ["--dir", f"{run_dir}/.", "--log-json", "--verbose", "--error-json"]
    for path in wdl_source.search_path(cwd):
        command += ["--path", path]
    if task:
        command += ["--task", task]
    if loader.cfg_filename:
        command += ["--cfg", loader.cfg_filename]
    env = dict(os.environ)
    env.update(_env_overrides(cfg))
    env["MINIWDL__SCHEDULER__CONTAINER_BACKEND"] = backend_name
    env["MINIWDL__CALL_CACHE__GET"] = env["MINIWDL__CALL_CACHE__PUT"] = "true" if cache else "false"
    if cache:
        env["MINIWDL__CALL_CACHE__BACKEND"] = "notebook"
        env["MINIWDL__CALL_CACHE__SKIP_KEY_PREFIXES"] = json.dumps(wdl_source.workflow_cache_prefixes(loaded.doc))
    launch_record.write(
        run_dir,
        {
            "name": loaded.name,
            "source": loaded.display_name,
            "source_path": loaded.source_path,
            "backend": backend_name,
            "cache": cache,
            "task": task,
            "cwd": str(cwd),
            "start_time": time.time(),
            "host": socket.gethostname(),
            "command": command,
        },
    )
    proc = local_launcher.launch(command, run_dir=run_dir, env=env, cwd=cwd)
    if backend_name == "docker_run":
        # Containers left by runs whose process was killed hard; off the critical path.
        threading.Thread(target=backends.cleanup_orphans, daemon=True).start()
    return proc


def _config(cfg: CfgArg) -> Loader:
    if isinstance(cfg, Loader):
        return cfg
    if isinstance(cfg, dict):
        return config.load(overrides=cfg)
    return config.load(cfg)


def _env_overrides(cfg: CfgArg) -> Dict[str, str]:
    """Overrides given as a dict reach the miniwdl process as MINIWDL__SECTION__KEY variables."""
    if not isinstance(cfg, dict):
        return {}
    env = {}
    for section, options in cfg.items():
        for key, value in (options or {}).items():
            text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)
            env[f"MINIWDL__{section.upper()}__{key.upper()}"] = text
    return env


def run_root(loader: Optional[Loader] = None) -> Path:
    loader = loader or config.load()
    return (Path.cwd() / os.path.expanduser(loader["jupyter"].get("root"))).resolve()


def _new_run_dir(root: Path, name: str, requested: Union[None, str, os.PathLike], cwd: Path) -> Path:
    if requested is not None:
        run_dir = (cwd / os.path.expanduser(os.fspath(requested))).resolve()
        if run_dir.exists() and any(run_dir.iterdir()):
            raise InputError(f"run directory {run_dir} already exists and is not empty; choose a new --dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    for n in range(1, 1000):
        run_dir = root / (f"{stamp}_{name}" if n == 1 else f"{stamp}_{name}_{n}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        last = root / "_LAST"
        try:
            tmp = root / f".{run_dir.name}.last"
            os.symlink(run_dir.name, tmp)
            os.replace(tmp, last)
        except OSError:
            pass  # _LAST is a convenience; a filesystem without symlinks still runs
        return run_dir
    raise InputError(f"could not create a new run directory under {root}")


def _remove_unstarted(run_dir: Path) -> None:
    """Remove a run directory that never got a miniwdl process (only our own files are in it)."""
    import shutil

    if not log_files(run_dir)[0].exists():
        shutil.rmtree(run_dir, ignore_errors=True)


# -- finding runs ---------------------------------------------------------------------------------


def attach(run: Union[str, os.PathLike], *, root: Union[None, str, os.PathLike] = None) -> Run:
    """A handle on an existing run: its directory, or its name under the run root."""
    candidates = [Path(os.path.expanduser(os.fspath(run)))]
    base = Path(root) if root else run_root()
    candidates.append(base / os.fspath(run))
    for path in candidates:
        if _is_run_dir(path):
            return Run(path.resolve())
    raise RunNotFound(f"no run at {os.fspath(run)!r} (looked in {Path.cwd()} and {base}); `%wdl runs` lists runs")


def list_runs(root: Union[None, str, os.PathLike] = None) -> List[Run]:
    """Runs under the run root, newest first."""
    base = Path(root) if root else run_root()
    if not base.is_dir():
        return []
    runs = [Run(p) for p in base.iterdir() if p.is_dir() and not p.is_symlink() and _is_run_dir(p)]
    runs.sort(key=lambda r: (r.state.start_time or _ctime(r.run_dir), r.run_dir.name), reverse=True)
    return runs


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and (
        (launch_record.meta_dir(path) / "launch.json").exists()
        or (path / "workflow.log").exists()
        or (path / "task.log").exists()
    )


def _ctime(path: Path) -> float:
    try:
        return path.stat().st_ctime
    except OSError:
        return 0.0


# -- outputs and errors ---------------------------------------------------------------------------


def _strip_namespace(key: str) -> str:
    return key.split(".", 1)[1] if "." in key else key


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


def error_from_json(error: Dict[str, Any], run_dir: Path, *, cancelled: bool = False) -> RunFailed:
    """error.json (miniwdl's nested RunFailed -> cause chain) -> the exception users see."""
    chain = []
    node: Any = error
    while isinstance(node, dict):
        chain.append(node)
        node = node.get("cause")
    root_cause = chain[-1] if chain else {}
    failed_dirs = [n.get("dir") for n in chain if n.get("dir")]
    call_dir = Path(failed_dirs[-1]) if failed_dirs else run_dir
    call = _call_label(call_dir, run_dir, chain)
    kind = root_cause.get("error", "")
    message = root_cause.get("message") or ""
    if cancelled or kind in ("Terminated", "Cancelled"):
        return Cancelled(f"run {run_dir.name} was cancelled", run_dir=run_dir, error=error)
    if kind == "CommandFailed":
        stderr_file = Path(root_cause["stderr_file"]) if root_cause.get("stderr_file") else None
        return TaskFailed(
            call,
            exit_code=root_cause.get("exit_status"),
            stderr_tail=_tail_lines(stderr_file, STDERR_TAIL_LINES) if stderr_file else [],
            stderr_file=stderr_file,
            log_file=call_dir / "task.log",
            run_dir=run_dir,
            error=error,
        )
    details = [f"log: {log_files(call_dir)[0]}"]
    if kind in ("EvalError", "OutputError", "InputError", "RuntimeError", "ValidationError", "RunFailed"):
        where = root_cause.get("pos") or {}
        at = f" ({Path(where['source']).name}:{where.get('line')})" if where.get("source") else ""
        return RunFailed(f"{call}: {kind}{at}: {message or 'failed'}", run_dir=run_dir, details=details, error=error)
    if kind == "ProcessDied":
        return BackendError(
            f"{message}. Its last output is in {launch_record.stderr_path(run_dir)}",
            run_dir=run_dir,
            error=error,
        )
    return BackendError(f"{call}: {kind}: {message}".rstrip(": "), run_dir=run_dir, details=details, error=error)


def _call_label(call_dir: Path, run_dir: Path, chain: List[Dict[str, Any]]) -> str:
    try:
        rel = call_dir.relative_to(run_dir)
    except ValueError:
        rel = Path(call_dir.name)
    if str(rel) in ("", "."):
        named = next((n.get("task") or n.get("workflow") for n in chain if n.get("task") or n.get("workflow")), None)
        return f"task {named}" if named else run_dir.name
    return str(rel)


def _tail_lines(path: Optional[Path], n: Optional[int]) -> List[str]:
    if path is None:
        return []
    try:
        with open(path, "rb") as f:
            # Read only the end: a task's stderr can be gigabytes.
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024 if n else 0))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    return lines[-n:] if n else lines


def _tail_text(path: Path, n: Optional[int]) -> str:
    if not path.exists():
        return f"(no log yet at {path})"
    return "\n".join(_tail_lines(path, n))
