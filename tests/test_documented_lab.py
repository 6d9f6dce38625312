"""What docs/lab.md says about the server endpoints, over HTTP against a real JupyterLab with the
server extension enabled by the repository's config file (lab_fixtures.jupyterlab): the run cap
and `more`, a custom `[jupyter] root`, and requests without the server's token refused."""

from __future__ import annotations

import json
import time
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


# ---- diagnostics in the editor ------------------------------------------------------------------


def notebook_with(path: Path, source: str) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_an_error_in_an_imported_file_is_underlined_on_the_import_line(workdir, jupyterlab, browser_page):
    from lab_fixtures import open_notebook

    base, token = jupyterlab
    (workdir / "lib.wdl").write_text(
        "version 1.1\ntask greet {\n  input { String name }\n  Boolean b = 1\n  command <<< echo ~{name} >>>\n}\n"
    )
    notebook_with(workdir / "imports.ipynb",
                  '%%wdl check\nversion 1.1\nimport "lib.wdl"\nworkflow w {\n  call lib.greet { input: name = "x" }\n}\n')
    page = browser_page
    open_notebook(page, base, token, "imports.ipynb")
    mark = page.wait_for_selector(".jp-Notebook .jp-Cell .cm-lintRange-error", timeout=30_000)
    assert page.locator(".jp-Notebook .jp-Cell .cm-lintRange-error").count() == 1
    line = mark.evaluate("e => e.closest('.cm-line').textContent")
    assert line == 'import "lib.wdl"', line
    mark.hover()
    tooltip = page.wait_for_selector(".cm-tooltip-lint", timeout=10_000).inner_text()
    assert "lib.wdl" in tooltip and "Expected Boolean instead of Int" in tooltip, tooltip


RECORD_UNDERLINES = """() => {
  window.underlinedEver = [];
  new MutationObserver(() => {
    for (const e of document.querySelectorAll('.jp-Notebook .cm-lintRange-error')) {
      if (!window.underlinedEver.includes(e.textContent)) window.underlinedEver.push(e.textContent);
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def test_a_diagnostics_answer_for_text_that_changed_meanwhile_is_dropped(workdir, jupyterlab, browser_page):
    """The server's answers to `check` are held back (Playwright routes) until the cell's text has
    changed: the answer for the old text (an error on `true`) arrives first and must not be drawn,
    not even for a moment (its line and column would fall on `fresh` in the new text); the answer
    for the new text (an error on `1`) is."""
    from lab_fixtures import open_notebook

    base, token = jupyterlab
    notebook_with(workdir / "stale.ipynb", "%%wdl check\nversion 1.1\nworkflow w {\n  Int stale = true\n}\n")
    held = []
    page = browser_page
    page.route("**/miniwdl-jupyter/check*", lambda route: held.append(route))
    open_notebook(page, base, token, "stale.ipynb")
    page.evaluate(RECORD_UNDERLINES)

    def wait_for_requests(n: int) -> None:
        deadline = time.monotonic() + 30
        while len(held) < n:
            assert time.monotonic() < deadline, f"{len(held)} check requests, waiting for {n}"
            page.wait_for_timeout(50)  # lets Playwright deliver the route events

    wait_for_requests(1)
    old = held[0].fetch()  # the real server's answer to the old text, not yet given to the page
    assert [d["line"] for d in old.json()["diagnostics"]] == [4], old.json()
    page.click(".jp-Notebook .jp-Cell .cm-content")
    page.keyboard.press("Control+a")
    page.keyboard.insert_text("%%wdl check\nversion 1.1\nworkflow w {\n  Boolean fresh = 1\n}\n")
    wait_for_requests(2)
    with page.expect_event("requestfinished", lambda request: request == held[0].request):
        held[0].fulfill(response=old)
    held[1].fulfill(response=held[1].fetch())
    page.wait_for_function("document.querySelector('.jp-Notebook .cm-lintRange-error')?.textContent === '1'", timeout=30_000)
    assert page.evaluate("window.underlinedEver") == ["1"]


# ---- the sidebar's refresh periods ----------------------------------------------------------------

# Each `runs` request of the page: when it was made (the page's clock, which the test drives) and
# whether its answer had an active run; `runsPending` counts those whose answer the sidebar has not
# handled yet (the count drops in a task queued after the answer is read: after the sidebar has
# drawn it and set its next timer).
RECORD_RUNS_REQUESTS = """(() => {
  window.runsRequests = [];
  window.runsPending = 0;
  const realFetch = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const url = typeof input === 'string' ? input : input.url;
    if (!url.includes('/miniwdl-jupyter/runs?')) return realFetch(input, init);
    const entry = {at: Date.now(), active: null};
    window.runsRequests.push(entry);
    window.runsPending++;
    const handled = () => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => { window.runsPending--; };
      channel.port2.postMessage(null);
    };
    return realFetch(input, init).then(response => {
      const text = response.text.bind(response);
      response.text = () => text().then(body => {
        entry.active = JSON.parse(body).runs.some(r => r.active);
        handled();
        return body;
      });
      return response;
    }, error => { handled(); throw error; });
  };
})();"""


def test_the_sidebar_refreshes_every_2_s_while_a_run_is_active_every_15_s_otherwise_and_not_when_hidden(
    workdir, jupyterlab, browser_page
):
    """Playwright drives the page's clock: time advances in 250 ms steps, and after each step the
    test waits until the sidebar has handled any answer (so the next timer is set), then reads
    when each `runs` request was made."""
    from lab_fixtures import open_lab
    from miniwdl_jupyter import runs

    base, token = jupyterlab
    step = 250
    running = runs.run("version 1.1\ntask nap {\n  command <<< sleep 600 >>>\n}\n", backend="local", wait=False)
    try:
        page = browser_page
        page.clock.install()
        page.add_init_script(RECORD_RUNS_REQUESTS)
        open_lab(page, base, token)
        page.evaluate("() => window.jupyterapp.shell.activateById('miniwdl-jupyter-runs')")
        page.wait_for_selector(".miniwdl-runs-row.miniwdl-runs-running", timeout=60_000)
        page.wait_for_function("window.runsPending === 0")
        page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)  # (seconds)

        def advance(ms: int) -> None:
            for _ in range(ms // step):
                page.clock.run_for(step)
                page.wait_for_function("window.runsPending === 0", timeout=30_000)

        def requests() -> list:
            return page.evaluate("window.runsRequests.map(r => [r.at, r.active])")

        def check_periods(made: list) -> None:
            for (at, active), (next_at, _) in zip(made, made[1:]):
                period = 2000 if active else 15000
                assert period <= next_at - at <= period + step, (made, at, active, next_at)

        first = len(requests())  # those made before the clock was paused are not timed
        advance(7000)
        active_phase = requests()[first:]
        assert len(active_phase) >= 4 and all(active for _, active in active_phase[:-1]), active_phase
        check_periods(active_phase)

        running.cancel()
        deadline = time.monotonic() + 60
        while not running.poll().done:
            assert time.monotonic() < deadline, "the run did not end after its cancel"
            time.sleep(0.2)
        advance(40000)
        made = requests()[first:]
        idle = [r for r in made if r[1] is False]
        assert len(idle) >= 3, made  # the first answer without the run, then two 15 s periods
        check_periods(made)

        # Hidden: no request however long; shown again: one at once, then on the period.
        page.evaluate("() => window.jupyterapp.shell.activateById('filebrowser')")
        before = len(requests())
        advance(40000)
        assert len(requests()) == before
        page.evaluate("() => window.jupyterapp.shell.activateById('miniwdl-jupyter-runs')")
        page.wait_for_function(f"window.runsRequests.length === {before + 1} && window.runsPending === 0", timeout=30_000)
        advance(15000 + step)
        assert len(requests()) == before + 2
    finally:
        if not running.poll().done:
            running.cancel()
