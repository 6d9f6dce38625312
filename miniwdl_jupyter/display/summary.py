"""What a person reads about a run, as text and as escaped HTML fragments. Shared by every view.

Everything here costs O(call groups + failed calls shown), never O(calls): a 10,000-way scatter is
one group whose counts the monitor keeps incrementally.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Dict, List, Optional

from .. import protocol
from ..files import tail_lines
from ..monitor import CALL_STATES, FAILED, CallGroup, CallState, RunState
from ..report.svg import STATE_COLOURS  # noqa: F401 - one palette: the views and the report agree
from ..run_errors import call_backend_message, cause_chain

MAX_GROUP_ROWS = 50  # call names shown; a workflow with more shows "... N more"
STDERR_TAIL_LINES = 12


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def format_duration(seconds: Optional[float]) -> str:
    """M:SS, or H:MM:SS from an hour on; "-" when unknown."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def elapsed(state: RunState) -> str:
    return format_duration(state.duration)


def run_title(state: RunState) -> str:
    return state.name or state.run_dir.name


def counts_text(counts: Dict[str, int]) -> str:
    """'3,700 succeeded, 2 failed, 10 running' in CALL_STATES order, zeros left out."""
    return ", ".join(f"{counts[s]:,} {s}" for s in CALL_STATES if counts.get(s)) or "no calls yet"


def counts_html(counts: Dict[str, int]) -> str:
    parts = [
        f"<span style='color:{STATE_COLOURS[s]}'>{counts[s]:,} {s}</span>" for s in CALL_STATES if counts.get(s)
    ]
    return ", ".join(parts) or "no calls yet"


def text_bar(done: int, total: int, width: int = 20) -> str:
    filled = int(width * done / total) if total else 0
    return "█" * filled + "░" * (width - filled)


def group_text(group: CallGroup) -> str:
    """`align  ███░░ 3,712/10,000  2 failed`"""
    extra = ", ".join(f"{group.counts[s]:,} {s}" for s in ("running", "retrying", "failed", "cancelled") if group.counts[s])
    return f"{group.name}  {text_bar(group.finished, group.total)} {group.finished:,}/{group.total:,}" + (f"  {extra}" if extra else "")


def summary_text(state: RunState) -> str:
    """One line: name [backend] status elapsed: finished/known calls (counts)."""
    return (
        f"{run_title(state)} [{state.backend or '-'}] {state.status} {elapsed(state)}: "
        f"{state.finished_calls:,}/{state.task_calls:,} calls ({counts_text(state.counts)})"
    )


def html_bar(done: int, total: int, failed: int = 0, width: str = "14em") -> str:
    """A progress bar as two coloured divs (no <progress>: it can't show failures)."""
    ok = 100.0 * (done - failed) / total if total else 0.0
    bad = 100.0 * failed / total if total else 0.0
    return (
        f"<div style='display:inline-block;vertical-align:middle;width:{width};height:0.8em;"
        f"background:#e0e0e0;border-radius:2px;overflow:hidden;white-space:nowrap'>"
        f"<div style='display:inline-block;height:100%;width:{ok:.2f}%;background:{STATE_COLOURS['succeeded']}'></div>"
        f"<div style='display:inline-block;height:100%;width:{bad:.2f}%;background:{STATE_COLOURS['failed']}'></div></div>"
    )


def status_badge(status: str) -> str:
    colour = STATE_COLOURS.get(status, "#555")
    return f"<span style='color:white;background:{colour};border-radius:3px;padding:0 0.4em'>{esc(status)}</span>"


def header_html(state: RunState) -> str:
    return (
        f"<b>{esc(run_title(state))}</b> <code>{esc(state.backend or '-')}</code> "
        f"{status_badge(state.status)} <span title='elapsed'>{esc(elapsed(state))}</span>"
    )


def groups_html(groups: List[CallGroup]) -> str:
    rows = []
    for group in groups[:MAX_GROUP_ROWS]:
        rows.append(
            f"<tr><td style='text-align:left'><code>{esc(group.name)}</code></td>"
            f"<td>{html_bar(group.finished, group.total, group.counts[FAILED], '10em')}</td>"
            f"<td style='text-align:right'>{group.finished:,}/{group.total:,}</td>"
            f"<td style='text-align:left'>{counts_html(_unfinished_or_bad(group))}</td></tr>"
        )
    if len(groups) > MAX_GROUP_ROWS:
        rows.append(f"<tr><td colspan='4'>... {len(groups) - MAX_GROUP_ROWS} more call names</td></tr>")
    return "<table style='margin:0.3em 0'>" + "".join(rows) + "</table>"


def _unfinished_or_bad(group: CallGroup) -> Dict[str, int]:
    return {s: group.counts[s] for s in ("running", "retrying", "failed", "cancelled")}


def stderr_tail(call: CallState, lines: int = STDERR_TAIL_LINES) -> List[str]:
    """The last lines of a failed call's stderr, reading only the file's end (it can be huge)."""
    return tail_lines(stderr_path(call), lines)


def stderr_path(call: CallState) -> Optional[Path]:
    if call.error and call.error.get("stderr_file"):
        return Path(call.error["stderr_file"])
    return protocol.stderr_file(call.dir, call.attempt) if call.dir else None


def failure_reason(call: CallState) -> Optional[str]:
    """What the backend said about a failed call (time limit, out of memory), if anything."""
    return call_backend_message(call.dir) if call.state == FAILED else None


def failure_html(call: CallState, tail: List[str]) -> str:
    code = f" (exit {call.exit_code})" if call.exit_code is not None else ""
    reason = failure_reason(call)
    where = []
    if call.dir:
        where.append(f"log: <code>{esc(call.dir / 'task.log')}</code>")
    path = stderr_path(call)
    if path:
        where.append(f"stderr: <code>{esc(path)}</code>")
    body = "<pre style='margin:0.2em 0;max-height:12em;overflow:auto'>" + esc("\n".join(tail)) + "</pre>" if tail else ""
    return (
        f"<div style='border-left:3px solid {STATE_COLOURS['failed']};padding-left:0.5em;margin:0.3em 0'>"
        f"<b>{esc(call.id)}</b> {esc(call.state)}{esc(code)}{': ' + esc(reason) if reason else ''}"
        f"<br>{' &middot; '.join(where)}{body}</div>"
    )


def failure_text(call: CallState, tail: List[str]) -> str:
    code = f" (exit {call.exit_code})" if call.exit_code is not None else ""
    reason = failure_reason(call)
    lines = [f"{call.id} {call.state}{code}" + (f": {reason}" if reason else "")]
    if call.dir:
        lines.append(f"  log: {call.dir / 'task.log'}")
    lines += [f"  | {line}" for line in tail]
    return "\n".join(lines)


def job_text(call: CallState) -> str:
    """Where the call runs: its GPUs on this machine ("on GPU 2", "waiting for a GPU"), or its
    scheduler's job (slurm, aws_batch): job id, state, node, log stream."""
    job = call.job
    if not job.get("job_id"):
        if call.waiting_for:
            return f"waiting for {call.waiting_for}"
        return f"on GPU{'s' if len(call.gpus) > 1 else ''} {','.join(call.gpus)}" if call.gpus else ""
    parts = [f"job {job['job_id']}"]
    state = job.get("state") or job.get("status")
    if state:
        parts.append(str(state))
    if job.get("node"):
        parts.append(f"on {job['node']}")
    if job.get("log_stream"):
        parts.append(f"log stream {job['log_stream']}")
    return " ".join(parts)


def run_error_text(state: RunState) -> str:
    """The run-level error message (error.json's innermost cause), when there is one."""
    message, chain = "", cause_chain(state.error)
    for node in chain:
        message = node.get("message") or message or node.get("error", "")
    if chain and chain[-1].get("error") == "CommandFailed" and not chain[-1].get("message"):
        # miniwdl writes no message for a failed command (a backend's explanation would be one)
        task = next((node["task"] for node in reversed(chain) if node.get("task")), "a task")
        message = f"task {task} exited with status {chain[-1].get('exit_status')}"
    return message


def log_tail_html(lines: List[str]) -> str:
    return "<pre style='margin:0.2em 0;max-height:14em;overflow:auto;font-size:85%'>" + esc("\n".join(lines)) + "</pre>"
