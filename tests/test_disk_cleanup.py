"""Run sizes, `%wdl du`, `%wdl why` and a safe cleanup (`%wdl cleanup`, `miniwdl-jupyter cleanup`),
through a real IPython shell and the `miniwdl-jupyter` command, on real runs of the `local` backend."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

import miniwdl_jupyter as mj
from miniwdl_jupyter import cache_entries, config, disk_usage

from display_fixtures import kernel  # noqa: F401 - a fixture
from slurm_fixtures import slurm_cluster  # noqa: F401 - a fixture

COUNT_WDL = """version 1.1
task count {
  input { File reads  String tag = "x" }
  command <<<
    wc -c < ~{reads} > n.txt
    echo ~{tag} >> n.txt
    head -c 1500000 /dev/urandom > big.bin
  >>>
  output { File n = "n.txt"  File big = "big.bin" }
  runtime { docker: "debian:bookworm-slim" }
}
workflow wf {
  input { File reads  String tag = "x" }
  call count { input: reads = reads, tag = tag }
  output { File n = count.n }
}
"""

SLOW_WDL = """version 1.1
task nap {
  input { Int seconds }
  command <<< sleep ~{seconds} >>>
}
workflow slow {
  input { Int seconds }
  call nap { input: seconds = seconds }
}
"""


@pytest.fixture
def local_shell(shell, workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "local")
    (workdir / "wf.wdl").write_text(COUNT_WDL)
    (workdir / "slow.wdl").write_text(SLOW_WDL)
    return shell


def magic(shell, capsys, line: str) -> str:
    capsys.readouterr()
    result = shell.run_cell(line)
    out = capsys.readouterr().out
    assert result.success, (line, result.error_in_exec, out)
    return out


def change(path: Path, text: str) -> None:
    time.sleep(0.05)  # a later mtime than the entry just written, on any clock granularity
    path.write_text(text)


def cache_is_coherent() -> None:
    """Every entry's files exist and are not newer than the entry (miniwdl's own rule for a hit)."""
    for entry in cache_entries.entries(config.load()):
        for path in cache_entries.needed_paths(entry):
            assert os.path.lexists(path), f"{entry.path} points at deleted {path}"
            assert os.lstat(path).st_mtime <= entry.mtime + 1e-3, f"{path} is newer than {entry.path}"


def test_why_sizes_du_and_a_cleanup_that_keeps_what_the_cache_needs(local_shell, capsys, workdir):
    shell, sample = local_shell, workdir / "s.txt"
    sample.write_text("one\n")
    (workdir / "t.txt").write_text("kept\n")
    magic(shell, capsys, "%wdl run -f wf.wdl reads=t.txt tag=y -o ra --progress none")
    magic(shell, capsys, "%wdl run -f wf.wdl reads=s.txt -o rb --progress none")
    change(sample, "two!\n")
    magic(shell, capsys, "%wdl run -f wf.wdl reads=s.txt -o rc --progress none")
    change(sample, "three\n")
    out = magic(shell, capsys, "%wdl run -f wf.wdl reads=s.txt -o rd --progress none")
    # The final summary says why the call ran: the input file changed after the cached run.
    assert re.search(r"not from the cache: call-count: input `reads`: s\.txt changed \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, after the cached run", out), out

    rc, rd = shell.user_ns["rc"], shell.user_ns["rd"]
    why = magic(shell, capsys, "%wdl why $rd count")
    assert "input `reads`: s.txt changed" in why and f"({sample}, now 6 bytes)" in why and rc.run_dir.name in why
    assert [c.not_cached for c in rd.calls][0][0].startswith("input `reads`: s.txt changed")
    first = magic(shell, capsys, "%wdl why $ra")
    assert "no cache entry for task `count`" in first
    # Another input value: the nearest entry says which value differed.
    magic(shell, capsys, "%wdl run -f wf.wdl reads=s.txt tag=z -o rz --progress none")
    assert "input `tag`: \"z\" instead of" in magic(shell, capsys, "%wdl why $rz count")
    magic(shell, capsys, "%wdl run -f wf.wdl reads=s.txt tag=w --no-cache -o rnc --progress none")
    assert "the call cache was off for this run" in magic(shell, capsys, "%wdl why $rnc")

    runs_out = magic(shell, capsys, "%wdl runs")
    assert "size" in runs_out and re.search(r"\d\.\d MB", runs_out), runs_out
    every = magic(shell, capsys, "%wdl du")
    assert re.search(r"^\d+ runs, \d+\.\d MB$", every, re.M) and shell.user_ns["ra"].run_dir.name in every, every
    du = magic(shell, capsys, "%wdl du $ra")
    assert "call-count" in du and re.search(r"the call cache uses 1\.\d MB of it \(\d+ entries\)", du), du
    assert disk_usage.kept_size(shell.user_ns["ra"].run_dir) is not None, "an ended run's size is kept"

    # A running run of another workflow, older than its newest run: chosen, and left alone.
    magic(shell, capsys, "%wdl run -f slow.wdl seconds=120 -o napping --no-wait --progress none")
    napping = shell.user_ns["napping"]
    magic(shell, capsys, "%wdl run -f slow.wdl seconds=0 -o quick --progress none")
    try:
        plan = magic(shell, capsys, "%wdl cleanup --keep-last 1")
        assert "nothing deleted: add --yes" in plan and ra_files_exist(shell)
        announced = re.search(r"^frees (.+)$", plan, re.M).group(1)
        assert re.search(rf"skip\s+{napping.run_dir.name}\s+running", plan), plan
        named = shell.run_cell(f"%wdl cleanup {napping.run_dir.name} --yes")  # named outright: an error
        assert isinstance(named.error_in_exec, UsageError) and f"%wdl cancel {napping.run_dir.name}" in str(named.error_in_exec)
        root_before = disk_usage.tree_bytes(workdir / "wdl_runs")
        done = magic(shell, capsys, "%wdl cleanup --keep-last 1 --yes")
        assert f"freed {announced}:" in done, (plan, done)
        assert f"left {napping.run_dir.name} alone" in done
        freed = root_before - disk_usage.tree_bytes(workdir / "wdl_runs")
        assert freed > 0.9 * parse_human(announced), (freed, announced)
        assert not napping.done and (napping.run_dir / "call-nap").is_dir()
    finally:
        napping.cancel()
    # The newest run's outputs are intact; the older ones stay listed with their logs.
    assert rd.outputs["n"].read_text() == "6\nx\n"
    listed = magic(shell, capsys, "%wdl runs -n 50")
    for name in ("ra", "rb", "rc"):
        run = shell.user_ns[name]
        assert run.run_dir.name in listed and (run.run_dir / "workflow.log").exists()
        assert (run.run_dir / "call-count" / "stderr.txt").exists() and not (run.run_dir / "call-count" / "stdout.txt").exists()
        assert not (run.run_dir / "call-count" / "work").exists() or name == "ra"
    cache_is_coherent()
    # The cache still works: re-runs of the newest inputs and of the kept entry (tag=y) are cached.
    magic(shell, capsys, "%wdl run -f wf.wdl reads=s.txt -o again --progress none")
    assert [(c.state, c.not_cached) for c in shell.user_ns["again"].calls] == [("cached", [])]
    magic(shell, capsys, "%wdl run -f wf.wdl reads=t.txt tag=y -o again_y --progress none")
    assert [c.state for c in shell.user_ns["again_y"].calls] == ["cached"]

    # --drop-cache frees what the cache needed, and drops those entries with it.
    ra = shell.user_ns["ra"]
    out = magic(shell, capsys, f"%wdl cleanup {ra.run_dir.name} --drop-cache --yes")
    assert "call cache entries dropped" in out and not (ra.run_dir / "call-count" / "work").exists()
    cache_is_coherent()
    magic(shell, capsys, "%wdl run -f wf.wdl reads=t.txt tag=y -o after_drop --progress none")
    assert [c.state for c in shell.user_ns["after_drop"].calls] == ["succeeded"]


def ra_files_exist(shell) -> bool:
    return (shell.user_ns["ra"].run_dir / "call-count" / "work" / "big.bin").exists()


def parse_human(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]


def test_bad_cleanup_arguments_are_short_usage_errors(local_shell):
    for line, words in (
        ("%wdl cleanup", "--keep-last N, --older-than AGE"),
        ("%wdl cleanup --older-than soon", "30d, 12h"),
        ("%wdl cleanup --keep-last -1", "0 or more"),
        ("%wdl cleanup nosuchrun*", "no run under"),
        ("%wdl why", "the following arguments are required: run"),
    ):
        result = local_shell.run_cell(line)
        assert isinstance(result.error_in_exec, UsageError), line
        assert words in str(result.error_in_exec), (line, str(result.error_in_exec))


def deleting(trash: Path, pid: int) -> bool:
    """Has cleanup process `pid` moved a run into the trash (cleanup.py names it RUN.PID.NS)?"""
    try:
        return any(f".{pid}." in name for name in os.listdir(trash))
    except OSError:
        return False  # no trash yet, or emptied meanwhile


def test_cleanup_killed_halfway_breaks_nothing(workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "local")
    source = COUNT_WDL.replace("head -c 1500000 /dev/urandom > big.bin", "mkdir many; for i in $(seq 400); do echo $i > many/$i; done; echo > big.bin")
    (workdir / "wf.wdl").write_text(source)
    (workdir / "s.txt").write_text("data\n")
    for tag in range(8):
        mj.run("wf.wdl", {"reads": "s.txt", "tag": str(tag)})
    cli = [sys.executable, "-m", "miniwdl_jupyter.cli", "cleanup", "--keep-last", "0", "--all", "--drop-cache", "--yes"]
    trash = workdir / "wdl_runs" / ".trash"
    halfway, before = 0, len(mj.list_runs())
    for _ in range(before + 2):
        proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # SIGKILL as soon as this cleanup has renamed a run into the trash (its pid is in the name),
        # i.e. in the middle of deleting it; whatever the machine's speed
        while proc.poll() is None and not deleting(trash, proc.pid):
            time.sleep(0.002)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        listed = mj.list_runs()  # every remaining run is listable and reads as it ended
        assert all(r.status == "succeeded" for r in listed), [(r.run_dir, r.status) for r in listed]
        cache_is_coherent()
        halfway += killed and len(listed) < before
        before = len(listed)
        if not listed:
            break
    subprocess.run(cli, check=True, capture_output=True)
    assert not mj.list_runs() and not (workdir / "wdl_runs" / ".trash").exists(), "the next cleanup empties the trash"
    assert halfway, "no cleanup was killed while it deleted a run"
    again = mj.run("wf.wdl", {"reads": "s.txt", "tag": "0"})
    assert again.status == "succeeded" and again.outputs["n"].read_text() == "5\n0\n"
    cached = mj.run("wf.wdl", {"reads": "s.txt", "tag": "0"})
    assert [c.state for c in cached.calls] == ["cached"]
    mj.run("wf.wdl", {"reads": "s.txt", "tag": "1"})  # runs that a killed cleanup left behind do not disturb new ones


def test_cli_cleanup_plans_first_and_applies_with_yes(workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "local")
    (workdir / "wf.wdl").write_text(COUNT_WDL)
    (workdir / "s.txt").write_text("data\n")
    old = mj.run("wf.wdl", {"reads": "s.txt", "tag": "a"})
    mj.run("wf.wdl", {"reads": "s.txt", "tag": "b"})
    cli = [sys.executable, "-m", "miniwdl_jupyter.cli", "cleanup", "--keep-last", "1", "--all"]
    shown = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    assert f"trim   {old.run_dir.name}" in shown and "the call cache uses" in shown and "add --yes" in shown
    done = subprocess.run(cli + ["--drop-cache", "--yes"], capture_output=True, text=True, check=True).stdout
    assert f"delete {old.run_dir.name}" in done and "freed" in done and not old.run_dir.exists()
    bad = subprocess.run([sys.executable, "-m", "miniwdl_jupyter.cli", "cleanup"], capture_output=True, text=True)
    assert bad.returncode == 2 and "cleanup needs a choice of runs" in bad.stderr


def test_keep_last_cleans_up_automatically_after_a_run(local_shell, capsys, workdir, monkeypatch):
    (workdir / "s.txt").write_text("data\n")
    magic(local_shell, capsys, "%wdl run -f wf.wdl reads=s.txt tag=a -o first --progress none")
    first = local_shell.user_ns["first"]
    out = magic(local_shell, capsys, "%wdl run -f wf.wdl reads=s.txt tag=b -o second --progress none")
    assert "automatic cleanup" not in out, "off by default"
    monkeypatch.setenv("MINIWDL__JUPYTER__KEEP_LAST", "1")
    out = magic(local_shell, capsys, "%wdl run -f wf.wdl reads=s.txt tag=c --no-cache -o third --progress none")
    assert re.search(r"automatic cleanup \(\[jupyter\] keep_last / keep_days\): freed \d", out), out
    call = first.run_dir / "call-count"
    assert (first.run_dir / "workflow.log").exists() and not (call / "stdout.txt").exists()
    assert (call / "work" / "n.txt").exists() and not (call / "work" / "_miniwdl_inputs").exists(), "the cache's files stay"
    third = local_shell.user_ns["third"]
    assert third.outputs["n"].read_text() == "5\nc\n", "the run that just ended is the newest: kept"
    # keep_days alone: runs that ended more than that long ago (here about a second).
    monkeypatch.delenv("MINIWDL__JUPYTER__KEEP_LAST")
    monkeypatch.setenv("MINIWDL__JUPYTER__KEEP_DAYS", "0.00001")
    time.sleep(1.5)
    out = magic(local_shell, capsys, "%wdl run -f wf.wdl reads=s.txt tag=d --no-cache -o fourth --progress none")
    assert "automatic cleanup" in out and not (third.run_dir / "call-count" / "stdout.txt").exists()
    assert (local_shell.user_ns["fourth"].run_dir / "call-count" / "stdout.txt").exists()


FAILING_WDL = """version 1.1
task boom {
  input { Int code }
  command <<< exit ~{code} >>>
}
workflow boom_wf {
  input { Int code }
  call boom { input: code = code }
}
"""


def test_criteria_combine_and_task_changes_are_named(local_shell, capsys, workdir):
    from miniwdl_jupyter import cleanup

    shell = local_shell
    (workdir / "boom.wdl").write_text(FAILING_WDL)
    (workdir / "s.txt").write_text("data\n")
    for code in (0, 3):
        shell.run_cell(f"%wdl run -f boom.wdl code={code} -o boom{code} --progress none")
    assert shell.user_ns["boom3"].status == "failed"
    shell.run_cell("%wdl run -f slow.wdl seconds=60 -o gone --no-wait --progress none")
    shell.user_ns["gone"].cancel()
    magic(shell, capsys, "%wdl run -f wf.wdl reads=s.txt -o before --progress none")
    names = lambda plan: sorted(p.name for p in plan.runs)  # noqa: E731
    assert names(cleanup.plan(failed=True)) == [shell.user_ns["boom3"].run_dir.name]
    assert names(cleanup.plan(cancelled=True)) == [shell.user_ns["gone"].run_dir.name]
    assert names(cleanup.plan(failed=True, older_than="1d")) == [], "both must match"
    assert names(cleanup.plan(names=["*_boom_wf*"])) == sorted(shell.user_ns[n].run_dir.name for n in ("boom0", "boom3"))
    assert names(cleanup.plan(keep_last=1, names=["*_boom_wf*"])) == [shell.user_ns["boom0"].run_dir.name]
    assert "(it failed: a failed call's results are never cached)" in magic(shell, capsys, "%wdl why $boom3")

    # The task's WDL changed: the image and a runtime setting, one line each; then only the command.
    changed = COUNT_WDL.replace('runtime { docker: "debian:bookworm-slim" }', 'runtime { docker: "alpine:3"  cpu: 1 }')
    (workdir / "wf.wdl").write_text(changed)
    out = magic(shell, capsys, "%wdl run -f wf.wdl reads=s.txt -o image --progress none")
    assert 'not from the cache: call-count: image: "alpine:3" instead of "debian:bookworm-slim" in the cached run' in out, out
    assert "call-count: runtime `cpu`: 1 instead of (none) in the cached run" in out
    (workdir / "wf.wdl").write_text(changed.replace("wc -c <", "wc -c  <"))
    magic(shell, capsys, "%wdl run -f wf.wdl reads=s.txt -o command --progress none")
    assert "the command of task `count` changed since the cached run" in magic(shell, capsys, "%wdl why $command count")


def test_another_hosts_running_run_is_known_by_its_launcher(slurm_cluster, workdir, monkeypatch):
    """On a shared filesystem (EFS, NFS) a run whose miniwdl process runs on another machine holds
    no lock this host can see and has no local pid: its launcher (here its SLURM job) says it runs."""
    from miniwdl_jupyter import cleanup, launch_record

    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "local")
    job = subprocess.run(["sbatch", "--parsable", "--wrap", "sleep 300"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        elsewhere = workdir / "wdl_runs" / "20260101_000000_remote"
        launch_record.write(elsewhere, {"name": "remote", "launcher": "slurm", "host": "node-b", "job_id": job,
                                        "launch_time": time.time(), "start_time": time.time()})
        (elsewhere / "workflow.log").write_text("written by a miniwdl process on node-b\n")  # unlocked, as seen from here
        (elsewhere / "call-big").mkdir()
        (elsewhere / "call-big" / "data.bin").write_bytes(b"x" * 100_000)
        plan = cleanup.plan(keep_last=0)
        assert [(p.name, p.action) for p in plan.runs] == [(elsewhere.name, "skip")]
        assert cleanup.apply(plan).skipped and (elsewhere / "call-big" / "data.bin").exists()
    finally:
        subprocess.run(["scancel", job], check=True)
    deadline = time.monotonic() + 60
    while cleanup.plan(keep_last=0).runs[0].action == "skip" and time.monotonic() < deadline:
        time.sleep(1)  # once SLURM says the job is gone, the run is over (its process died)
    done = cleanup.apply(cleanup.plan(keep_last=0, all_files=True))
    assert done.deleted == [elsewhere.name] and not elsewhere.exists()


def test_cleanup_asks_in_a_notebook_and_deletes_nothing_where_nobody_can_answer(workdir, monkeypatch, kernel):
    """docs/runs.md: without --yes the plan is applied only by answering y; where no one can answer
    (papermill and nbclient execute without stdin) nothing is deleted. In a real kernel."""
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "local")
    (workdir / "s.txt").write_text("data\n")
    old = mj.run(COUNT_WDL, {"reads": "s.txt", "tag": "a"})
    mj.run(COUNT_WDL, {"reads": "s.txt", "tag": "b"})
    kernel.run("%load_ext miniwdl_jupyter")
    line = "%wdl cleanup --keep-last 1 --all --drop-cache"

    def cleanup(answer=None) -> str:
        prompts, out = [], []

        def reply(msg):
            prompts.append(msg["content"]["prompt"])
            kernel.kc.input(answer)

        kernel.kc.execute_interactive(
            line, timeout=120, allow_stdin=answer is not None, stdin_hook=reply,
            output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
        )
        assert len(prompts) == (answer is not None), prompts
        return "".join(out)

    headless = cleanup()  # as papermill executes
    assert f"delete {old.run_dir.name}" in headless and old.run_dir.exists(), headless
    cleanup("n")
    assert old.run_dir.exists(), "answering n deletes nothing"
    done = cleanup("y")
    assert "freed" in done and not old.run_dir.exists(), done
    assert len(mj.list_runs()) == 1


def test_a_runs_size_is_allocated_blocks_each_hard_link_once_and_no_symlink_target(workdir, monkeypatch):
    """docs/runs.md, Sizes: allocated blocks, each hard-linked file once, symlinks not followed;
    an ended run's size is kept, and walked again once files are added at its top."""
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "local")
    (workdir / "s.txt").write_text("data\n")
    run = mj.run(COUNT_WDL, {"reads": "s.txt"})
    before = disk_usage.run_size(run.run_dir, ended=True)  # what `%wdl runs` shows
    assert before > 1_500_000 and disk_usage.kept_size(run.run_dir) == before
    outside = workdir / "outside.bin"
    outside.write_bytes(os.urandom(3_000_000))
    os.link(run.run_dir / "call-count" / "work" / "big.bin", run.run_dir / "big-again.bin")
    os.symlink(outside, run.run_dir / "outside-link")
    with open(run.run_dir / "sparse.bin", "wb") as sparse:
        sparse.truncate(50_000_000)  # 50 MB long, nothing allocated
    (run.run_dir / "real.bin").write_bytes(os.urandom(1_000_000))  # the one that counts
    grown = disk_usage.run_size(run.run_dir, ended=True) - before
    assert 1_000_000 <= grown < 1_000_000 + 64 * 1024, grown


def test_why_names_a_file_of_the_cached_result_that_was_deleted(local_shell, capsys, workdir):
    """docs/runs.md, Why a call was not cached: an entry found but refused because a file it needs
    was deleted."""
    (workdir / "s.txt").write_text("data\n")
    magic(local_shell, capsys, "%wdl run -f wf.wdl reads=s.txt -o first --progress none")
    needed = local_shell.user_ns["first"].run_dir / "call-count" / "work" / "n.txt"
    needed.unlink()
    out = magic(local_shell, capsys, "%wdl run -f wf.wdl reads=s.txt -o second --progress none")
    assert [c.state for c in local_shell.user_ns["second"].calls] == ["succeeded"], "the refused entry was not used"
    first = local_shell.user_ns["first"].run_dir
    expected = re.compile(rf"a file the cached result needs, {re.escape(str(first))}/call-count/\S*n\.txt, was deleted or moved "
                          rf"since the cached run of [\d: -]+ in {first.name}")
    assert expected.search(out), out
    assert expected.search(magic(local_shell, capsys, "%wdl why $second count"))
