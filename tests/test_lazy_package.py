"""The package's import shape (docs/design.md, "Layers"): `import miniwdl_jupyter` stays light
(no runs layer, no IPython), and miniwdl loading one of our backend plugins, as in a plain
`miniwdl run`, does not pull in the runs layer, its clean-up or another backend. Each check runs
in a fresh interpreter, where sys.modules shows exactly what an import brought in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

RUNS_LAYER = ["miniwdl_jupyter.runs", "miniwdl_jupyter.leftovers", "miniwdl_jupyter.monitor", "miniwdl_jupyter.companions", "IPython"]


def modules_after(code: str) -> set:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_importing_the_package_imports_neither_the_runs_layer_nor_ipython():
    loaded = modules_after("import miniwdl_jupyter")
    assert not loaded & set(RUNS_LAYER), sorted(loaded & set(RUNS_LAYER))


@pytest.mark.parametrize(
    "backend, unrelated",
    [
        ("local", "miniwdl_jupyter.backends.docker_run"),
        ("docker_run", "miniwdl_jupyter.backends.local"),
        # slurm composes the node runtimes' modules (container_cli, host_task), not their backends
        ("slurm", "miniwdl_jupyter.backends.docker_run"),
        ("slurm", "miniwdl_jupyter.backends.local"),
        # aws_batch: the aws/ package's backend, without its launcher, submit CLI or mirror
        ("aws_batch", "miniwdl_jupyter.backends.docker_run"),
        ("aws_batch", "miniwdl_jupyter.aws.launcher"),
    ],
)
def test_miniwdl_loading_a_backend_plugin_does_not_import_the_runs_layer(backend, unrelated):
    # as miniwdl does: the entry point of `miniwdl.plugin.container_backend`, loaded by name
    loaded = modules_after(
        "from importlib.metadata import entry_points\n"
        f"[ep] = [ep for ep in entry_points(group='miniwdl.plugin.container_backend') if ep.name == {backend!r}]\n"
        "ep.load()"
    )
    assert not loaded & set(RUNS_LAYER + [unrelated]), sorted(loaded & set(RUNS_LAYER + [unrelated]))


def test_the_public_api_is_still_there():
    loaded = modules_after(
        "import miniwdl_jupyter as mj\n"
        "assert callable(mj.run) and callable(mj.attach) and callable(mj.list_runs) and isinstance(mj.Run, type)\n"
        "assert callable(mj.run_notebook) and callable(mj.build_image) and callable(mj.load_ipython_extension)\n"
        "assert issubclass(mj.TaskFailed, mj.RunFailed)\n"
        "from miniwdl_jupyter import Run, run\n"
        "assert Run is mj.Run and run is mj.run"
    )
    assert "miniwdl_jupyter.runs" in loaded, "the runs layer comes when its API is used"
