"""Output renderers: each WDL value by type, bounded reads, no HTML injection, no exceptions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from display_fixtures import TINY_PNG, kernel  # noqa: F401 - fixture
from miniwdl_jupyter.display import links, previews
from miniwdl_jupyter.display.renderers import render_value

SCRIPT = "<script>document.title='pwned'</script>"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    links.server_root.cache_clear()
    return tmp_path


def test_text_file_shows_first_lines_size_and_line_count(here):
    path = here / "log.txt"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    frag = render_value(path)
    assert "line 0" in frag.html and "line 14" in frag.html and "line 15" not in frag.html
    assert "100 lines" in frag.text and "first 15 shown" in frag.text
    assert "790 B" in frag.html  # its size


def test_large_text_file_is_previewed_not_loaded(here):
    path = here / "big.txt"
    with open(path, "w") as f:
        line = "x" * 99 + "\n"
        for _ in range(300_000):  # 30 MB: more than the line counter reads
            f.write(line)
    frag = render_value(path)
    # The line count stopped at the 16 MB it may read: it says "over N lines" with N short of the
    # file's 300,000, and the first lines are still shown.
    counted = re.search(r"over ([\d,]+) lines", frag.text)
    assert counted, frag.text
    assert int(counted.group(1).replace(",", "")) <= previews.LINE_COUNT_BYTES // 100 + 1 < 300_000
    assert "x" * 99 in frag.text
    assert len(frag.html) < 10_000


def test_csv_and_tsv_render_as_tables_with_column_counts(here):
    (here / "t.csv").write_text("sample,reads,ok\n" + "".join(f"s{i},{i * 10},yes\n" for i in range(30)))
    (here / "t.tsv").write_text("a\tb\n1\t2\n")
    csv_frag = render_value(here / "t.csv")
    assert "<th style='text-align:left'>reads</th>" in csv_frag.html
    assert "3 columns, 31 lines" in csv_frag.text
    assert csv_frag.html.count("<tr>") == 11  # header + first 10 rows
    assert "2 columns" in render_value(here / "t.tsv").text


def test_json_is_pretty_printed(here):
    (here / "m.json").write_text(json.dumps({"reads": 12, "nested": {"ok": True}}))
    frag = render_value(here / "m.json")
    assert '"nested": {\n    "ok": true' in frag.text.replace("  | ", "")


def test_html_and_svg_go_into_a_sandboxed_iframe_escaped(here):
    (here / "report.html").write_text(f"<h1>Report</h1>{SCRIPT}")
    (here / "plot.svg").write_text(f"<svg xmlns='http://www.w3.org/2000/svg'>{SCRIPT}<circle r='4'/></svg>")
    for name in ("report.html", "plot.svg"):
        html = render_value(here / name).html
        iframe = re.search(r"<iframe [^>]*>", html).group(0)
        assert "sandbox=''" in iframe
        assert "allow-scripts" not in html and "allow-same-origin" not in html
        assert "<script>" not in html  # only inside srcdoc, escaped
        assert "&lt;script&gt;" in iframe
        assert "Content-Security-Policy" in html


def test_images_are_embedded(here):
    (here / "p.png").write_bytes(TINY_PNG)
    assert "<img src='data:image/png;base64," in render_value(here / "p.png").html


def test_other_files_show_name_size_and_a_link(here):
    (here / "out").mkdir()
    (here / "out" / "reads.bam").write_bytes(b"BAM\x01\x00\x00" * 100)
    frag = render_value(here / "out" / "reads.bam")
    assert "<a href='out/reads.bam'" in frag.html and "600 B" in frag.html


def test_paths_outside_the_server_root_are_not_links(here, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "x.txt"
    elsewhere.write_text("x\n")
    assert "<a " not in render_value(elsewhere).html


def test_missing_and_unreadable_files_are_shown_as_such(here):
    (here / "plain.txt").write_text("x")
    assert "(missing)" in render_value(here / "nope.txt").text
    # stat() through a regular file fails with ENOTDIR: an OSError that is not "missing".
    assert "(unreadable" in render_value(here / "plain.txt" / "child").text


def test_directories_render_as_trees_with_sizes(here):
    d = here / "results"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("12345")
    (d / "sub" / "b.txt").write_text("1")
    frag = render_value(d)
    assert "a.txt 5 B" in frag.text and "sub/" in frag.text and "b.txt 1 B" in frag.text
    assert "<a href='results/sub/b.txt'" in frag.html


def test_arrays_maps_pairs_and_scalars_nest(here):
    (here / "a.txt").write_text("A\n")
    value = {"left": 1, "files": [here / "a.txt", here / "gone.txt"], "pair": (3, "three"), "x": None}
    frag = render_value(value)
    assert frag.html.count("<details open>") == 3  # the map, the array, the pair
    assert "(Array, 2 items)" in frag.text and "gone.txt (missing)" in frag.text
    assert "'three'" in frag.text and "None" in frag.text


def test_long_arrays_are_capped(here):
    frag = render_value(list(range(500)))
    assert "450 more" in frag.text and frag.html.count("<li>") == 51


def test_scalars_and_names_are_escaped(here):
    frag = render_value(SCRIPT)
    assert "<script>" not in frag.html and "&lt;script&gt;" in frag.html


def test_render_outputs_in_a_kernel_shows_images_as_image_outputs(kernel, tmp_path):
    (tmp_path / "plot.png").write_bytes(TINY_PNG)
    (tmp_path / "n.txt").write_text("hello\n")
    kernel.run(
        "from pathlib import Path\n"
        "from miniwdl_jupyter.display import render_outputs\n"
        "class FakeRun:\n"
        "    run_dir = Path('.'); name = 'demo'; status = 'succeeded'\n"
        f"    outputs = {{'plot': Path({str(tmp_path / 'plot.png')!r}), 'note': Path({str(tmp_path / 'n.txt')!r}), '<b>x</b>': 3}}\n"
    )
    messages = kernel.run("render_outputs(FakeRun())")
    data = [m["content"]["data"] for m in messages if m["msg_type"] == "display_data"]
    assert any("image/png" in d for d in data), data
    assert any("hello" in d.get("text/html", "") for d in data)
    assert any("&lt;b&gt;x&lt;/b&gt;" in d.get("text/html", "") for d in data)
    assert all("text/plain" in d for d in data)


@pytest.mark.parametrize(
    "name, shows",
    [("p.jpg", "<img src='data:image/jpeg;base64,"), ("p.jpeg", "<img src='data:image/jpeg;base64,"),
     ("p.gif", "<img src='data:image/gif;base64,"), ("page.htm", "<iframe "), ("t.tab", "2 columns")],
)
def test_every_documented_extension_gets_its_rendering(here, name, shows):
    """docs/display.md's table: .jpg/.jpeg/.gif embedded as images, .htm in the iframe, .tab a table."""
    (here / name).write_bytes(TINY_PNG if name.startswith("p.") else b"a\tb\n1\t2\n" if name.endswith(".tab") else b"<p>hi</p>")
    frag = render_value(here / name)
    assert shows in frag.html + frag.text, (frag.html, frag.text)
