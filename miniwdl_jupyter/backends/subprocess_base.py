"""The base our backends share: miniwdl's SubprocessBase with a thread-safe resource detection.

miniwdl memoizes the host's cpu/memory in `detect_resource_limits` *before* it initializes the
scheduler those limits feed, so tasks starting together can reach the scheduler uninitialized
(AttributeError '_cv'). A lock around the first detection closes that window.
"""

from __future__ import annotations

import logging
import threading
from typing import Dict

from WDL.runtime import config
from WDL.runtime.backend.cli_subprocess import SubprocessBase

_detect_lock = threading.Lock()


class ScheduledSubprocessBase(SubprocessBase):
    @classmethod
    def detect_resource_limits(cls, cfg: config.Loader, logger: logging.Logger) -> Dict[str, int]:
        with _detect_lock:
            return super().detect_resource_limits(cfg, logger)
