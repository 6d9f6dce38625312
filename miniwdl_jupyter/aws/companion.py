"""aws_batch's companion: what the runs layer asks about the backend from the notebook's side
(docs/design.md, "Adding a backend"): its settings checked before a run starts (in SageMaker
Studio, after discovery), its tasks run on Batch's hosts, and a killed run's task jobs terminated
through the API, found by their name prefix, against the endpoint the run was launched with.

Registered as the built-in companion of `aws_batch` in miniwdl_jupyter/companions/."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict

from WDL.runtime.config import Loader

from ..companions import Companion

_logger = logging.getLogger("miniwdl_jupyter.aws.companion")


class AwsBatchCompanion(Companion):
    name = "aws_batch"
    runs_elsewhere = True

    def preflight(self, cfg: Loader) -> None:
        from .settings import preflight

        preflight(cfg)

    def stop_leftovers(self, run_dir: Path, record: Dict[str, Any], cfg: Loader) -> int:
        from .api import settings_of
        from .jobs import stop_run_jobs

        stopped = stop_run_jobs(cfg, str(run_dir), record.get("task_queues"), settings_of(record))
        if stopped:
            _logger.info("terminated %d AWS Batch job(s) left by %s", len(stopped), run_dir)
        return len(stopped)
