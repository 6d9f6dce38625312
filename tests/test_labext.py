"""The JupyterLab extension without a browser: the tokenizer's TypeScript unit tests (jest), the
server's `check` on cells whose imports live beside the notebook, and the wheel a user installs
(the prebuilt extension and the server extension's config file in it, as JupyterLab finds them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from display_fixtures import REPO
from lab_fixtures import labextension, node_modules, run_jlpm  # noqa: F401 - fixture

pytestmark = [pytest.mark.timeout(900)]


def test_tokenizer_unit_tests_pass():
    """src/__tests__/wdl.spec.ts: nested placeholders, >>> in heredocs, # in strings...;
    src/__tests__/format.spec.ts: sizes as `%wdl runs` prints them."""
    node_modules()
    run_jlpm("test")  # fails with jest's report when a test fails


def test_check_reads_imports_beside_the_notebook_and_reports_positions(tmp_path):
    from miniwdl_jupyter.labext.handlers import check_text

    (tmp_path / "lib.wdl").write_text(
        "version 1.1\ntask greet {\n  input { String name }\n  command <<< echo ~{name} >>>\n}\n"
    )
    good = '\nversion 1.1\nimport "lib.wdl"\nworkflow w {\n  call lib.greet { input: name = "x" }\n}\n'
    assert check_text(good, tmp_path, "cell") == []
    wrong = good.replace('name = "x"', "name = 1 + true")
    [error] = check_text(wrong, tmp_path, "cell")
    assert (error["severity"], error["line"], error["column"]) == ("error", 5, 34), error
    assert "Non-numeric operand" in error["message"]
    missing = check_text(good.replace("lib.wdl", "nope.wdl"), tmp_path, "cell")
    assert missing[0]["line"] == 3 and "nope.wdl" in missing[0]["message"]
    # An error inside the imported file is reported on the import that brings it.
    (tmp_path / "lib.wdl").write_text(
        "version 1.1\ntask greet {\n  input { String name }\n  Boolean b = 1\n  command <<< >>>\n}\n"
    )
    [imported] = check_text(good, tmp_path, "cell")
    assert imported["line"] == 3 and "lib.wdl" in imported["message"], imported
    assert "Expected Boolean instead of Int" in imported["message"]
    # Lint findings of the cell itself, with their range.
    [warning] = check_text('\nversion 1.1\nworkflow w {\n  Int unused = 1\n}\n', tmp_path, "cell")
    assert warning["severity"] == "warning" and "UnusedDeclaration" in warning["message"]
    assert (warning["line"], warning["column"], warning["end_line"]) == (4, 3, 4)


@pytest.mark.slow
def test_wheel_ships_the_prebuilt_extension_and_enables_the_server_extension(labextension, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [wheel] = tmp_path.glob("miniwdl_jupyter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "miniwdl_jupyter-0.1.0.data/data/"
    ext = data + "share/jupyter/labextensions/miniwdl-jupyter/"
    assert ext + "package.json" in names and ext + "install.json" in names
    assert any(n.startswith(ext + "static/remoteEntry.") for n in names)
    assert data + "etc/jupyter/jupyter_server_config.d/miniwdl_jupyter.json" in names
    for packaged in ("miniwdl_jupyter/defaults.cfg", "miniwdl_jupyter/wdl/notebook.wdl", "miniwdl_jupyter/labext/handlers.py",
                     "miniwdl_jupyter/wes/openapi/workflow_execution_service.openapi.yaml"):
        assert packaged in names, packaged
    assert not any(n.startswith("miniwdl_jupyter/labextension/") for n in names), "the build is shared data, not package data"
    entry_points = zipfile.ZipFile(wheel).read("miniwdl_jupyter-0.1.0.dist-info/entry_points.txt").decode()
    assert "docker_run = miniwdl_jupyter.backends.docker_run:DockerRunContainer" in entry_points

    # Its data files laid out under a prefix as pip lays them: JupyterLab finds the extension there
    # (and tests/test_lab.py runs JupyterLab with the server extension enabled by the same file).
    prefix = tmp_path / "prefix"
    with zipfile.ZipFile(wheel) as archive:
        for name in names:
            if name.startswith(data) and not name.endswith("/"):
                target = prefix / name[len(data):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
    env = dict(os.environ, JUPYTER_PATH=str(prefix / "share" / "jupyter"))
    listed = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, env=env)
    sections, current = {}, None
    for line in (listed.stdout + listed.stderr).splitlines():
        if line.startswith("/"):
            current = line.strip()
        elif current and line.strip():
            sections.setdefault(current, []).append(line)
    ours = sections.get(str(prefix / "share" / "jupyter" / "labextensions"), [])
    assert any("miniwdl-jupyter" in l and "enabled" in l and "OK" in l for l in ours), listed.stdout + listed.stderr
    config = json.loads((prefix / "etc" / "jupyter" / "jupyter_server_config.d" / "miniwdl_jupyter.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"miniwdl_jupyter.labext": True}}}
