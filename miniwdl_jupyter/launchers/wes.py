"""The `wes` launcher: a run whose miniwdl process is on a GA4GH WES 1.1 server.

`launch()` takes the `miniwdl run` command runs.py built, sends its WDL (with every imported file as
a `workflow_attachment`, named so the imports resolve on the server), its inputs (local files
attached too) and the call-cache choice, and records the server and run id in the launch record.
The run still has a local run directory (docs/design.md, "Runs that live elsewhere"): a follower process
(`wes_follow`) polls the server and writes, in miniwdl's shape, what the monitor reads - a locked
workflow.log while the remote run goes, JSON log events for each task's start and end, and
outputs.json or error.json at the end - so the progress views, `Run.wait()`, `attach()` and errors
work as for a local run.

Settings (`[wes]` in miniwdl.cfg or MINIWDL__WES__*): `url`, `token`, `backend` (sent as the
`backend` engine parameter when set), `engine_parameters` (JSON object sent as
workflow_engine_parameters), `engine` / `engine_version` (sent as workflow_engine /
workflow_engine_version when set), `poll_seconds`, `give_up_seconds`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import posixpath
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from WDL.runtime.config import Loader

from .. import config, launch_record
from ..errors import ConfigError, InputError
from . import Launcher
from .local import LocalLauncher, process_start_time

FOLLOWER_MODULE = "miniwdl_jupyter.launchers.wes_follow"
_URL_SCHEMES = ("http://", "https://", "s3://", "gs://", "ftp://", "drs://")


class WESLauncher(Launcher):
    """Start (submit), liveness (the follower's), cancel (through the server), description, and
    following a run submitted elsewhere (`attach("wes:URL#RUN_ID")`)."""

    name = "wes"

    def follow(self, address: str, root: Path, cfg: Loader) -> Path:
        return attach_remote(address, root, cfg)

    def launch(self, command: List[str], *, run_dir: Path, env: Mapping[str, str], cwd: Path, cfg: Loader) -> Optional[subprocess.Popen]:
        from ..wes.client import WESClient

        url = env.get("MINIWDL__WES__URL") or _setting(cfg, "url")
        if not url:
            raise ConfigError("no WES server given: run(..., wes=URL), %%wdl --wes URL, or [wes] url in miniwdl.cfg")
        parsed = _parse_command(command)
        if parsed["task"]:
            raise ConfigError("--task runs cannot be sent to a WES server (WES runs workflows); wrap the task in a workflow")
        token = env.get("MINIWDL__WES__TOKEN") or _setting(cfg, "token")
        version, files, workflow_name = package_workflow(parsed["source"], parsed["path"])
        inputs = json.loads(Path(parsed["inputs"]).read_text()) if parsed["inputs"] else {}
        inputs, input_files = package_inputs(inputs)
        engine = _engine_parameters(cfg, env)
        fields = {
            "workflow_type": "WDL",
            "workflow_type_version": version,
            "workflow_url": files[0][0] if files and not parsed["source"].startswith(_URL_SCHEMES) else parsed["source"],
            "workflow_params": json.dumps(inputs),
            "workflow_engine_parameters": json.dumps(engine),
            "tags": json.dumps({"client": "miniwdl-jupyter", "run_dir": run_dir.name, "host": socket.gethostname()}),
        }
        for field, key in (("workflow_engine", "engine"), ("workflow_engine_version", "engine_version")):
            if _setting(cfg, key):  # servers running several engines want to be told which
                fields[field] = _setting(cfg, key)
        with WESClient(url, token) as client:
            run_id = client.submit(fields, files + input_files)
            base = client.base
        launch_record.update(run_dir, launcher=self.name, wes_url=base, wes_run_id=run_id, name=workflow_name, wes_follow_state=str(follow_state_path(run_dir)))
        return start_follower(run_dir, env, token)

    def alive(self, record: Dict[str, Any], cfg: Loader) -> Optional[bool]:
        """The follower's process (pid + start time on this host), as for a local run."""
        return LocalLauncher().alive(record, cfg)

    def cancel(self, record: Dict[str, Any], run_dir: Path, cfg: Loader) -> None:
        """Ask the server to cancel; the follower writes the end when the server reports it."""
        from ..wes.client import WESClient

        token = _setting(cfg, "token") or os.environ.get("MINIWDL__WES__TOKEN")
        with WESClient(record["wes_url"], token) as client:
            client.cancel(record["wes_run_id"])
        if not self.alive(record, cfg):
            start_follower(Path(run_dir), dict(os.environ), token)

    def describe(self, record: Dict[str, Any], cfg: Loader) -> Dict[str, Any]:
        facts = {"WES server": record.get("wes_url"), "WES run": record.get("wes_run_id")}
        try:
            state = json.loads(Path(record["wes_follow_state"]).read_text())
            facts["WES state"] = state.get("state")
        except (KeyError, OSError, ValueError):
            pass
        return {k: v for k, v in facts.items() if v}


def follow_state_path(run_dir: Path) -> Path:
    return launch_record.meta_dir(run_dir) / "wes_follow.json"


def start_follower(run_dir: Path, env: Mapping[str, str], token: Optional[str]) -> subprocess.Popen:
    """The follower runs in its own session, like a local miniwdl process: a kernel restart or
    interrupt does not stop it, and the monitor tells it is alive from the launch record."""
    meta = launch_record.meta_dir(run_dir)
    meta.mkdir(parents=True, exist_ok=True)
    child_env = dict(env)
    if token:
        child_env["MINIWDL__WES__TOKEN"] = token  # never written to the run directory
    with open(launch_record.stdout_path(run_dir), "ab") as out, open(launch_record.stderr_path(run_dir), "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", FOLLOWER_MODULE, str(run_dir)],
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    launch_record.update(run_dir, pid=proc.pid, pid_start_time=process_start_time(proc.pid), host=socket.gethostname())
    return proc


def attach_remote(spec: str, root: Path, cfg: Optional[Loader] = None) -> Path:
    """`wes:URL#RUN_ID` -> a local run directory following that remote run (made on first use;
    its follower restarted if it stopped before the run ended)."""
    from ..wes.client import WESClient, base_url

    body = spec[len("wes:"):] if spec.startswith("wes:") else spec
    url, sep, run_id = body.rpartition("#")
    if not sep or not url or not run_id:
        raise InputError(f"{spec!r}: name a remote run as wes:URL#RUN_ID")
    base = base_url(url)
    token = (_setting(cfg, "token") if cfg else None) or os.environ.get("MINIWDL__WES__TOKEN")
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:80]
    digest = hashlib.sha256(f"{base}#{run_id}".encode()).hexdigest()[:8]
    run_dir = Path(root) / f"wes_{safe_id}_{digest}"
    record = launch_record.read(run_dir)
    if record is None:
        with WESClient(base, token) as client:
            log = client.run_log(run_id)  # fails here, clearly, for an unknown run or a bad token
        name = (log.get("run_log") or {}).get("name") or "wes_run"
        run_dir.mkdir(parents=True, exist_ok=True)
        launch_record.write(
            run_dir,
            {"launcher": "wes", "wes_url": base, "wes_run_id": run_id, "name": _identifier(name), "source": spec,
             "wes_follow_state": str(follow_state_path(run_dir)),
             "start_time": time.time(), "host": socket.gethostname()},
        )
        start_follower(run_dir, dict(os.environ), token)
    elif not (run_dir / "outputs.json").exists() and not (run_dir / "error.json").exists() and not LocalLauncher().alive(record, cfg):
        start_follower(run_dir, dict(os.environ), token)
    return run_dir


# -- packaging a run for the server --------------------------------------------------------------


def package_workflow(source: str, search_path: List[str]) -> Tuple[str, List[Tuple[str, Path]], str]:
    """(WDL version, [(attachment name, local file)] with the main file first, workflow name).
    Each imported file is attached at the path its import statement names relative to the
    importing file, so the server resolves every import next to the files it was sent."""
    import WDL

    def load() -> Any:
        return WDL.load(source, search_path)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # WDL.load runs its own event loop
        doc = pool.submit(load).result()
    version = doc.wdl_version or "draft-2"
    name = (doc.workflow or (doc.tasks[0] if doc.tasks else None)).name if (doc.workflow or doc.tasks) else "wes_run"
    if source.startswith(_URL_SCHEMES):
        return version, [], name
    names = _attachment_names(doc, os.path.basename(doc.pos.abspath))
    depth = max((_leading_parents(n) for n in names.values()), default=0)
    if depth:
        # an import reaches above the main file's folder: keep that many of its real parent folders
        parts = Path(doc.pos.abspath).parts
        names = _attachment_names(doc, "/".join(parts[-(depth + 1):]))
    files, seen = [], {}
    for path, attachment in names.items():
        if attachment in seen and seen[attachment] != path:
            raise InputError(f"imports {seen[attachment]} and {path} would both be sent as {attachment!r}; rename one")
        seen[attachment] = path
        files.append((attachment, Path(path)))
    return version, files, name


def _attachment_names(doc: Any, main_name: str) -> Dict[str, str]:
    names = {doc.pos.abspath: main_name}
    stack = [doc]
    while stack:
        current = stack.pop()
        folder = posixpath.dirname(names[current.pos.abspath])
        for imp in current.imports:
            if imp.doc is None or imp.uri.startswith(_URL_SCHEMES) or imp.doc.pos.abspath in names:
                continue
            names[imp.doc.pos.abspath] = posixpath.normpath(posixpath.join(folder, imp.uri))
            stack.append(imp.doc)
    return names


def _leading_parents(name: str) -> int:
    count = 0
    for part in name.split("/"):
        if part != "..":
            break
        count += 1
    return count


def package_inputs(inputs: Dict[str, Any]) -> Tuple[Dict[str, Any], List[Tuple[str, Path]]]:
    """Local files and folders named by the inputs are attached (as `inputs/N/<name>`) and the
    inputs name the attachment instead; URLs and other values pass through."""
    files: List[Tuple[str, Path]] = []

    def convert(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("/") and os.path.exists(value):
            folder = f"inputs/{len(files)}"
            path = Path(value)
            if path.is_dir():
                for item in sorted(p for p in path.rglob("*") if p.is_file()):
                    files.append((f"{folder}/{path.name}/{item.relative_to(path).as_posix()}", item))
                if not any(True for _ in path.rglob("*")):
                    raise InputError(f"input folder {value} is empty; a WES server cannot be sent an empty folder")
            else:
                files.append((f"{folder}/{path.name}", path))
            return f"{folder}/{path.name}"
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(inputs), files


def _engine_parameters(cfg: Loader, env: Mapping[str, str]) -> Dict[str, str]:
    params: Dict[str, str] = {}
    extra = _setting(cfg, "engine_parameters")
    if extra:
        try:
            loaded = json.loads(extra)
        except ValueError:
            raise ConfigError(f"[wes] engine_parameters must be a JSON object, not {extra!r}") from None
        params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in loaded.items()})
    backend = env.get("MINIWDL__WES__BACKEND") or _setting(cfg, "backend")
    if backend:
        params["backend"] = backend
    if "MINIWDL__CALL_CACHE__GET" in env:
        params.setdefault("cache", env["MINIWDL__CALL_CACHE__GET"])
    return params


def _parse_command(command: List[str]) -> Dict[str, Any]:
    """The parts of `python -m WDL run SOURCE -i INPUTS --dir ... [--path P]... [--task T]` we send."""
    try:
        at = command.index("run")
    except ValueError:
        raise ConfigError(f"the wes launcher expects a `miniwdl run` command, not {command[:4]}") from None
    parsed: Dict[str, Any] = {"source": command[at + 1], "inputs": None, "path": [], "task": None}
    args = command[at + 2:]
    for i, arg in enumerate(args):
        value = args[i + 1] if i + 1 < len(args) else None
        if arg == "-i":
            parsed["inputs"] = value
        elif arg == "--path":
            parsed["path"].append(value)
        elif arg == "--task":
            parsed["task"] = value
    return parsed


def _setting(cfg: Optional[Loader], key: str) -> str:
    return config.option(cfg, "wes", key) if cfg is not None else ""


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "wes_run"
