"""aws_batch's companion (thin, over today's backend modules, until the aws/ package has its own):
settings checked before a run starts; its tasks run on Batch's hosts; a killed run's task jobs
are terminated through the API (found by their name prefix)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict

from WDL.runtime.config import Loader

from . import Companion

_logger = logging.getLogger("miniwdl_jupyter.companions.aws_batch")


class AwsBatchCompanion(Companion):
    name = "aws_batch"
    runs_elsewhere = True

    def preflight(self, cfg: Loader) -> None:
        from ..backends.batch_settings import preflight

        preflight(cfg)

    def stop_leftovers(self, run_dir: Path, record: Dict[str, Any], cfg: Loader) -> int:
        from ..backends.batch_jobs import stop_run_jobs

        settings = {"region": record["aws_region"], "endpoint_url": record.get("aws_endpoint_url", "")} if record.get("aws_region") else None
        stopped = stop_run_jobs(cfg, str(run_dir), record.get("task_queues"), settings)
        if stopped:
            _logger.info("terminated %d AWS Batch job(s) left by %s", len(stopped), run_dir)
        return len(stopped)
