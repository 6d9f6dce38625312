"""The README's first command, exactly as written, as a new user runs it: in a fresh virtual
environment (today's releases from the package index, nothing from this machine's site-packages),
a clean copy of the repository (no build of the JupyterLab extension in it), an empty HOME and no
Node.js on PATH; then the executed quickstart notebook's outputs are checked, and JupyterLab,
installed next to it as a JupyterLab user would, lists the extension and the server extension.

The command is read from README.md, so this test breaks when the README changes and no longer
matches what is checked here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from conftest import REPO, copy_repository, fresh_venv_env, without_node

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def readme_first_command() -> str:
    """The first ```bash block of README.md."""
    found = re.search(r"^```bash\n(.*?)^```", (REPO / "README.md").read_text(), re.MULTILINE | re.DOTALL)
    assert found, "README.md has no ```bash block"
    return found.group(1).strip()


def papermill_paths(command: str) -> tuple:
    words = shlex.split(command)
    assert "papermill" in words, f"the README's first command no longer runs papermill: {command}"
    at = words.index("papermill")
    return words[at + 1], words[at + 2]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_readme_first_command_in_a_fresh_venv(tmp_path):
    command = readme_first_command()
    _, executed = papermill_paths(command)
    repo = copy_repository(tmp_path / "repo")
    assert not (repo / "miniwdl_jupyter" / "labextension").exists()
    env = without_node(fresh_venv_env(tmp_path / "venv", tmp_path / "home"), tmp_path / "no-node")

    proc = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=1400)
    versions = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "python"), "-c",
         "import IPython, miniwdl_jupyter; print(IPython.__version__, miniwdl_jupyter.__file__)"],
        env=env, cwd=tmp_path, capture_output=True, text=True,  # not this checkout's folder
    ).stdout.split()
    assert proc.returncode == 0, f"`{command}` failed (IPython {versions[:1]}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert versions and versions[1].startswith(str(repo)), f"the package was not installed from the copy: {versions}"

    cells = json.loads((repo / executed).read_text())["cells"]
    outputs = [o for c in cells for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, "\n".join(line for e in errors for line in e["traceback"])
    printed = "".join("".join(o["text"]) if isinstance(o.get("text"), list) else o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "succeeded" in printed
    assert "sample,size\nalpha,15\nbeta,12\ngamma,15" in printed, printed
    # The last cell, `%wdl runs`, lists the run; the run used the local backend the command asked for.
    runs_table = json.dumps(cells[-1].get("outputs", []))
    assert "report" in runs_table and "succeeded" in runs_table
    logs = list((repo / "wdl_runs").glob("*_report/workflow.log"))
    assert len(logs) == 1 and "local backend initialized" in logs[0].read_text()

    # JupyterLab finds the extension the install built and the server extension it enabled.
    lab = subprocess.run(["pip", "install", "-q", "jupyterlab>=4"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert lab.returncode == 0, lab.stderr[-3000:]
    listed = subprocess.run(["jupyter", "labextension", "list"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lab_extensions = ANSI.sub("", listed.stdout + listed.stderr)
    assert re.search(r"miniwdl-jupyter v\S+ enabled OK", lab_extensions), lab_extensions
    listed = subprocess.run(["jupyter", "server", "extension", "list"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    server_extensions = ANSI.sub("", listed.stdout + listed.stderr)
    assert re.search(r"miniwdl_jupyter\.labext enabled\n.*\n\s+miniwdl_jupyter\.labext\s+OK", server_extensions), server_extensions
