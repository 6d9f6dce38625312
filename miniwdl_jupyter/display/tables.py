"""Tables for `%wdl runs` and `%wdl config`: HTML for notebooks, aligned text for everything else."""

from __future__ import annotations

import html
import time
from typing import Iterable, List, Sequence, Tuple

from ..disk_usage import human, run_size
from ..monitor import FAILED, FINISHED_CALL_STATES
from .summary import format_duration, run_error_text


class Table:
    def __init__(self, headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str = "(none)"):
        self.headers = list(headers)
        self.rows = [[str(c) for c in row] for row in rows]
        self.empty = empty

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<p>{html.escape(self.empty)}</p>"
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        if not self.rows:
            return self.empty
        widths = [max(len(r[i]) for r in [self.headers] + self.rows) for i in range(len(self.headers))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [self.headers] + self.rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def runs_table(runs) -> Table:  # type: ignore[no-untyped-def]
    rows: List[Tuple[str, ...]] = []
    for run in runs:
        state = run.poll()
        finished = sum(state.counts[s] for s in FINISHED_CALL_STATES)
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(state.start_time)) if state.start_time else "-"
        rows.append(
            (
                run.run_dir.name,
                state.status,
                started,
                format_duration(state.duration),
                f"{finished}/{state.task_calls}",
                str(state.counts[FAILED]),
                state.backend or "-",
                human(run_size(run.run_dir, state.done)),
                run_error_text(state) if state.status == FAILED else "",
            )
        )
    headers = ["run", "status", "started", "duration", "calls done", "failed", "backend", "size", "error"]
    return Table(headers, rows, "(no runs yet)")


def config_table(rows) -> Table:  # type: ignore[no-untyped-def]
    return Table(["section", "key", "value", "from"], rows)
