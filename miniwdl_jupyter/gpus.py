"""This machine's GPUs, what a task asks for, and how a task is shown only its own.

miniwdl's local Docker backend does not schedule GPUs (miniwdl #631): every `gpu: true` task got
all of them, so two tasks shared a device and ran out of its memory. The `local` and `docker_run`
backends now reserve devices per task (gpu_reservation.py) from the list found here, and show each
task only its devices (the environment below for `local`, `--gpus "device=N"` for `docker_run`).

Discovery asks `nvidia-smi` (installed with the NVIDIA driver, wherever the driver is), unless
`[jupyter] gpus` names the devices: a count, or a JSON list of device ids (indices, GPU UUIDs, MIG
instance UUIDs), which is also how GPUs nvidia-smi does not list are scheduled. None found: none
scheduled, and GPU tasks run as before (the machine's GPUs, if any, with a warning).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from WDL import Error, Type, Value
from WDL.runtime import config

from . import config as jupyter_config
from .errors import BackendError, ConfigError

_logger = logging.getLogger("miniwdl_jupyter.gpus")
# The runtime keys that ask for a number of GPUs (gpuCount: Cromwell's and WDL 1.1's hints;
# acceleratorCount: Cromwell on Google), besides `gpu: true` (one device).
COUNT_KEYS = ("gpuCount", "acceleratorCount")
# What the CUDA driver and runtime may need that the local backend's minimal environment lacks.
DRIVER_ENVIRONMENT = ("LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH", "CUDA_CACHE_PATH")
# The devices a scheduler gave a job (SLURM's gres sets these): a task run in the job's own
# environment must keep them, or it sees every GPU of the node.
SCHEDULER_DEVICE_ENVIRONMENT = ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES")
NVIDIA_SMI_QUERY = ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class Gpu:
    id: str  # what CUDA_VISIBLE_DEVICES and `docker run --gpus device=` take: an index or a UUID
    uuid: str = ""
    name: str = ""
    memory_mib: Optional[int] = None


def machine_gpus(cfg: config.Loader) -> List[Gpu]:
    """The devices tasks may reserve: `[jupyter] gpus` if set, else what nvidia-smi lists."""
    configured = str(jupyter_config.option(cfg, "jupyter", "gpus")).strip()
    if configured:
        return _configured_gpus(configured)
    return list(_nvidia_smi_gpus(shutil.which("nvidia-smi")))


def _configured_gpus(text: str) -> List[Gpu]:
    if text.isdigit():
        return [Gpu(str(index)) for index in range(int(text))]
    try:
        ids = json.loads(text)
    except ValueError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, (str, int)) and str(i).strip() for i in ids):
        raise ConfigError(
            f"[jupyter] gpus = {text!r}: give a count (e.g. 2, or 0 for none) or a JSON list of device "
            'ids (e.g. [0, 2] or ["MIG-..."]); leave it empty to ask nvidia-smi'
        )
    return [Gpu(str(i).strip()) for i in ids]


@functools.lru_cache(maxsize=8)  # once per process (and per nvidia-smi found): the devices don't move
def _nvidia_smi_gpus(exe: Optional[str]) -> Tuple[Gpu, ...]:
    if exe is None:
        return ()
    try:
        proc = subprocess.run([exe, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exn:
        _logger.warning("nvidia-smi did not answer (%s): no GPUs are scheduled", exn)
        return ()
    if proc.returncode != 0:  # e.g. "couldn't communicate with the NVIDIA driver"
        _logger.warning("nvidia-smi failed (%s): no GPUs are scheduled", (proc.stdout + proc.stderr).strip()[:200])
        return ()
    found = []
    for line in proc.stdout.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 4 and fields[0].isdigit():
            memory = fields[3].split()[0] if fields[3] else ""
            found.append(Gpu(fields[0], fields[1], fields[2], int(memory) if memory.isdigit() else None))
    return tuple(found)


def read_request(runtime_values: Dict[str, Any], runtime_eval: Dict[str, Value.Base]) -> None:
    """Add `gpu_count` (and `gpu`) to a task's runtime values: gpuCount / acceleratorCount when
    set above 0 (as aws_batch reads them), else one device for `gpu: true` (miniwdl reads only that
    key; WDL 1.2 `requirements { gpu: true }` arrives the same way)."""
    count = 0
    for key in COUNT_KEYS:
        if key in runtime_eval:
            try:
                count = max(count, runtime_eval[key].coerce(Type.Int()).value)
            except Exception:
                raise Error.RuntimeError(f"invalid setting of runtime.{key}: give a whole number of GPUs") from None
    if count > 0:
        runtime_values["gpu"] = True
    if runtime_values.get("gpu", False):
        runtime_values["gpu_count"] = max(count, 1)


def check_fits(runtime_values: Dict[str, Any], gpus: List[Gpu]) -> None:
    """A task asking for more GPUs than the machine has would wait forever: fail it now."""
    wanted = runtime_values.get("gpu_count", 0)
    if gpus and wanted > len(gpus):
        raise BackendError(
            f"the task asks for {wanted} GPUs but this machine has {len(gpus)} "
            f"({', '.join(g.id for g in gpus)}): ask for at most {len(gpus)} (runtime gpuCount), run it "
            "where more GPUs are (the slurm or aws_batch backend), or correct [jupyter] gpus"
        )


def share_with_all(cfg: config.Loader) -> bool:
    """`[jupyter] gpu_share`: tasks that ask for no GPU see the machine's GPUs (as before scheduling)."""
    return bool(jupyter_config.option(cfg, "jupyter", "gpu_share", "bool"))


def local_environment(device_ids: List[str], wants_gpu: bool, share: bool) -> Dict[str, str]:
    """The variables a command on this machine needs to see exactly `device_ids`. Indices are
    nvidia-smi's, which count in PCI bus order: CUDA's own default order (fastest first) may differ,
    so CUDA_DEVICE_ORDER says which. A task that asked for no GPU sees none (empty lists), unless
    `share`; a GPU task on a machine where none were found is left to see what it can."""
    if device_ids:
        listed = ",".join(device_ids)
        env = {"CUDA_VISIBLE_DEVICES": listed, "NVIDIA_VISIBLE_DEVICES": listed, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        env.update({key: os.environ[key] for key in DRIVER_ENVIRONMENT if key in os.environ})
        return env
    if wants_gpu:
        return {key: os.environ[key] for key in DRIVER_ENVIRONMENT if key in os.environ}
    return {} if share else {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": ""}


def docker_flags(gpu_flags: List[str], device_ids: List[str]) -> List[str]:
    """`[docker_run] gpu_flags` narrowed to the reserved devices: `--gpus all` becomes
    `--gpus "device=2,3"` (the quotes are part of the value: docker reads it as CSV, where a comma
    would split it), and a CDI `--device vendor/gpu=all` one `--device vendor/gpu=N` per device.
    Other flags are passed as they are."""
    if not device_ids:
        return list(gpu_flags)
    narrowed: List[str] = []
    for index, flag in enumerate(gpu_flags):
        previous = gpu_flags[index - 1] if index else ""
        if flag == "all" and previous == "--gpus":
            narrowed.append(f'"device={",".join(device_ids)}"')
        elif flag == "--gpus=all":
            narrowed.append(f'--gpus="device={",".join(device_ids)}"')
        elif flag.endswith("=all") and previous == "--device":
            narrowed.pop()
            for device in device_ids:
                narrowed += ["--device", flag[: -len("all")] + device]
        else:
            narrowed.append(flag)
    return narrowed


def docker_hidden_flags() -> List[str]:
    """For a task that asked for no GPU: no device even under a daemon whose default runtime is
    NVIDIA's and an image that sets NVIDIA_VISIBLE_DEVICES=all (the CUDA images do)."""
    return ["--env", "NVIDIA_VISIBLE_DEVICES=void", "--env", "CUDA_VISIBLE_DEVICES="]
