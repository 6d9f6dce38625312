"""`%wdl du`, `%wdl cleanup` and `%wdl why`: disk use, a safe cleanup, why a call was not cached.
A mixin of WDLMagics (magics.py dispatches `%wdl SUB` to `_SUB`)."""

from __future__ import annotations

from typing import List

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from . import cache_why, cli_cleanup, disk_usage, runs
from .display.tables import Table
from .errors import InputError, MiniwdlJupyterError, RunNotFound
from .magic_args import load_config as _load_config, parse as _parse

SUBCOMMANDS = ("du", "cleanup", "why")
MAX_SUMMARY_CALLS = 10  # calls explained under a run's final summary; `%wdl why` shows them all


class DiskMagics:
    def _du(self, argv: List[str]) -> None:
        args = _parse(_du_args, argv)
        loader = _load_config(args.cfg)
        if args.run is None:
            found = runs.list_runs(args.root, cfg=loader)
            rows = [(r.run_dir.name, r.poll().status, disk_usage.run_size(r.run_dir, r.state.done)) for r in found]
            rows.sort(key=lambda row: -row[2])
            total = sum(row[2] for row in rows)
            display(Table(["run", "status", "size"], [(n, s, disk_usage.human(b)) for n, s, b in rows], "(no runs yet)"))
            print(f"{len(rows)} runs, {disk_usage.human(total)}")
            return
        handle = self._resolve_run(args.run, loader)  # type: ignore[attr-defined]
        use = disk_usage.usage(handle.run_dir, loader, ended=handle.done)
        rows = [(name, disk_usage.human(size)) for name, size in use.calls]
        rows.append(("(logs, inputs, out/ links, the rest)", disk_usage.human(use.other)))
        display(Table(["call", "size"], rows))
        print(
            f"{handle.run_dir.name}: {disk_usage.human(use.total)}; the call cache uses "
            f"{disk_usage.human(use.cache_needed)} of it ({use.cache_entries} entries)"
        )

    def _cleanup(self, argv: List[str]) -> None:
        args = _parse(_cleanup_args, argv)
        try:
            cli_cleanup.run_cleanup(args, confirm=_ask, out=print)
        except (InputError, RunNotFound) as exn:
            raise UsageError(f"%wdl cleanup: {exn}") from None

    def _why(self, argv: List[str]) -> None:
        args = _parse(_why_args, argv)
        handle = self._resolve_run(args.run, _load_config(args.cfg))  # type: ignore[attr-defined]
        if not handle.done:
            raise UsageError(f"%wdl why: run {handle.name} has not finished; ask again when it has")
        calls = handle.calls
        if args.call:
            try:
                calls = [c for c in calls if c.id == handle.find_call(args.call).id]
            except RunNotFound as exn:
                raise UsageError(str(exn)) from None
        lines = [f"{c.id}: {line}" for c in calls for line in (c.not_cached or [])]
        print("\n".join(lines) if lines else f"every task call of {handle.name} came from the call cache")


def print_cache_misses(handle: runs.Run) -> None:
    """Under a run's final summary: the calls that ran although the cache held an entry of their
    task, with what differed (one line each)."""
    explained = [c for c in handle.calls if cache_why.compared(c.not_cached)]
    for call in explained[:MAX_SUMMARY_CALLS]:
        for line in call.not_cached or []:
            print(f"not from the cache: {call.id}: {line}")
    if len(explained) > MAX_SUMMARY_CALLS:
        print(f"... and {len(explained) - MAX_SUMMARY_CALLS} more calls: %wdl why {handle.run_dir.name}")


def auto_cleanup(handle: runs.Run) -> None:
    """`[jupyter] keep_last` / `keep_days` after a run this cell waited for (off by default)."""
    from . import cleanup

    try:
        result = cleanup.after_run(handle.run_dir, handle.cfg)
    except (OSError, MiniwdlJupyterError) as exn:  # the run itself went fine: say so, don't fail the cell
        print(f"automatic cleanup ([jupyter] keep_last / keep_days) failed: {exn}")
        return
    if result is not None:
        print(f"automatic cleanup ([jupyter] keep_last / keep_days): {result.text()}")


def _ask(plan) -> bool:  # type: ignore[no-untyped-def]
    """The notebook's confirmation; where no one can answer (papermill, a test), no."""
    try:
        answer = input(f"delete this, freeing {disk_usage.human(plan.bytes)}? [y/N] ")
    except (StdinNotImplementedError, EOFError, OSError):
        return False
    return answer.strip().lower() in ("y", "yes")


_cfg_argument = argument("--cfg", metavar="FILE", help="miniwdl configuration file")


@magic_arguments(name="wdl du")
@argument("run", nargs="?", help="a run (name, path, last or $variable); default: every run under the root")
@argument("--root", metavar="DIR", help="run root (default: [jupyter] root)")
@_cfg_argument
def _du_args() -> None:
    """Disk use: every run's size, or one run's by call (largest first) and what the call cache uses."""


def _cleanup_args() -> None:
    """Delete or trim runs safely: the plan first; --yes (or answering y) applies it."""


for _flags, _kwargs in reversed(cli_cleanup.OPTIONS):
    _cleanup_args = argument(*_flags, **_kwargs)(_cleanup_args)
_cleanup_args = magic_arguments(name="wdl cleanup")(_cleanup_args)


@magic_arguments(name="wdl why")
@argument("run", help="a run (name, path, last or $variable)")
@argument("call", nargs="?", help="a call's id or name (default: every call that ran)")
@_cfg_argument
def _why_args() -> None:
    """Why calls ran instead of coming from the call cache."""
