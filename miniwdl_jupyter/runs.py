"""The runs API: run() starts a WDL run as its own miniwdl process; attach() and list_runs() find runs.

A run is a directory, not kernel state (docs/design.md): a `Run` handle is a thin view over its run
directory, so a handle made by `attach()` in a new process is as good as the one `run()` returned.
Each entry point loads the configuration once and hands that one loader to everything below it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from WDL.runtime.config import Loader

from . import cache_why, config, launch_record, leftovers, miniwdl_command, run_dirs, run_outputs, wdl_inputs, wdl_source
from .backend_choice import resolve_backend
from .errors import Cancelled, ConfigError, InputError, RunFailed, RunNotFound
from .files import tail_lines
from .launcher import available as available_launchers
from .launcher import get_launcher
from .monitor import CANCELLED, FAILED, SUCCEEDED, CallState, RunMonitor, RunState
from .report import REPORT_FILE, RunReport, build_report, write_report_html
from .run_config import CfgArg, load_config, with_overrides  # noqa: F401 - load_config is public here too
from .run_errors import error_from_json

_logger = logging.getLogger("miniwdl_jupyter.runs")
# How often wait() polls the run directory: fast at first (short runs end quickly), then 10 times
# a second; a poll is a flock attempt and a read of what was appended. Views throttle their own
# redraws.
_POLL_MIN, _POLL_MAX = 0.05, 0.1

_URL_PREFIXES = ("http://", "https://", "s3://", "gs://")


class Run:
    """Handle on one run directory. Cheap to create; every property reads the directory."""

    def __init__(
        self, run_dir: Union[str, os.PathLike], *, process: Optional[subprocess.Popen] = None, cfg: Optional[Loader] = None
    ):
        self.run_dir = Path(run_dir).absolute()
        self._cfg = cfg
        self._monitor = RunMonitor(self.run_dir, alive=self._launcher_says_alive)
        self._process = process  # set when this process launched the run: reaps it when it ends
        self._lock = threading.Lock()  # the widget's updater thread and the cell may both poll
        self._outputs: Optional[Dict[str, Any]] = None  # a finished run's outputs never change
        self._report: Optional[RunReport] = None  # a finished run's report never changes

    def __repr__(self) -> str:
        return f"<Run {self.name} {self.poll().status} {self.run_dir}>"

    @property
    def cfg(self) -> Loader:
        """The configuration this handle was made with (loaded on first use if none was given)."""
        if self._cfg is None:
            self._cfg = config.load()
        return self._cfg

    def _launcher_says_alive(self, record: Dict[str, Any]) -> Optional[bool]:
        """The monitor's question, when the log is unlocked and there is no result: is the run's
        process (or the job holding it) still going? None when its launcher is not installed here."""
        try:
            return get_launcher(record.get("launcher")).alive(record, self.cfg)
        except ConfigError:
            return None

    # -- state -------------------------------------------------------------------------------
    def poll(self) -> RunState:
        with self._lock:
            if self._process is not None and self._process.poll() is not None:
                # Reaped (no zombie left to look alive); its exit status explains a death.
                launch_record.update(self.run_dir, exit_status=self._process.returncode)
                self._process = None
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
        """The calls; once the run has ended, each says why it was not taken from the call cache
        (`not_cached`, see cache_why.py)."""
        state = self.poll()
        calls = list(state.calls.values())
        if state.done:
            cache_why.explain_calls(self.run_dir, calls, self.cfg)
        return calls

    @property
    def outputs(self) -> Dict[str, Any]:
        """Outputs keyed by declared name; Files and Directories as pathlib.Path."""
        state = self.poll()
        if state.status != SUCCEEDED or state.outputs is None:
            return {}
        if self._outputs is None:
            self._outputs = run_outputs.read(state.outputs, self.run_dir)
        return self._outputs

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
        if (state.error or {}).get("error") == "ProcessDied":
            leftovers.stop_leftovers(self.run_dir, self.cfg)  # its tasks must not outlive it
        self._write_report()
        if raise_on_failure and self.error is not None:
            raise self.error
        return self

    def report(self) -> RunReport:
        """Where the time and the resources went (docs/report.md), read from the run directory:
        `.calls` and `.tasks` (pandas DataFrames when pandas is installed, else lists of dicts),
        `.advice` (rightsizing lines), `.critical_path`, `.html()`, `.text()`."""
        if self._report is not None:
            return self._report
        report = build_report(self.run_dir, self.poll())
        if report.state.done:
            self._report = report
        return report

    def _write_report(self) -> None:
        """report.html in the run directory once the run has ended, for browsers (papermill and
        terminal users, WES); a report that cannot be written costs the run nothing but a warning.
        Written once: a finished run's report does not change."""
        if (self.run_dir / REPORT_FILE).exists():
            return
        try:
            write_report_html(self.run_dir, self.report())
        except Exception as exn:
            _logger.warning("could not write the run report %s/report.html: %s: %s", self.run_dir, type(exn).__name__, exn)

    def cancel(self, *, timeout: float = 30.0) -> None:
        """Stop the run: its launcher stops the miniwdl process (which stops its tasks and writes
        error.json); then anything still left of it (a killed run's containers or task processes)
        is removed, also when the run had already ended."""
        if not self.poll().done:
            launch_record.request_cancel(self.run_dir)
            record = launch_record.read(self.run_dir)
            if record:
                get_launcher(record.get("launcher")).cancel(record, self.run_dir, self.cfg)
            deadline = time.monotonic() + timeout
            while not self.poll().done and time.monotonic() < deadline:
                time.sleep(0.1)
        leftovers.stop_leftovers(self.run_dir, self.cfg)

    def log(self, call: Optional[str] = None, tail: Optional[int] = 50) -> str:
        """The last `tail` lines of the run's log, or of one call's (by id or name) task log."""
        if call is None:
            path = run_dirs.log_files(self.run_dir)[0]
        else:
            found = self.find_call(call)
            path = (found.dir or self.run_dir / found.id) / "task.log"
        if not path.exists():
            return f"(no log yet at {path})"
        return "\n".join(tail_lines(path, tail))

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
    inputs: Optional[Mapping] = None,
    *,
    backend: Optional[str] = None,
    dir: Union[None, str, os.PathLike] = None,
    cache: Optional[bool] = None,
    wait: bool = True,
    task: Optional[str] = None,
    cfg: CfgArg = None,
    submit: Optional[str] = None,
    wes: Optional[str] = None,
) -> Run:
    """Run a WDL workflow (or one task) as its own miniwdl process.

    `wdl` is WDL source text, a path, or a URL. Inputs are Python values keyed by input name
    (namespaced keys work as in `miniwdl run`). Everything is checked before anything starts.
    `dir`: as `miniwdl run --dir`: a new timestamped run directory under DIR, or exactly DIR given
    as `DIR/.` (default: under `[jupyter] root`). `cache=None` follows `[jupyter] cache` (on by
    default): re-running reuses every finished task. `submit` names the launcher that starts the
    miniwdl process (default `local`: a process on this machine; e.g. `slurm`, `aws`). `wes=URL`
    sends the run to a GA4GH WES server (launcher `wes`; `backend` is then the server's).
    `cfg`: a miniwdl.cfg path, a dict of overrides ({section: {key: value}}), or a Loader.
    """
    loader = load_config(cfg)
    if inputs is not None and not isinstance(inputs, Mapping):
        raise InputError(f"inputs must be a mapping of input names to values (a dict), not {type(inputs).__name__}")
    if cache is None:
        cache = config.option(loader, "jupyter", "cache", "bool")
    if wes:
        if submit not in (None, "wes"):
            raise InputError(f"wes= sends the run to a WES server; it cannot also be submitted with {submit!r}")
        submit = "wes"
        loader = with_overrides(loader, {"wes": {"url": wes, **({"backend": backend} if backend else {})}})
    launcher = get_launcher(submit)  # an unknown launcher fails before anything is created
    cwd = Path.cwd()
    root = run_dirs.prepare_root(run_dirs.run_root(loader, cwd))
    source = os.fspath(wdl)
    text: Optional[str] = None
    if wdl_source.is_wdl_text(source):
        text = source
        source_path, display_name = str(wdl_source.stage_cell_source(text, root)), "cell"
    elif source.startswith(_URL_PREFIXES):
        source_path, display_name = source, source
    else:
        source_path, display_name = str((cwd / source).resolve()), source
    loaded = wdl_source.load(source_path, cwd=cwd, display_name=display_name, task=task, text=text)
    inputs_json = wdl_inputs.bind_inputs(loaded, dict(inputs or {}), cwd=cwd)
    if submit == "wes":  # the server runs the tasks: its backends, not this machine's
        backend_name = backend or config.option(loader, "wes", "backend") or "wes server default"
    else:
        chosen = backend or config.option(loader, "jupyter", "backend")
        if chosen in ("", "auto") and launcher.default_backend:
            chosen = launcher.default_backend
        backend_name = resolve_backend(chosen, loader)
    run_dir = run_dirs.new_run_dir(root, loaded.name, dir, cwd)
    try:
        proc = _start(loaded, inputs_json, run_dir, backend_name, cache, task, loader, cwd, launcher.name)
    except BaseException:
        run_dirs.remove_unstarted(run_dir)  # nothing half-written is left behind
        raise
    handle = Run(run_dir, process=proc, cfg=loader)
    _logger.info("started %s on %s in %s", loaded.name, backend_name, run_dir)
    if wait:
        handle.wait()
    return handle


def _start(loaded, inputs_json, run_dir: Path, backend_name: str, cache: bool, task, loader: Loader, cwd: Path, launcher_name: str) -> Optional[subprocess.Popen]:
    meta = launch_record.meta_dir(run_dir)
    meta.mkdir(parents=True, exist_ok=True)
    inputs_file = meta / "inputs.json"
    inputs_file.write_text(wdl_inputs.dump_inputs(inputs_json))
    command, env = miniwdl_command.build(
        loaded, inputs_file, run_dir, backend=backend_name, cache=cache, task=task, cfg=loader, cwd=cwd
    )
    now = time.time()
    # Written before the process starts, naming its launcher: a monitor reading it meanwhile sees
    # a run that is starting, not one that died.
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
            "launcher": launcher_name,
            "launch_time": now,
            "start_time": now,
            "host": socket.gethostname(),
            "command": command,
        },
    )
    proc = get_launcher(launcher_name).launch(command, run_dir=run_dir, env=env, cwd=cwd, cfg=loader)
    leftovers.sweep_in_background(backend_name, loader)  # what runs killed earlier left
    return proc


# -- finding runs ---------------------------------------------------------------------------------


def attach(run: Union[str, os.PathLike], *, root: Union[None, str, os.PathLike] = None, cfg: CfgArg = None) -> Run:
    """A handle on an existing run: its directory, its name under the run root, or `last`."""
    if not isinstance(run, (str, os.PathLike)):
        raise InputError(f"attach takes a run directory, a run's name or 'last', not {type(run).__name__}")
    loader = load_config(cfg)
    base = Path(root) if root else run_dirs.run_root(loader)
    scheme, colon, _ = os.fspath(run).partition(":")
    if colon and scheme in available_launchers():  # e.g. wes:URL#RUN_ID, a run on a WES server
        return Run(get_launcher(scheme).follow(os.fspath(run), run_dirs.prepare_root(base), loader), cfg=loader)
    if os.fspath(run) == "last":
        found = list_runs(base, cfg=loader)
        if not found:
            raise RunNotFound(f"there are no runs yet under {base}")
        return found[0]
    for path in (Path(os.path.expanduser(os.fspath(run))), base / os.fspath(run)):
        if run_dirs.is_run_dir(path):
            return Run(path.resolve(), cfg=loader)
    raise RunNotFound(f"no run at {os.fspath(run)!r} (looked in {Path.cwd()} and {base}); `%wdl runs` lists runs")


def list_runs(root: Union[None, str, os.PathLike] = None, *, cfg: CfgArg = None) -> List[Run]:
    """Runs under the run root, newest first. A damaged run directory is listed, never fatal."""
    loader = load_config(cfg)
    base = Path(root) if root else run_dirs.run_root(loader)
    if not base.is_dir():
        return []
    runs = [Run(p, cfg=loader) for p in base.iterdir() if p.is_dir() and not p.is_symlink() and run_dirs.is_run_dir(p)]
    runs.sort(key=lambda r: (_start_time(r), r.run_dir.name), reverse=True)
    return runs


def _start_time(run: Run) -> float:
    started = run.state.start_time
    if isinstance(started, (int, float)):
        return float(started)
    try:
        return run.run_dir.stat().st_ctime
    except OSError:
        return 0.0


def run_root(cfg: CfgArg = None) -> Path:
    """The run root of a configuration (`[jupyter] root`)."""
    return run_dirs.run_root(load_config(cfg))
