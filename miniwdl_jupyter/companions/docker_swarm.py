"""miniwdl's own docker_swarm backend, seen from the notebook: usable when Docker answers (it is
not `auto`'s choice: docker_run is). Its services are miniwdl's to remove; a killed run's leave
with the swarm's own cleanup, so there is nothing for us to stop."""

from __future__ import annotations

from WDL.runtime.config import Loader

from . import Companion
from .docker_run import docker_answers


class DockerSwarmCompanion(Companion):
    name = "docker_swarm"

    def usable(self, cfg: Loader) -> bool:
        return docker_answers()
