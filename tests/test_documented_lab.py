"""What docs/lab.md says about the server endpoints, over HTTP against a real JupyterLab with the
server extension enabled by the repository's config file (lab_fixtures.jupyterlab): the run cap
and `more`, a custom `[jupyter] root`, and requests without the server's token refused."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from display_fixtures import make_run
from lab_fixtures import browser_page, jupyterlab, lab_backend, labextension  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def call(base: str, path: str, token: str = "", body: dict = None) -> tuple:  # type: ignore[assignment]
    request = urllib.request.Request(
        f"{base}/miniwdl-jupyter/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {token}"} if token else {},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode(errors="replace")


def finished_runs(root: Path, n: int) -> list:
    names = [f"20260101_{i // 60:02d}{i % 60:02d}00_r{i:03d}" for i in range(n)]
    for name in names:
        make_run(root / name, 1, 1, call_dirs=False).succeed({"n": 1})
    return names


def test_the_newest_50_runs_are_listed_and_more_says_how_many_are_not(workdir, jupyterlab):
    base, token = jupyterlab
    names = finished_runs(workdir / "wdl_runs", 53)
    status, listed = call(base, "runs?path=", token)
    assert status == 200, listed
    assert [r["name"] for r in listed["runs"]] == sorted(names, reverse=True)[:50]  # newest first
    assert listed["more"] == 3 and listed["root"] == "wdl_runs"


@pytest.fixture
def custom_root(workdir, monkeypatch: pytest.MonkeyPatch) -> str:
    """`[jupyter] root` from a miniwdl.cfg, set before JupyterLab starts."""
    cfg = workdir / "custom.cfg"
    cfg.write_text("[jupyter]\nroot = my_runs\n")
    monkeypatch.setenv("MINIWDL_CFG", str(cfg))
    return "my_runs"


def test_a_custom_run_root_is_listed_relative_to_the_notebook_folder(workdir, custom_root, jupyterlab):
    base, token = jupyterlab
    [name] = finished_runs(workdir / "project" / custom_root, 1)
    finished_runs(workdir / "wdl_runs", 2)  # the default root is not what is listed
    status, listed = call(base, "runs?path=project", token)
    assert status == 200, listed
    assert listed["folder"] == "project" and listed["root"] == f"project/{custom_root}"
    assert [r["name"] for r in listed["runs"]] == [name] and listed["more"] == 0


def test_the_endpoints_refuse_requests_without_the_token(workdir, jupyterlab):
    base, token = jupyterlab
    finished_runs(workdir / "wdl_runs", 1)
    check = {"path": "", "kind": "cell", "text": "version 1.1\nworkflow w {}\n"}
    for path, body in (("runs?path=", None), ("check", check), ("runs/cancel", {"path": "wdl_runs"})):
        status, answer = call(base, path, "", body)
        assert status in (401, 403), (path, status, answer)
        assert "r000" not in str(answer)
        status, answer = call(base, path, "not-the-token", body)
        assert status in (401, 403), (path, status, answer)
    assert call(base, "runs?path=", token)[0] == 200
    assert call(base, "check", token, check) == (200, {"diagnostics": []})


def test_the_sidebar_order_columns_cap_and_actions(workdir, jupyterlab, browser_page):
    """In Chromium: `.wdl` registered as text/x-wdl; the sidebar: newest first, each row's facts, the 50-row cap with its "older runs" line, and
    the folder / outputs / copy attach actions."""
    from lab_fixtures import open_lab

    base, token = jupyterlab
    names = finished_runs(workdir / "wdl_runs", 52)
    newest = sorted(names)[-1]
    (workdir / "wdl_runs" / newest / "out" / "n").mkdir(parents=True)
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    open_lab(page, base, token)
    # .wdl files are registered as the text/x-wdl language
    mime_types = page.evaluate("() => window.jupyterapp.docRegistry.getFileTypesForPath('main.wdl').flatMap(t => t.mimeTypes)")
    assert "text/x-wdl" in mime_types, mime_types
    page.evaluate("() => window.jupyterapp.shell.activateById('miniwdl-jupyter-runs')")
    page.wait_for_selector(".miniwdl-runs-row", timeout=30_000)
    rows = page.locator(".miniwdl-runs-row")
    assert rows.count() == 50
    shown = page.eval_on_selector_all(".miniwdl-runs-row", "rows => rows.map(r => r.dataset.run)")
    assert shown == sorted(names, reverse=True)[:50]
    assert "... and 2 older runs" in page.inner_text(".miniwdl-runs-list")
    first = f".miniwdl-runs-row[data-run='{newest}']"
    facts = page.inner_text(f"{first} .miniwdl-runs-facts")
    assert "1/1 calls" in facts and facts.count("·") >= 3, facts  # backend · start · duration · calls
    button = lambda label: page.locator(f"{first} .miniwdl-runs-action:text-is('{label}')")  # noqa: E731
    # (the list re-renders on every refresh: dispatch the click rather than wait for a still button)
    button("copy attach").dispatch_event("click")
    assert page.evaluate("() => navigator.clipboard.readText()") == f"%wdl attach {newest}"
    button("outputs").dispatch_event("click")
    page.wait_for_selector(".jp-DirListing-item[title*='Name: n']", timeout=30_000)
    # The sidebar follows the file browser's folder: back to the top, then the run's folder.
    page.evaluate("() => window.jupyterapp.commands.execute('filebrowser:go-to-path', {path: '/'})")
    page.evaluate("() => window.jupyterapp.shell.activateById('miniwdl-jupyter-runs')")
    button("folder").dispatch_event("click")
    page.wait_for_selector(".jp-DirListing-item[title*='Name: outputs.json']", timeout=30_000)
