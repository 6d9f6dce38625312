"""Launchers start the miniwdl process of a run somewhere: here (local), a SLURM job, an AWS Batch job.

Each one takes the `miniwdl run` command line built by `runs.py` and returns the fields it adds to
the run's launch record; stopping a run goes through `cancel(record)`.
"""
