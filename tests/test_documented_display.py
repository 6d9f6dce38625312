"""docs/display.md's output caps and links, end to end: a real workflow (local backend) writes
outputs past every cap, and a real ipykernel, started as jupyter_server starts a notebook's kernel
(JPY_SESSION_NAME, working directory = the notebook's folder) next to a running jupyter_server,
renders them. Checked in the display messages the frontend receives."""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest
from jupyter_client.manager import start_new_kernel

from display_fixtures import TINY_PNG_BASE64, KernelSession

CAPS_WDL = r"""version development
workflow caps {
  call make
  output {
    File big_png = make.big_png
    Array[File] pngs = make.pngs
    File big_json = make.big_json
    File long_json = make.long_json
    File big_html = make.big_html
    Directory tree = make.tree
  }
}
task make {
  command <<<
    set -e
    echo 'TINY' | base64 -d > tiny.png
    cp tiny.png big.png && head -c 2200000 /dev/zero >> big.png
    mkdir pngs && for i in $(seq 10 22); do cp tiny.png pngs/p$i.png; done
    (printf '{"a": "'; head -c 1100000 /dev/zero | tr '\0' x; printf '"}') > big.json
    (echo '{'; seq 1 99 | sed 's/.*/"k&": &,/'; echo '"k100": 100}') > long.json
    (echo '<p>big</p>'; head -c 2200000 /dev/zero | tr '\0' a) > big.html
    mkdir -p tree/a/b/c/d/e && echo deep > tree/a/b/c/d/e/deep.txt
    for i in $(seq 100 349); do echo $i > tree/f$i.txt; done
  >>>
  output {
    File big_png = "big.png"
    Array[File] pngs = glob("pngs/*.png")
    File big_json = "big.json"
    File long_json = "long.json"
    File big_html = "big.html"
    Directory tree = "tree"
  }
}
""".replace("TINY", TINY_PNG_BASE64)

SMALL_WDL = """version 1.1
task note {
  command <<< echo hello > note.txt >>>
  output { File note = "note.txt" }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server_and_kernel(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """A jupyter_server whose root is workdir/root, and a kernel for the notebook root/sub/analysis.ipynb
    with runs under root/runs (beside, not below, the notebook). Yields (kernel, root)."""
    root = workdir / "root"
    (root / "sub").mkdir(parents=True)
    (workdir / "miniwdl.cfg").write_text(f"[jupyter]\nroot = {root / 'runs'}\nbackend = local\n")
    monkeypatch.setenv("MINIWDL_CFG", str(workdir / "miniwdl.cfg"))
    monkeypatch.delenv("MINIWDL__JUPYTER__BACKEND")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(workdir / "runtime"))  # only this server is found
    port, token = _free_port(), secrets.token_hex(16)
    log = open(workdir / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )
    km = kc = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                if list((workdir / "runtime").glob("jpserver-*.json")):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise AssertionError("jupyter_server did not start: " + (workdir / "server.log").read_text()[-2000:])
            time.sleep(0.3)
        # What jupyter_server gives a notebook's kernel: its path, and its folder as working directory.
        monkeypatch.setenv("JPY_SESSION_NAME", str(root / "sub" / "analysis.ipynb"))
        km, kc = start_new_kernel(kernel_name="python3", cwd=str(root / "sub"))
        kernel = KernelSession(km, kc)
        kernel.run("%load_ext miniwdl_jupyter")
        yield kernel, root
    finally:
        if kc is not None:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def shown(messages: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Output name -> its display bundle (the bundle whose text/plain starts with `name:`)."""
    bundles = [m["content"]["data"] for m in messages if m["msg_type"] == "display_data"]
    by_name: Dict[str, Dict[str, Any]] = {}
    for data in bundles:
        name = data.get("text/plain", "").split(":", 1)[0]
        by_name.setdefault(name, data)
    return by_name


def test_caps_and_links_under_the_server_root(server_and_kernel):
    kernel, root = server_and_kernel
    (root / "sub" / "caps.wdl").write_text(CAPS_WDL)
    messages = kernel.run("%wdl run -f caps.wdl -o r --progress none", timeout=300)
    outputs = shown(messages)
    images = [m for m in messages if m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]]
    assert images == [], "no output is an image small enough to embed on its own"

    # Images over 2 MB: a link only. HTML over 2 MB: no iframe, a link only.
    for name, file in (("big_png", "big.png"), ("big_html", "big.html")):
        html = outputs[name]["text/html"]
        assert "<img " not in html and "<iframe" not in html, name
        assert re.search(rf"<a href='\.\./runs/[^']+/out/{name}/{file}'", html), html
    # Up to 12 embedded images per output; the 13th is a link.
    pngs = outputs["pngs"]["text/html"]
    assert pngs.count("<img ") == 12 and pngs.count("<a href='../runs/") == 13
    assert "(Array, 13 items)" in outputs["pngs"]["text/plain"]
    # JSON over 1 MB is shown as text (its first 64 KB), not parsed and pretty-printed.
    big_json = outputs["big_json"]
    assert "(1 line, first 1 shown)" in big_json["text/plain"] and len(big_json["text/html"]) < 70_000
    # JSON is pretty-printed up to 45 lines.
    long_json = [line for line in outputs["long_json"]["text/plain"].splitlines() if line.startswith("  | ")]
    assert long_json[0] == "  | {" and long_json[44] == '  |   "k44": 44,' and long_json[45:] == ["  | ..."]
    # A directory: 200 entries, 4 levels.
    tree = outputs["tree"]["text/plain"].splitlines()
    assert "        d/" in tree and not any(line.strip() in ("e/", "deep.txt 5 B") for line in tree)
    files = [line for line in tree if re.fullmatch(r"  f\d+\.txt 4 B", line)]
    assert len(files) == 200 - 4 and tree[-1].strip() == "...", tree[-3:]
    assert "<a href='../runs/" in outputs["tree"]["text/html"]


def test_paths_outside_the_server_root_are_not_links(server_and_kernel, workdir):
    kernel, root = server_and_kernel
    (root / "sub" / "note.wdl").write_text(SMALL_WDL)
    inside = shown(kernel.run("%wdl run -f note.wdl -o a --progress none", timeout=300))["note"]["text/html"]
    assert re.search(r"<a href='\.\./runs/[^']+/out/note/note\.txt'", inside), inside
    outside = shown(kernel.run(f"%wdl run -f note.wdl --dir {workdir / 'elsewhere'} --no-cache -o b --progress none", timeout=300))
    assert "note.txt" in outside["note"]["text/html"] and "<a " not in outside["note"]["text/html"]
    assert "hello" in outside["note"]["text/plain"], "still previewed, only not linked"
