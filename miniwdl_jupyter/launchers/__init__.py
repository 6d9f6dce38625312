"""Launchers start a run's miniwdl process somewhere: here (`local`), as a SLURM job, as an AWS
Batch job, on a WES server. A registry, like papermill's engines: built-ins plus the entry-point
group `miniwdl_jupyter.launchers`. The launch record names its launcher, so any later process
(a restarted kernel, `%wdl runs`, a monitor on another host) asks the same launcher whether the
run is alive and how to cancel it.
"""

# The interface and registry live in miniwdl_jupyter.launcher, below the runs layer that uses them;
# this folder holds the launchers themselves.
from ..launcher import ENTRY_POINT_GROUP, Launcher, available, get_launcher

__all__ = ["ENTRY_POINT_GROUP", "Launcher", "available", "get_launcher"]
