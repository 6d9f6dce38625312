"""Notebook-step image builds on a real Docker daemon: content-addressed tags, cache hits, pip
settings kept out of the image, failing builds, push to a loopback registry and run from it."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from miniwdl_jupyter import config, images
from miniwdl_jupyter.errors import BackendError, ConfigError
from miniwdl_jupyter.steps import run_notebook
from steps_fixtures import STEP_REQUIREMENTS, notebook, registry, step_image  # noqa: F401 - fixtures


def docker_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


def test_tag_ignores_order_comments_and_blanks_but_not_content():
    base = "sha256:" + "0" * 64
    one = images.normalize_requirements(["pandas==2.2  # tables", "", "pypng"])
    other = images.normalize_requirements(["pypng", "pandas==2.2"])
    assert one == other == ["pandas==2.2", "pypng"]
    assert images.image_hash(base, one) == images.image_hash(base, other)
    assert images.image_hash(base, one) != images.image_hash(base, ["pandas==2.1", "pypng"])
    assert images.image_hash(base, one) != images.image_hash("sha256:" + "1" * 64, one)
    assert images.normalize_requirements("pypng") == ["pypng"], "a bare string is one requirement"
    with pytest.raises(ConfigError, match="names another file"):
        images.normalize_requirements(["pypng", "-r base.txt"])


def test_pip_settings_keep_remote_indexes_and_copy_the_certificate(tmp_path: Path):
    cert = tmp_path / "corp-ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    settings = {
        "index-url": "https://user:secret@pypi.corp.example/simple",
        "extra-index-url": "file:///opt/pypi/simple https://mirror.example/simple",
        "find-links": "/opt/wheels",
        "trusted-host": "pypi.corp.example",
        "cert": str(cert),
        "constraint": "/etc/pip/constraints.txt",
    }
    notes = images.write_pip_settings(settings, tmp_path / "ctx")
    conf = (tmp_path / "ctx" / "pip.conf").read_text()
    assert "index-url = https://user:secret@pypi.corp.example/simple" in conf
    assert "https://mirror.example/simple" in conf and "file:///opt/pypi" not in conf
    assert "trusted-host = pypi.corp.example" in conf and "/opt/wheels" not in conf
    assert "cert = /tmp/pip-settings/cert.pem" in conf
    assert (tmp_path / "ctx" / "cert.pem").read_text() == cert.read_text()
    assert "constraint" not in conf, "host-only files are not forwarded"
    assert any("file:///opt/pypi/simple" in n for n in notes) and any("/opt/wheels" in n for n in notes)


def test_cache_hit_does_not_rebuild(step_image):
    # How fast a hit is belongs to benchmarks/bench_images.py; here: no build runs at all.
    image_id = docker_cli("image", "inspect", "--format", "{{.Id}}", step_image.tag).stdout.strip()
    built_lines: list = []
    log_file = images.build_log_path(step_image.tag, config.load())
    log_before = log_file.stat().st_mtime_ns if log_file.exists() else None
    tag = images.build_image(list(reversed(STEP_REQUIREMENTS)) + ["# a comment"], base_image=step_image.base, log=built_lines.append)
    assert tag == step_image.tag
    assert built_lines == [], "a cache hit runs no build"
    assert (log_file.stat().st_mtime_ns if log_file.exists() else None) == log_before, "no build log was written"
    assert docker_cli("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip() == image_id


def test_image_has_the_step_tools_and_no_pip_settings(step_image):
    probe = docker_cli(
        "run", "--rm", step_image.tag, "sh", "-c",
        "python3 -c 'import papermill, nbconvert, png; print(papermill.__version__)'"
        " && jupyter kernelspec list --json && ls /tmp/pip-settings /etc/pip.conf 2>&1; true",
    )
    assert probe.returncode == 0, probe.stderr
    assert '"python3"' in probe.stdout
    assert probe.stdout.count("No such file or directory") == 2, probe.stdout
    history = docker_cli("image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", step_image.tag).stdout
    assert "pip-settings" not in history and "pip.conf" not in history
    labels = json.loads(docker_cli("image", "inspect", "--format", "{{json .Config.Labels}}", step_image.tag).stdout)
    assert labels[f"{images.LABEL_PREFIX}.requirements"] == "pypng"


def test_forwarded_pip_settings_leave_no_trace_in_the_image(step_image, monkeypatch, tmp_path):
    # A fixed marker keeps the builder stage in Docker's layer cache across test sessions.
    marker = "miniwdl-jupyter-secret-marker"
    # Markers that are harmless to pip and easy to find in a layer: a trusted host, and a comment
    # in a copy of the CA bundle pip uses here (PEM ignores text outside the certificates).
    monkeypatch.setenv("PIP_TRUSTED_HOST", f"{marker}.invalid")
    bundle = tmp_path / "ca-bundle.pem"
    host_cert = images.host_pip_settings().get("cert")
    bundle.write_text((Path(host_cert).read_text() if host_cert else "") + f"\n# {marker}-in-the-certificate\n")
    monkeypatch.setenv("PIP_CERT", str(bundle))
    settings = images.host_pip_settings()
    assert settings["trusted-host"] == f"{marker}.invalid" and settings["cert"] == str(bundle)
    # A requirement set of its own, so this really builds (index settings are not in the tag).
    tag = images.build_image(["pypng==0.20220715.0"], base_image=step_image.base)
    try:
        saved = subprocess.run(["docker", "save", tag], capture_output=True, timeout=300)
        assert saved.returncode == 0 and len(saved.stdout) > 10_000_000
        assert marker.encode() not in saved.stdout, "neither pip.conf nor the CA bundle is in a layer"
    finally:
        docker_cli("image", "rm", tag)


def test_nonexistent_requirement_fails_fast_with_the_pip_error(step_image):
    missing = "miniwdl-jupyter-no-such-package-4711"
    with pytest.raises(BackendError) as info:
        images.build_image([missing], base_image=step_image.base)
    shown = str(info.value)
    assert f"No matching distribution found for {missing}" in shown
    assert "build log: " in shown
    log_path = Path(shown.split("build log: ")[1].strip())
    log_text = log_path.read_text()
    assert missing in log_text
    # The runtime and tooling layers come from Docker's cache (the shared image built them): only
    # the failing pip step ran. Each step the classic builder takes from its cache says so.
    steps = [line for line in log_text.splitlines() if line.startswith("Step ")]
    assert log_text.count("---> Using cache") >= 2, log_text[-3000:]
    assert "requirements" in steps[-1], steps


def test_magic_arguments_read_a_requirements_file(step_image, tmp_path: Path):
    req = tmp_path / "requirements.txt"
    req.write_text("# the step's packages\npypng\n")
    assert images.build_from_magic_args(None, str(req), step_image.base, None) == step_image.tag
    assert images.build_from_magic_args(["pypng"], None, step_image.base, None) == step_image.tag
    with pytest.raises(ConfigError, match="requirements file not found"):
        images.build_from_magic_args(None, str(tmp_path / "missing.txt"), None, None)


def test_build_magic_prints_the_tag(step_image, shell, capsys):
    shell.run_line_magic("wdl", f"build pypng --base {step_image.base}")
    assert capsys.readouterr().out.strip().splitlines()[-1] == step_image.tag


def test_no_daemon_is_a_backend_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(BackendError, match="no Docker daemon answers"):
        images.build_image(["pypng"])


def test_push_to_loopback_registry_and_run_from_it(step_image, registry, workdir):
    remote = images.build_image(STEP_REQUIREMENTS, base_image=step_image.base, push=registry)
    repository, version = remote.rsplit(":", 1)
    assert remote == f"{registry}/{step_image.tag}"
    with urllib.request.urlopen(f"http://{registry}/v2/{repository.split('/', 1)[1]}/tags/list", timeout=10) as r:
        assert version in json.load(r)["tags"]
    # Drop the local name so the run has to pull it from the registry.
    assert docker_cli("image", "rm", remote).returncode == 0
    step = run_notebook(notebook("compute.ipynb"), {"sample": "pushed"}, image=remote)
    assert step.returncode == 0
    assert "sample=pushed" in "\n".join(step.stdout_tail)
    digests = docker_cli("image", "inspect", "--format", "{{json .RepoDigests}}", remote)
    assert digests.returncode == 0 and registry in digests.stdout, "the image came from the registry"
