"""What a backend knows about a failed task (a SLURM time limit, the kernel's OOM killer) reaches the
user: the cell's TaskFailed, the progress summary, `%wdl runs` and the saved run record, through a
real IPython shell on the real SLURM cluster and the real Docker daemon."""

from __future__ import annotations

import json

import pytest

from miniwdl_jupyter.errors import TaskFailed
from miniwdl_jupyter.run_errors import call_backend_message

from slurm_fixtures import jobs_in_queue, slurm_cluster  # noqa: F401 (a fixture)

# Two calls over a time limit in one run (SLURM's granularity is a minute, so each such test costs
# one): `slow` by runtime.time_minutes, `nap` by a per-call [slurm] override with the WDL unchanged.
OVER_TIME = """version 1.1
workflow limits {
  call slow
  call nap
}
task slow {
  command <<< echo napping; sleep 600 >>>
  runtime { time_minutes: 1 }
}
task nap {
  command <<< echo napping; sleep 600 >>>
}
"""

HUNGRY = """version 1.1
workflow hungry {
  call eat
}
task eat {
  command <<< echo eating; x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo "${#x}" >>>
  runtime { docker: "IMAGE" memory: "64M" }
}
"""


def _failed_cell(shell, capsys, line: str, body: str):  # type: ignore[no-untyped-def]
    result = shell.run_cell(f"%%wdl {line} -o failed --progress text\n{body}")
    error = result.error_in_exec
    assert isinstance(error, TaskFailed), result.error_in_exec
    shown = capsys.readouterr()
    return error, shown.out + shown.err


def _runs_table(shell, capsys) -> str:  # type: ignore[no-untyped-def]
    assert shell.run_cell("%wdl runs").success
    return capsys.readouterr().out


@pytest.mark.slow
def test_a_task_over_its_slurm_time_limit_fails_saying_so(slurm_cluster, shell, capsys, monkeypatch):
    """Both ways to set a time limit, in one run (fail_fast off so both calls reach their limit):
    runtime.time_minutes, and a per-call `[slurm] calls` extra_args (SLURM rounds its 5 s up to
    one minute)."""
    monkeypatch.setenv("MINIWDL__SLURM__RUNTIME", "none")
    monkeypatch.setenv("MINIWDL__SCHEDULER__FAIL_FAST", "false")
    monkeypatch.setenv("MINIWDL__SLURM__CALLS", json.dumps({"nap": {"extra_args": ["--time=0:05"]}}))
    error, shown = _failed_cell(shell, capsys, "--backend slurm", OVER_TIME)
    explanation = "task exceeded its time limit: SLURM ended job "
    by_runtime = "TIMEOUT (runtime.time_minutes = 1: 1:00)"
    by_override = "TIMEOUT (time limit from the partition or [slurm] extra_args: 1:00)"
    assert explanation in error.message and (by_runtime in error.message or by_override in error.message), error.message
    assert error.reason and error.reason.startswith(explanation)
    assert explanation in "\n".join(error._render_traceback_())
    assert error.run_dir is not None
    messages = {name: call_backend_message(next(error.run_dir.glob(f"call-{name}"))) or "" for name in ("slow", "nap")}
    assert messages["slow"].startswith(explanation) and by_runtime in messages["slow"], messages
    assert messages["nap"].startswith(explanation) and by_override in messages["nap"], messages
    assert f"{error.call} failed" in shown and explanation in shown, shown  # the progress summary
    assert explanation in _runs_table(shell, capsys)
    assert not jobs_in_queue(error.run_dir)


def test_out_of_memory_on_docker_run_says_so(docker, shell, capsys, monkeypatch):
    # docker_run gives a task `--memory` when miniwdl sets a memory limit: runtime.memory times this
    monkeypatch.setenv("MINIWDL__TASK_RUNTIME__MEMORY_LIMIT_MULTIPLIER", "1")
    error, shown = _failed_cell(shell, capsys, "--backend docker_run --no-cache", HUNGRY.replace("IMAGE", docker))
    explanation = "task ran out of memory: the kernel killed it at its memory limit of 64 MB"
    assert error.exit_code == 137 and explanation in error.message, error.message
    assert explanation in shown, shown
    assert explanation in _runs_table(shell, capsys)
