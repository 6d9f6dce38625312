"""Per-attempt resource usage of a task command: the one sampler every backend uses.

This file is also a standalone script with no dependency beyond Python's standard library, so a
job script can run it beside a command with whatever python3 the node or image has:

    python3 usage_sampler.py OUT_JSON INTERVAL_SECONDS [FIELDS_JSON] -- COMMAND [ARG...]

It starts COMMAND as its child (same process group, same stdio), samples the group's resident
memory from /proc a few times early and then every INTERVAL_SECONDS, and when COMMAND exits writes
OUT_JSON (with FIELDS_JSON's fields added as they are: what the task asked for) and exits with COMMAND's status (or dies of COMMAND's signal). CPU time comes from the
kernel's exact account of the child and every descendant it reaped (wait4's rusage), so a short
task is measured as well as a long one. Images without python3 use `SHELL_SAMPLER` instead, which
reads the container's own cgroup counters (peak memory and CPU are kept by the kernel, so one read
at exit is exact).

Never fails a task: if the sampler cannot start the command it becomes the command (exec), and any
error while sampling or writing only loses the usage. A field it cannot read is absent.

The file (one per attempt, in the call directory; its name is protocol.usage_file's: usage.json, usage2.json...):
  peak_memory_bytes  cpu_seconds  wall_seconds  samples  source ("process_group" | "cgroup")
  started_at (epoch seconds)  and, where nvidia-smi answers for the task's GPUs (CUDA_VISIBLE_DEVICES),
  at the samples: gpu_memory_peak_bytes (memory in use on them), gpu_utilization_max_percent;
  from the backend: requested_cpu  requested_memory_bytes
"""

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

# Early samples catch short tasks; then one every INTERVAL seconds.
EARLY_SAMPLES = (0.2, 1.0, 2.0)


def _page_size():
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4096


class GroupSampler(object):
    """Resident memory of every process in a process group but the sampler's own, from /proc."""

    def __init__(self, pgid, exclude_pid):
        self.pgid = pgid
        self.exclude_pid = exclude_pid
        self.page = _page_size()
        self.peak_rss = None
        self.samples = 0
        self.gpu_memory_peak = None
        self.gpu_utilization_max = None
        self.nvidia_smi = _which("nvidia-smi")

    def sample(self):
        total = 0
        seen = False
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == self.exclude_pid:
                continue
            try:
                with open("/proc/%s/stat" % name, "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile, or not ours to read
            # after the ")" closing the command name: state ppid pgrp ... rss is the 22nd field
            if int(fields[2]) == self.pgid:
                total += int(fields[21]) * self.page
                seen = True
        if seen:
            self.samples += 1
            self.peak_rss = total if self.peak_rss is None else max(self.peak_rss, total)
        if self.nvidia_smi:
            self._sample_gpu()

    def _sample_gpu(self):
        """Memory in use and utilisation of the task's GPUs: those CUDA_VISIBLE_DEVICES names (by
        index or UUID, as the local backend's reservation sets it), or every GPU where it is unset."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = None if visible is None else {device.strip() for device in visible.split(",") if device.strip()}
        if devices == set():
            self.nvidia_smi = None  # the task was given no GPU
            return
        try:
            out = subprocess.check_output(
                [self.nvidia_smi, "--query-gpu=index,uuid,memory.used,utilization.gpu", "--format=csv,noheader,nounits"],
                stderr=subprocess.DEVNULL,
                timeout=5,
            )
        except Exception:
            self.nvidia_smi = None  # no GPU here after all: stop asking
            return
        rows = [[field.strip() for field in line.split(",")] for line in out.decode(errors="replace").splitlines()]
        rows = [row for row in rows if len(row) == 4 and (devices is None or row[0] in devices or row[1] in devices)]
        memory = [int(row[2]) for row in rows if row[2].isdigit()]  # MiB; "[N/A]" where not supported
        utilization = [int(row[3]) for row in rows if row[3].isdigit()]
        if memory:
            self.gpu_memory_peak = max(sum(memory) * 1024 * 1024, self.gpu_memory_peak or 0)
        if utilization:
            self.gpu_utilization_max = max(max(utilization), self.gpu_utilization_max or 0)


def _which(program):
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder, program)
        if os.access(path, os.X_OK):
            return path
    return None


def _sample_until(sampler, stop, interval):
    """Sample at the early offsets, then every `interval` seconds, until `stop` is set."""
    start = time.monotonic()
    offsets = list(EARLY_SAMPLES)
    while True:
        due = offsets.pop(0) if offsets else (time.monotonic() - start) + interval
        if stop.wait(max(0.0, start + due - time.monotonic())):
            return
        try:
            sampler.sample()
        except Exception:
            return  # /proc unreadable: usage without samples


def write_usage(path, usage):
    """Write the usage JSON whole (a temporary file renamed), so a reader never sees half of it."""
    temporary = "%s.%d.tmp" % (path, os.getpid())
    with open(temporary, "w") as out:
        json.dump(usage, out, sort_keys=True)
    os.replace(temporary, path)


def run_sampled(out_path, interval, command, fields=None):
    """Run `command` as a child, sample it, write `out_path`; return its wait status."""
    started_at, start = time.time(), time.monotonic()
    # A child's ru_maxrss starts at its parent's peak (Linux carries it over fork and exec): a
    # figure not above ours says nothing about the command.
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        pid = os.posix_spawnp(command[0], command, os.environ)
    except Exception:
        os.execvp(command[0], command)  # the task runs unsampled; it fails only as it would alone
    sampler = GroupSampler(os.getpgrp(), os.getpid())
    stop = threading.Event()
    thread = threading.Thread(target=_sample_until, args=(sampler, stop, interval), daemon=True)
    thread.start()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # pass a cancel on to the command and keep waiting, so its usage is still written
        signal.signal(signum, lambda signum, frame: _kill_quietly(pid, signum))
    while True:
        try:
            _, status, rusage = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    try:
        stop.set()
        usage = dict(fields or {})
        usage.update({
            "source": "process_group",
            "started_at": round(started_at, 3),
            "wall_seconds": round(time.monotonic() - start, 3),
            "cpu_seconds": round(rusage.ru_utime + rusage.ru_stime, 3),
            "samples": sampler.samples,
        })
        # ru_maxrss (KiB) is the largest single process's peak: exact for a one-process command,
        # a floor for a pipeline whose processes peak together (the samples catch those).
        child_peak = rusage.ru_maxrss * 1024 if rusage.ru_maxrss > own_peak else None
        peaks = [value for value in (sampler.peak_rss, child_peak) if value]
        if peaks:
            usage["peak_memory_bytes"] = max(peaks)
        if sampler.gpu_memory_peak is not None:
            usage["gpu_memory_peak_bytes"] = sampler.gpu_memory_peak
        if sampler.gpu_utilization_max is not None:
            usage["gpu_utilization_max_percent"] = sampler.gpu_utilization_max
        write_usage(out_path, usage)
    except Exception:
        pass  # usage is lost, the task's outcome is not
    return status


def _kill_quietly(pid, signum):
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _exit_like(status):
    """Leave as the command did: its exit code, or death by its signal."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            signal.signal(signum, signal.SIG_DFL)  # SIGKILL and SIGSTOP have no handler to reset
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), signum)
        return sys.exit(128 + signum)  # a signal we could not die of (it is ignored here)
    sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def sampled_invocation(python, out_path, interval, command, fields=None):
    """The argv that runs `command` under this script, with interpreter `python`; `fields` (a
    dict) go into the usage file as they are."""
    script = os.path.abspath(__file__.replace(".pyc", ".py"))
    return [python, "-I", "-S", script, out_path, str(interval), json.dumps(fields or {}), "--"] + list(command)


def shell_sampler_fields(fields):
    """`fields` as the JSON fragment SHELL_SAMPLER's $3 adds to the usage file."""
    return json.dumps(fields or {})[1:-1]


# For images without python3 (docker_run, Batch): run the command, then read the container's own
# cgroup (v2, else v1). The kernel keeps the peak, so no sampling is needed for memory and CPU. A GPU
# container has nvidia-smi (the NVIDIA container toolkit mounts it), which answers for the
# container's own devices only: sampled every $4 seconds beside the command (GPU memory has no kept
# peak), each sample's lines followed by "--". $1 = the command line, $2 = where to write the usage,
# $3 = more fields (shell_sampler_fields), $4 = the sampling interval. Plain POSIX sh: dash, bash
# and busybox run it.
SHELL_SAMPLER = r"""
read t0 _ < /proc/uptime 2>/dev/null
gs=; gp=
if command -v nvidia-smi >/dev/null 2>&1; then
  gs=$(mktemp 2>/dev/null) || gs=
  [ -n "$gs" ] && { while nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits >> "$gs" 2>/dev/null && echo -- >> "$gs"; do sleep "${4:-5}"; done & gp=$!; } 2>/dev/null
fi
/bin/sh -c "$1"
rc=$?
{
  read t1 _ < /proc/uptime
  g=/sys/fs/cgroup; m=; c=; gm=; gu=
  if [ -r $g/memory.peak ]; then read m < $g/memory.peak
  elif [ -r $g/memory/memory.max_usage_in_bytes ]; then read m < $g/memory/memory.max_usage_in_bytes; fi
  if [ -r $g/cpu.stat ]; then while read k v; do [ "$k" = usage_usec ] && c=$v; done < $g/cpu.stat
  elif [ -r $g/cpuacct/cpuacct.usage ]; then read n < $g/cpuacct/cpuacct.usage; c=$((n / 1000)); fi
  if [ -n "$gp" ]; then
    kill $gp 2>/dev/null
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits >> "$gs" 2>/dev/null && echo -- >> "$gs"
    sum=
    while IFS=', ' read a b; do
      if [ "$a" = -- ]; then
        [ -n "$sum" ] && { [ -z "$gm" ] || [ "$sum" -gt "$gm" ]; } && gm=$sum
        sum=; continue
      fi
      case $a in ''|*[!0-9]*) ;; *) sum=$(( ${sum:-0} + a ));; esac
      case $b in ''|*[!0-9]*) ;; *) { [ -z "$gu" ] || [ "$b" -gt "$gu" ]; } && gu=$b;; esac
    done < "$gs"
    rm -f "$gs"
  fi
  w=$(( ${t1%.*}${t1#*.} - ${t0%.*}${t0#*.} ))
  printf '{"source": "cgroup", "samples": 1, "wall_seconds": %d.%02d' $((w / 100)) $((w % 100))
  [ -n "$m" ] && printf ', "peak_memory_bytes": %s' "$m"
  [ -n "$c" ] && printf ', "cpu_seconds": %d.%06d' $((c / 1000000)) $((c % 1000000))
  [ -n "$gm" ] && printf ', "gpu_memory_peak_bytes": %s' $((gm * 1048576))
  [ -n "$gu" ] && printf ', "gpu_utilization_max_percent": %s' "$gu"
  [ -n "$3" ] && printf ', %s' "$3"
  printf '}\n'
} > "$2" 2>/dev/null
exit $rc
"""


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--" not in args or args.index("--") not in (2, 3) or len(args) < args.index("--") + 2:
        sys.exit("usage: python3 usage_sampler.py OUT_JSON INTERVAL_SECONDS [FIELDS_JSON] -- COMMAND [ARG...]")
    split = args.index("--")
    try:
        interval = float(args[1])
    except ValueError:
        interval = 5.0
    try:
        fields = json.loads(args[2]) if split == 3 else {}
    except ValueError:
        fields = {}
    _exit_like(run_sampled(args[0], interval, args[split + 1:], fields if isinstance(fields, dict) else {}))
