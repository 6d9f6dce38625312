"""binder/ as mybinder.org would use it: build its environment in a fresh virtual environment from
a clean copy of the repository (requirements.txt, then postBuild), hide Docker as Binder does, and
execute every notebook in notebooks/ with papermill.

The virtual environment starts empty (never the machine's site-packages): Binder installs today's
releases, and so does this test.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, copy_repository, fresh_venv_env

# Notebooks for a deployment that Binder is not (SageMaker Studio: AWS Batch and EFS) are run by
# their own tests against the services they need (tests/test_studio.py).
NEEDS_SERVICES = {"sagemaker_studio.ipynb"}
NOTEBOOKS = sorted(p.relative_to(REPO) for p in (REPO / "notebooks").glob("*.ipynb") if p.name not in NEEDS_SERVICES)
NO_DOCKER = '#!/bin/sh\necho "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" >&2\nexit 1\n'


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{command} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A clean copy of the repository and a virtual environment built as binder/ says."""
    root = tmp_path_factory.mktemp("binder")
    repo = copy_repository(root / "repo")
    venv = root / "venv"
    env = fresh_venv_env(venv, root / "home")
    fake_bin = root / "no-docker-bin"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text(NO_DOCKER)
    (fake_bin / "docker").chmod(0o755)
    env["PATH"] = f"{fake_bin}:{env['PATH']}"
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], cwd=repo, env=env)
    run(["bash", "binder/postBuild"], cwd=repo, env=env)
    # The notebooks' kernel must be this environment's Python: jupyter_client runs a kernelspec
    # whose command is plain "python" with the Python that runs papermill.
    specs = json.loads(run([python, "-m", "jupyter", "kernelspec", "list", "--json"], env=env).stdout)["kernelspecs"]
    argv0 = specs["python3"]["spec"]["argv"][0]
    assert argv0 == "python" or argv0.startswith(str(venv)), f"python3 kernel runs {argv0}"
    return {"python": python, "env": env, "repo": repo, "root": root}


@pytest.mark.slow
def test_postbuild_installs_the_package_with_local_as_default(binder_env):
    probe = run(
        [binder_env["python"], "-c", "import json, miniwdl_jupyter, miniwdl_jupyter.config as c; cfg = c.load(); "
         "print(json.dumps([miniwdl_jupyter.__file__, cfg['jupyter']['backend'], cfg['scheduler']['container_backend']]))"],
        env=binder_env["env"], cwd=binder_env["root"],
    )
    module_file, jupyter_backend, miniwdl_backend = json.loads(probe.stdout)
    assert module_file.startswith(str(binder_env["root"] / "venv")), "installed into the fresh environment, not the checkout"
    assert (jupyter_backend, miniwdl_backend) == ("local", "local")


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=str)
def test_notebook_runs_under_papermill_without_docker(binder_env, notebook):
    workdir = binder_env["root"] / f"run-{notebook.stem}"
    workdir.mkdir()
    executed = workdir / notebook.name
    run(
        [binder_env["python"], "-m", "papermill", str(binder_env["repo"] / notebook), str(executed), "--cwd", str(workdir), "-k", "python3"],
        env=binder_env["env"],
    )
    cells = json.loads(executed.read_text())["cells"]
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    logs = list(workdir.glob("wdl_runs/*/workflow.log")) + list(workdir.glob("wdl_runs/*/task.log"))
    assert logs, "the notebook started no run"
    assert all("local backend initialized" in log.read_text() for log in logs), "runs used the local backend"


def test_the_readme_quickstart_notebook_is_among_those_run():
    # README's "On a fresh machine" runs `papermill notebooks/quickstart.ipynb ... -p backend local`:
    # that notebook is one of those executed above, and it has the parameter the command sets.
    quickstart = Path("notebooks/quickstart.ipynb")
    assert quickstart in NOTEBOOKS
    assert f"papermill {quickstart} " in (REPO / "README.md").read_text()
    cells = json.loads((REPO / quickstart).read_text())["cells"]
    parameters = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(parameters) == 1 and "backend" in "".join(parameters[0]["source"])
