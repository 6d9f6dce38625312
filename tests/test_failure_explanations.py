"""What a backend knows about a failed task (a SLURM time limit, the kernel's OOM killer) reaches the
user: the cell's TaskFailed, the progress summary, `%wdl runs` and the saved run record, through a
real IPython shell on the real SLURM cluster and the real Docker daemon."""

from __future__ import annotations

import pytest

from miniwdl_jupyter.errors import TaskFailed

from slurm_fixtures import slurm_cluster  # noqa: F401 (a fixture)

OVER_TIME = """version 1.1
workflow limits {
  call slow
}
task slow {
  command <<< echo napping; sleep 600 >>>
  runtime { time_minutes: 1 }
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
    """One test over a time limit: SLURM's granularity is a minute."""
    monkeypatch.setenv("MINIWDL__SLURM__RUNTIME", "none")
    error, shown = _failed_cell(shell, capsys, "--backend slurm", OVER_TIME)
    explanation = "task exceeded its time limit: SLURM ended job "
    assert explanation in error.message and "TIMEOUT (runtime.time_minutes = 1: 1:00)" in error.message, error.message
    assert error.reason and error.reason.startswith(explanation)
    assert explanation in "\n".join(error._render_traceback_())
    assert "call-slow failed" in shown and explanation in shown, shown  # the progress summary
    assert explanation in _runs_table(shell, capsys)


def test_out_of_memory_on_docker_run_says_so(docker, shell, capsys, monkeypatch):
    # docker_run gives a task `--memory` when miniwdl sets a memory limit: runtime.memory times this
    monkeypatch.setenv("MINIWDL__TASK_RUNTIME__MEMORY_LIMIT_MULTIPLIER", "1")
    error, shown = _failed_cell(shell, capsys, "--backend docker_run --no-cache", HUNGRY.replace("IMAGE", docker))
    explanation = "task ran out of memory: the kernel killed it at its memory limit of 64 MB"
    assert error.exit_code == 137 and explanation in error.message, error.message
    assert explanation in shown, shown
    assert explanation in _runs_table(shell, capsys)
