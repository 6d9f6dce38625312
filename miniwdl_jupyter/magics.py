"""`%%wdl` and `%wdl SUBCOMMAND`: parse arguments, call the runs API, display. Nothing else.

Values in `name=value` pairs are taken from the notebook's namespace (`$var`, `{expression}`), so
the magic is marked `no_var_expand`: IPython would otherwise turn `$samples` into its str().
"""

from __future__ import annotations

import keyword
import os
import re
import shlex
from typing import Any, Dict, List, Optional

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from WDL.runtime.config import Loader

from . import config, disk_magics, runs, wdl_inputs
from .display import progress_view, render_outputs
from .display.build_log import BuildLog
from .display.report import report_bundle
from .display.tables import config_table, runs_table
from .errors import ConfigError, InputError, RunNotFound
from .magic_args import load_config as _load_config, parse as _parse

SUBCOMMANDS = ("run", "runs", "attach", "wait", "cancel", "logs", "check", "config", "show", "report", "build", "doctor") + disk_magics.SUBCOMMANDS


@magics_class
class WDLMagics(disk_magics.DiskMagics, Magics):
    @no_var_expand
    @magic_arguments()
    @argument("inputs", nargs="*", metavar="name=value",
              help="an input: name=literal, name=$var (a Python variable) or name={expression}; "
                   "repeat a name to fill an Array; namespaced names (wf.x, call.x) work as in miniwdl run")
    @argument("-f", "--file", metavar="WDL", help="run this .wdl file or URL; the cell body then holds inputs as JSON/YAML")
    @argument("-i", "--inputs", dest="inputs_from", metavar="FILE|$dict", help="inputs from a JSON/YAML file or a dict variable; name=value pairs override it")
    @argument("-o", "--out", default="wdl_run", metavar="VAR", help="variable that receives the Run handle, also when the run fails (default: wdl_run)")
    @argument("--task", metavar="NAME", help="run one task of the document instead of its workflow")
    @argument("--backend", metavar="NAME", help="container backend (default: [jupyter] backend, auto = docker_run if Docker answers, else local)")
    @argument("--dir", metavar="DIR", help="as miniwdl run --dir: a new timestamped run directory under DIR, or exactly DIR given as DIR/. (default: under [jupyter] root)")
    @argument("--submit", metavar="LAUNCHER", help="where the miniwdl process runs: local (default), or an installed launcher such as slurm or aws")
    @argument("--wes", metavar="URL", help="run on a GA4GH WES server (http(s)://host:port); its token from [wes] token / MINIWDL__WES__TOKEN")
    @argument("--no-cache", action="store_true", help="do not reuse cached task results for this cell")
    @argument("--no-wait", action="store_true", help="return at once with the handle; progress keeps updating")
    @argument("--progress", choices=("auto", "widget", "html", "text", "none"), help="progress display (default: [jupyter] progress)")
    @argument("--cfg", metavar="FILE", help="miniwdl configuration file")
    @line_cell_magic
    def wdl(self, line: str, cell: Optional[str] = None) -> Any:
        """Run WDL workflows with miniwdl.

        %%wdl [options] [name=value ...]     run the WDL in the cell body
        %wdl run -f main.wdl [name=value ...] run a WDL file
        %wdl runs [--root DIR] [-n N]        table of runs, newest first
        %wdl attach RUN [-o VAR]             a handle on a run (name, path or "last"); follows it live
        %wdl wait RUN                        wait for a run, showing progress
        %wdl cancel RUN                      cancel a run (its containers stop)
        %wdl logs RUN [CALL] [-n N]          the tail of a run's log, or of one call's
        %wdl show RUN                        render a run's outputs
        %wdl report RUN                      timeline, usage against requests, workflow graph
        %%wdl check / %wdl check -f FILE     lint and typecheck, as `miniwdl check`
        %wdl config [SECTION ...]            the effective configuration and where each value came from
        %wdl doctor aws                      check the AWS setup a run would use, with a fix for each problem
        %wdl build [-r FILE] [--base IMAGE] [--push REGISTRY] [REQUIREMENT ...]
                                             build a notebook-step image
        %wdl du [RUN]                        disk use: every run, or one run by call and what the cache uses
        %wdl cleanup [--keep-last N] [--older-than AGE] [--failed] [--cancelled] [RUN ...] [--yes]
                                             delete old runs safely (the plan first)
        %wdl why RUN [CALL]                  why calls ran instead of coming from the call cache
        """
        if cell is not None:
            if line.strip().split(" ", 1)[0] == "check":
                return self._check(_split(line)[1:], cell)
            return self._run(line, cell)
        words = _split(line)
        if not words:
            raise UsageError("%wdl needs a subcommand: " + ", ".join(SUBCOMMANDS) + " (see %wdl?)")
        sub, rest = words[0], words[1:]
        if sub not in SUBCOMMANDS:
            raise UsageError(f"unknown %wdl subcommand {sub!r}; use one of: {', '.join(SUBCOMMANDS)} (see %wdl?)")
        if sub == "run":
            return self._run(line.strip()[len("run"):], None)
        if sub == "check":
            return self._check(rest, None)
        return getattr(self, f"_{sub}")(rest)

    # -- running -----------------------------------------------------------------------------
    def _run(self, line: str, cell: Optional[str]) -> None:
        args = self.wdl.parser.parse_args(_split(line))
        _check_variable_name(args.out, "-o")
        loader = _load_config(args.cfg)
        if args.file:
            wdl: str = args.file
            inputs = wdl_inputs.inputs_for_file(wdl, cell or "")
        elif cell is not None and cell.strip():
            wdl = cell
            inputs = {}
        else:
            raise UsageError("give the WDL in the cell body, or a file with -f FILE")
        if args.inputs_from:
            inputs.update(self._inputs_from(args.inputs_from))
        inputs.update(self._pairs(args.inputs))
        try:
            handle = runs.run(
                wdl,
                inputs,
                backend=args.backend,
                dir=args.dir,
                cache=False if args.no_cache else None,
                wait=False,
                task=args.task,
                cfg=loader,
                submit=args.submit,
                wes=args.wes,
            )
        except ConfigError as exn:
            raise UsageError(str(exn)) from None
        self.shell.user_ns[args.out] = handle
        self._follow(handle, args.progress, wait=not args.no_wait)

    def _follow(self, handle: runs.Run, progress: Optional[str], *, wait: bool) -> None:
        """Show progress; block until the run ends (or follow it in the background); raise its error."""
        view = progress_view(handle, progress)  # None: the run's [jupyter] progress
        if not wait:
            view.follow()
            return
        try:
            handle.wait(on_poll=view.update, raise_on_failure=False)
        finally:
            view.finish(handle.poll())
        disk_magics.print_cache_misses(handle)
        disk_magics.auto_cleanup(handle)
        if handle.error is not None:
            raise handle.error
        render_outputs(handle)

    def _inputs_from(self, spec: str) -> Dict[str, Any]:
        if spec.startswith("$"):
            value = self._lookup(spec[1:])
            if not isinstance(value, dict):
                raise UsageError(f"-i {spec}: expected a dict of inputs, got {type(value).__name__}")
            return dict(value)
        return wdl_inputs.read_inputs_file(spec)

    def _pairs(self, pairs: List[str]) -> Dict[str, Any]:
        inputs: Dict[str, Any] = {}
        repeated: Dict[str, List[Any]] = {}
        for pair in pairs:
            name, sep, raw = pair.partition("=")
            if not sep or not name:
                raise UsageError(f"inputs are name=value pairs; got {pair!r}")
            value = self._value(raw)
            if name in inputs:  # `names=a names=b` fills an Array, as in `miniwdl run`
                repeated.setdefault(name, [inputs[name]]).append(value)
                inputs[name] = repeated[name]
            else:
                inputs[name] = value
        return inputs

    def _value(self, raw: str) -> Any:
        if raw.startswith("$") and raw[1:].isidentifier():
            return self._lookup(raw[1:])
        if raw.startswith("{") and raw.endswith("}"):
            try:
                return eval(raw[1:-1], self.shell.user_global_ns, self.shell.user_ns)  # noqa: S307 - the user's own expression
            except Exception as exn:
                raise UsageError(f"could not evaluate {raw}: {type(exn).__name__}: {exn}") from None
        return wdl_inputs.Literal(raw)

    def _lookup(self, name: str) -> Any:
        try:
            return self.shell.user_ns[name]
        except KeyError:
            raise UsageError(f"${name}: no such variable in the notebook") from None

    # -- subcommands -------------------------------------------------------------------------
    def _resolve_run(self, spec: str, loader: Loader) -> runs.Run:
        if spec.startswith("$"):
            value = self._lookup(spec[1:])
            if isinstance(value, runs.Run):
                return value
            if not isinstance(value, (str, os.PathLike)):
                raise UsageError(f"{spec} is a {type(value).__name__}; give a Run, a run directory or a run's name")
            spec = os.fspath(value)
        try:
            return runs.attach(spec, cfg=loader)
        except (RunNotFound, InputError) as exn:
            raise UsageError(str(exn)) from None

    def _runs(self, argv: List[str]) -> None:
        args = _parse(_runs_args, argv)
        loader = _load_config(args.cfg)
        display(runs_table(runs.list_runs(args.root, cfg=loader)[: args.n]))

    def _attach(self, argv: List[str]) -> None:
        args = _parse(_attach_args, argv)
        _check_variable_name(args.out, "-o")
        handle = self._resolve_run(args.run, _load_config(args.cfg))
        self.shell.user_ns[args.out] = handle
        self._follow(handle, args.progress, wait=handle.done)

    def _wait(self, argv: List[str]) -> None:
        args = _parse(_wait_args, argv)
        self._follow(self._resolve_run(args.run, _load_config(args.cfg)), args.progress, wait=True)

    def _cancel(self, argv: List[str]) -> None:
        args = _parse(_cancel_args, argv)
        handle = self._resolve_run(args.run, _load_config(args.cfg))
        handle.cancel()
        print(f"{handle.name}: {handle.status}")

    def _logs(self, argv: List[str]) -> None:
        args = _parse(_logs_args, argv)
        handle = self._resolve_run(args.run, _load_config(args.cfg))
        try:
            print(handle.log(args.call, tail=args.n))
        except RunNotFound as exn:
            raise UsageError(str(exn)) from None

    def _show(self, argv: List[str]) -> None:
        args = _parse(_show_args, argv)
        render_outputs(self._resolve_run(args.run, _load_config(args.cfg)))

    def _report(self, argv: List[str]) -> None:
        args = _parse(_report_args, argv)
        handle = self._resolve_run(args.run, _load_config(args.cfg))
        display(report_bundle(handle.report()), raw=True)

    def _config(self, argv: List[str]) -> None:
        args = _parse(_config_args, argv)
        display(config_table(config.describe(_load_config(args.cfg), args.sections or None)))

    def _doctor(self, argv: List[str]) -> None:
        from .aws import doctor
        from .display.tables import Table

        args = _parse(_doctor_args, argv)
        rows = doctor.diagnose(_load_config(args.cfg))
        display(Table(doctor.HEADERS, doctor.as_table_rows(rows)))

    def _check(self, argv: List[str], cell: Optional[str]) -> None:
        from .check import check

        args = _parse(_check_args, argv)
        if not args.file and not (cell and cell.strip()):
            raise UsageError("%wdl check needs -f FILE, or use %%wdl check with WDL in the cell")
        print(check(args.file or cell, cfg=_load_config(args.cfg)))

    def _build(self, argv: List[str]) -> None:
        from . import images

        args = _parse(_build_args, argv)
        loader = _load_config(args.cfg)
        progress = BuildLog()
        try:
            tag = images.build_from_magic_args(
                args.requirements, args.requirements_file, args.base, args.push, log=progress.line, cfg=loader
            )
        finally:
            progress.close()
        print(tag)


# -- the subcommands' arguments (IPython's magic_arguments, like %%wdl itself) ------------------

_cfg_argument = argument("--cfg", metavar="FILE", help="miniwdl configuration file")
_run_argument = argument("run", help="a run: its directory, its name under the run root, last, or $variable")
_progress_argument = argument("--progress", choices=("auto", "widget", "html", "text", "none"), help="progress display")


@magic_arguments(name="wdl doctor")
@argument("platform", choices=("aws",), help="what to check: aws (queues, EFS, access point, security groups, roles, throughput)")
@_cfg_argument
def _doctor_args() -> None:
    """Check a platform's setup before a run hangs: one row per check, each problem with its fix."""


@magic_arguments(name="wdl runs")
@argument("--root", metavar="DIR", help="run root (default: [jupyter] root)")
@argument("-n", type=int, default=20, help="how many runs, newest first (default 20)")
@_cfg_argument
def _runs_args() -> None:
    """The runs under the run root, newest first."""


@magic_arguments(name="wdl attach")
@_run_argument
@argument("-o", "--out", default="wdl_run", metavar="VAR", help="variable that receives the Run handle (default: wdl_run)")
@_progress_argument
@_cfg_argument
def _attach_args() -> None:
    """A handle on a run; follows it live."""


@magic_arguments(name="wdl wait")
@_run_argument
@_progress_argument
@_cfg_argument
def _wait_args() -> None:
    """Wait for a run, showing progress."""


@magic_arguments(name="wdl cancel")
@_run_argument
@_cfg_argument
def _cancel_args() -> None:
    """Cancel a run; whatever a killed run left running is removed too."""


@magic_arguments(name="wdl logs")
@_run_argument
@argument("call", nargs="?", help="a call's id or name (default: the run's own log)")
@argument("-n", type=int, default=50, help="how many lines (default 50)")
@_cfg_argument
def _logs_args() -> None:
    """The tail of a run's log, or of one call's."""


@magic_arguments(name="wdl show")
@_run_argument
@_cfg_argument
def _show_args() -> None:
    """Render a run's outputs."""


@magic_arguments(name="wdl report")
@_run_argument
@_cfg_argument
def _report_args() -> None:
    """Where a run's time and resources went: timeline, usage against requests, workflow graph."""


@magic_arguments(name="wdl config")
@argument("sections", nargs="*", help="only these sections")
@_cfg_argument
def _config_args() -> None:
    """The effective configuration and where each value came from."""


@magic_arguments(name="wdl check")
@argument("-f", "--file", metavar="WDL", help="a .wdl file (default: the cell body)")
@_cfg_argument
def _check_args() -> None:
    """Lint and typecheck, as `miniwdl check`."""


@magic_arguments(name="wdl build")
@argument("requirements", nargs="*", help="pip requirement lines")
@argument("-r", "--requirements-file", metavar="FILE", help="a requirements.txt")
@argument("--base", metavar="IMAGE", help="base image (default: [notebook_steps] base_image)")
@argument("--push", metavar="REGISTRY", help="also push the image to this registry")
@_cfg_argument
def _build_args() -> None:
    """Build a notebook-step image."""


def _check_variable_name(name: str, option: str) -> None:
    """The handle goes into the notebook's namespace: a name no one could type is refused up front."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{option} {name!r} is not a Python variable name; use e.g. {option} my_run")


def _split(line: str) -> List[str]:
    """shlex.split, except that a `{python expression}` stays one piece, spaces and quotes included."""
    expressions: List[str] = []
    out, depth, start = [], 0, 0
    for i, ch in enumerate(line):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                expressions.append(line[start : i + 1])
                out.append(f"\x00{len(expressions) - 1}\x00")
        elif depth == 0:
            out.append(ch)
    if depth:
        raise UsageError("unbalanced { in the arguments")
    try:
        words = shlex.split("".join(out))
    except ValueError as exn:
        raise UsageError(f"could not parse the arguments: {exn}") from None
    return [re.sub("\x00(\\d+)\x00", lambda m: expressions[int(m.group(1))], w) for w in words]


def register(ipython) -> None:  # type: ignore[no-untyped-def]
    from . import cell_input  # %%wdl cells reach the magic verbatim, whatever IPython strips

    cell_input.install(ipython)
    ipython.register_magics(WDLMagics)
    runs.set_show_hook(render_outputs)
