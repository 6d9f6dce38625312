"""Fixtures for the notebook-step tests: one shared step image per session, the loopback registry.

Import what a test module needs: `from steps_fixtures import step_image, registry, ...`.
The image is built once (the first build of a session on a fresh machine takes a minute or two;
afterwards it is a cache hit) from the provisioned base image with one small requirement, pypng,
which is enough for a notebook to write a real PNG.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import DATA, require
from miniwdl_jupyter import images

STEPS_DATA = DATA / "steps"
STEP_REQUIREMENTS = ["pypng"]
REGISTRY = os.environ.get("MINIWDL_JUPYTER_TEST_REGISTRY", "127.0.0.1:5055")


@dataclass
class StepImage:
    tag: str
    base: str


@pytest.fixture(scope="session")
def step_image(docker: str) -> StepImage:
    return StepImage(images.build_image(STEP_REQUIREMENTS, base_image=docker), docker)


def registry_answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def registry() -> str:
    """The loopback registry started by .ci/provision; returns its address."""
    require("the loopback registry", registry_answers(REGISTRY), f"no registry answers at {REGISTRY} (start it with .ci/provision)")
    return REGISTRY


def notebook(name: str) -> Path:
    return STEPS_DATA / name
