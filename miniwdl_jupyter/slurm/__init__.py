"""Everything SLURM: the `slurm` container backend (backend.py, its job script in script.py and
per-call settings in settings.py), talking to slurmctld (jobs.py), the `--submit slurm` launcher
(launcher.py) and the notebook side's cleanup of a run's jobs (companion.py)."""
