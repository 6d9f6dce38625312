"""What the slurm backend submits for one task attempt: the `sbatch` command line and the batch
script, which runs the command on the node in the configured node runtime, composed from the
runtime modules the other backends use: `docker`/`podman` through container_cli (docker_run's
invocation), `none` through host_task (the local backend's input staging, minimal environment and
`ulimit`), `apptainer`/`singularity` straight from the docker image with miniwdl's mounts.

The functions take the attempt's SlurmContainer (its runtime values, directories and settings).
"""

from __future__ import annotations

import logging
import math
import os
import shlex
from typing import Any, Dict, List, Optional

from .. import config as jupyter_config, gpus
from ..backends import container_cli, host_task
from ..backends.task_dir import run_dir_of, task_image, write_command_file
from ..backends.container_cli import Mount
from ..backends.task_usage import container_usage_mount, node_sampled_command, requested, sampled_container_command
from .jobs import run_comment


def sbatch_arguments(container: Any, settings: Dict[str, Any], script: str, job_log: str) -> List[str]:
    """`sbatch` command line for this attempt alone: its name, directory and output, then
    shape_arguments(), then the script."""
    return [
        "sbatch",
        "--parsable",
        f"--job-name={container_cli.container_name(container)}",
        f"--chdir={container.host_dir}",
        f"--output={job_log}",
        *shape_arguments(container, settings),
        script,
    ]


def shape_arguments(container: Any, settings: Dict[str, Any]) -> List[str]:
    """The sbatch options that sibling attempts share when they ask for the same (arrays.py):
    resources from the runtime section, placement from [slurm] settings, the run's comment;
    extra_args last so they can override anything."""
    values = container.runtime_values
    args = [
        f"--comment={run_comment(run_dir_of(container.host_dir))}",
        "--ntasks=1",
        "--no-requeue",  # a lost node becomes NODE_FAIL here, and miniwdl's retry policy applies
    ]
    cpu = values.get("cpu", 0)
    if cpu:
        args.append(f"--cpus-per-task={cpu}")
    memory = values.get("memory_reservation", 0)
    if memory:
        args.append(f"--mem={max(1, math.ceil(memory / 1048576))}M")
    if "time_minutes" in values:
        args.append(f"--time={values['time_minutes']}")
    gpu = values.get("gpu", False)
    if gpu:
        count = values.get("gpuCount", 1)
        kind = values.get("gpuType")
        args.append(f"--gres=gpu:{kind}:{count}" if kind else f"--gres=gpu:{count}")
    partition = (settings["gpu_partition"] if gpu else "") or settings["partition"]
    if partition:
        args.append(f"--partition={partition}")
    if settings["account"]:
        args.append(f"--account={settings['account']}")
    if settings["constraint"]:
        args.append(f"--constraint={settings['constraint']}")
    return args + [str(a) for a in settings["extra_args"]]


def job_script(container: Any, logger: logging.Logger, settings: Dict[str, Any], command: str) -> str:
    """The batch script: run the task in the background, stop it on SIGTERM (cancel, time
    limit), record its exit status atomically in the call directory, exit with it."""
    runtime = settings["runtime"]
    q = shlex.quote
    if runtime == "none":
        host_task.place_inputs(container)
        command_file = write_command_file(container.host_dir, command, host_task.task_env(container))
        # As the local backend: a minimal environment, as an image would give (plus the job's own
        # SLURM_* variables and the GPUs its gres gave it), not the submitting process's; `ulimit -d` under a memory_limit.
        # usage sampled beside the command on the node (task_usage.py)
        task = node_sampled_command(container.cfg, logger, container.host_dir, container.try_counter,
                                    host_task.invocation(container, command_file), requested(container.runtime_values))
        invocation = " ".join(q(a) for a in task)
        run = (
            "keep=()\n"
            f"for name in {' '.join(host_task.BASE_ENVIRONMENT + gpus.SCHEDULER_DEVICE_ENVIRONMENT)} $(compgen -e | grep '^SLURM_'); do\n"
            '  [ -n "${!name+x}" ] && keep+=("$name=${!name}")\n'
            "done\n"
            f'cd {q(container.host_work_dir())} && exec env -i "${{keep[@]}}" {invocation}'
            f" >> {q(container.host_stdout_txt())} 2>> {q(container.host_stderr_txt())}"
        )
        stop = ":"
    else:
        write_command_file(container.host_dir, command, container.runtime_values.get("env", {}))
        image = task_image(container.runtime_values)
        mounts = container.prepare_mounts()
        task = container_cli.container_command(container)
        # docker and podman put the container in a cgroup of its own, outside the job's: the
        # sampler reads it from inside, as docker_run and aws_batch do (task_usage.py)
        usage = runtime in ("docker", "podman") and container_usage_mount(
            container.cfg, container.host_dir, container.container_dir, container.try_counter
        )
        if usage:
            mounts.append(usage)
            task = sampled_container_command(container.cfg, task[-1], requested(container.runtime_values))
        invocation = container_invocation(container, logger, runtime, image, mounts) + task
        exe = " ".join(q(a) for a in container.cli_exe)
        if runtime in ("docker", "podman"):
            pull = f"{exe} image inspect {q(image)} >/dev/null 2>&1 || {exe} pull {q(image)} >/dev/null || exit 125"
            stop = f"{exe} rm -f {q(container.container_name)} >/dev/null 2>&1"
        else:
            pull = stop = ":"
        run = f"{pull}\nexec {' '.join(q(a) for a in invocation)}"
    return f"""#!/bin/bash
# One attempt of call {container.run_id}, submitted by miniwdl-jupyter's slurm backend ({runtime} on the node).
run_task() {{
{run}
}}
stop_task() {{
{stop}
}}
run_task &
task=$!
stopped=
trap 'stopped=1; stop_task; kill -TERM $task 2>/dev/null' TERM INT
wait $task
status=$?
# a trapped signal ends `wait` early: wait for the task itself
while kill -0 $task 2>/dev/null; do wait $task; status=$?; done
# A container the daemon was still creating when the signal came outlives its CLI: remove it too.
if [ -n "$stopped" ]; then sleep 1; stop_task; fi
{container.record_exit_status("status")}
exit $status
"""


def container_invocation(
    container: Any, logger: logging.Logger, runtime: str, image: str, mounts: Optional[List[Mount]] = None
) -> List[str]:
    """The node runtime's command line up to the command run inside the image; `mounts`:
    miniwdl's (prepare_mounts) unless given."""
    mounts = container.prepare_mounts() if mounts is None else mounts
    if runtime in ("docker", "podman"):
        return container_cli.invocation(container, logger, container.cli_exe, image, mounts)
    return apptainer_invocation(container, image, mounts)


def apptainer_invocation(container: Any, image: str, mounts: List[Mount]) -> List[str]:
    """`apptainer exec` (or singularity) with miniwdl's mounts, straight from the docker image."""
    args = container.cli_exe + ["exec", "--containall", "--pwd", os.path.join(container.container_dir, "work")]
    if container.runtime_values.get("gpu", False):
        args.append("--nv")
    for container_path, host_path, writable in mounts:
        args += ["--bind", f"{host_path}:{container_path}" + ("" if writable else ":ro")]
    source = image if image.startswith(("/", "docker://", "library://", "oras://")) else f"docker://{image}"
    return args + jupyter_config.option(container.cfg, "slurm", "apptainer_args", "list") + [source]
