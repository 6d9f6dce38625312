"""docs/notebook_steps.md's options end to end on a real Docker daemon and the loopback registry:
run_notebook(kernel=, dir=, push=), `[notebook_steps] push`, `build_log_dir` and `repository`, and
`%wdl build -r FILE --push REGISTRY` through a real IPython shell."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import nbformat

from miniwdl_jupyter import images
from miniwdl_jupyter.steps import run_notebook
from steps_fixtures import STEP_REQUIREMENTS, notebook, registry, step_image  # noqa: F401 - fixtures


def registry_tags(address: str, repository: str) -> list:
    with urllib.request.urlopen(f"http://{address}/v2/{repository}/tags/list", timeout=10) as response:
        return json.load(response)["tags"]


def untag(*tags: str) -> None:
    for tag in tags:
        subprocess.run(["docker", "image", "rm", tag], capture_output=True)


def test_run_notebook_with_kernel_dir_and_push(step_image, registry, workdir):
    step = run_notebook(
        notebook("other_kernel.ipynb"),
        {"sample": "k"},
        requirements=STEP_REQUIREMENTS,
        base_image=step_image.base,
        push=registry,
        kernel="python3",
        dir="steps/with-kernel",
    )
    try:
        assert step.returncode == 0, step.stderr_tail
        # push=: the step ran on the pushed name, which the registry holds.
        assert step.image == f"{registry}/{step_image.tag}"
        repository, version = step.image.split("/", 1)[1].rsplit(":", 1)
        assert version in registry_tags(registry, repository)
        # dir=: the run goes under the folder named (relative to the working directory).
        assert step.run.run_dir.parent == workdir / "steps" / "with-kernel"
        assert step.executed_notebook.is_relative_to(step.run.run_dir)
        # kernel=: the notebook's own kernelspec (conda-env-analysis-py) is not looked for.
        assert not any("is not in the image" in line for line in step.stderr_tail), step.stderr_tail
        assert any("executing other_kernel on kernel python3" in line for line in step.stderr_tail), step.stderr_tail
        executed = nbformat.read(step.executed_notebook, as_version=4)
        assert "kernel python /opt/notebook-step/bin/python" in "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    finally:
        untag(step.image)


def test_repository_and_build_log_dir_settings(step_image, workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__NOTEBOOK_STEPS__REPOSITORY", "team/analysis-steps")
    monkeypatch.setenv("MINIWDL__NOTEBOOK_STEPS__BUILD_LOG_DIR", str(workdir / "build-logs"))
    lines: list = []
    tag = images.build_image(STEP_REQUIREMENTS, base_image=step_image.base, log=lines.append)
    try:
        # Same content, same hash: only the repository part of the tag follows the setting.
        assert tag == "team/analysis-steps:" + step_image.tag.rsplit(":", 1)[1]
        logs = list((workdir / "build-logs").iterdir())
        assert len(logs) == 1 and tag.replace("/", "_").replace(":", "_") in logs[0].name, logs
        kept = logs[0].read_text()
        assert kept.splitlines()[0].startswith(f"# building {tag} from {step_image.base}")
        assert kept.splitlines() == lines, "the kept log is what streamed to log="
    finally:
        untag(tag)


def test_push_setting_pushes_every_build(step_image, registry, workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__NOTEBOOK_STEPS__PUSH", registry)
    remote = images.build_image(STEP_REQUIREMENTS, base_image=step_image.base)
    try:
        assert remote == f"{registry}/{step_image.tag}"
        repository, version = remote.split("/", 1)[1].rsplit(":", 1)
        assert version in registry_tags(registry, repository)
    finally:
        untag(remote)


def test_build_magic_with_a_requirements_file_and_push(step_image, registry, shell, workdir, capsys):
    (workdir / "requirements.txt").write_text("# what the step needs\npypng\n")
    untag(f"{registry}/{step_image.tag}")
    assert shell.run_cell(f"%wdl build -r requirements.txt --base {step_image.base} --push {registry}").success
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    try:
        assert printed == f"{registry}/{step_image.tag}", "the same requirements as the shared image: its hash"
        repository, version = printed.split("/", 1)[1].rsplit(":", 1)
        assert version in registry_tags(registry, repository)
        assert subprocess.run(["docker", "image", "inspect", printed], capture_output=True).returncode == 0
    finally:
        untag(printed)
