"""The WDL language service (miniwdl_jupyter.language) on real documents: a notebook cell that
imports a .wdl file beside the notebook and one served over HTTP, answered as the JupyterLab
extension asks (completion, hover, go to definition, the line a failed run failed on)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from miniwdl_jupyter import runs
from miniwdl_jupyter.language import LanguageService

LIB = """version 1.1
struct Sample {
  String id
  File reads
}
task greet {
  input {
    String name
    Int times = 1
    Boolean? loud
  }
  parameter_meta {
    name: "who to greet"
  }
  command <<< echo "hello ~{name}" >>>
  output {
    String msg = read_string(stdout())
  }
}
"""
CELL = """%%wdl -o r
version 1.1
import "lib.wdl"
workflow w {
  input {
    Array[String] names
    Int n = 2
  }
  call lib.greet { input: name = "x", }
  output {
    String m = greet.msg
  }
}
"""


def at(text: str, needle: str, delta: int = 0):  # type: ignore[no-untyped-def]
    """(1-based line, 0-based offset in the line) of `needle` (+delta) in text."""
    i = text.index(needle) + delta
    return text[:i].count("\n") + 1, i - (text.rfind("\n", 0, i) + 1)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "lib.wdl").write_text(LIB)
    return tmp_path


def labels(answer) -> list:  # type: ignore[no-untyped-def]
    return [item["label"] for item in answer["items"]]


def test_completion_offers_what_fits_where_the_cursor_is(folder):
    service = LanguageService()
    # Inside a call's braces: the callee's inputs not yet given, required first.
    cell = CELL.replace('name = "x", ', "")
    answer = service.complete("cell", cell, folder, *at(cell, "input: ", 7))
    assert labels(answer) == ["name", "times", "loud"]
    assert answer["items"][0]["detail"] == "String (required)"
    answer = service.complete("cell", CELL, folder, *at(CELL, '"x", ', 5))
    assert labels(answer) == ["times", "loud"]  # name is given
    # After `name =` in a call: values (names in scope, the standard library for WDL 1.1).
    answer = service.complete("cell", CELL, folder, *at(CELL, '"x"'))
    assert {"names", "n", "greet", "select_first", "min"} <= set(labels(answer))
    assert "contains" not in labels(answer)  # WDL 1.2's, not 1.1's
    sub = next(i for i in answer["items"] if i["label"] == "sub")
    assert sub["detail"] == "String sub(String input, String pattern, String replace)"
    # After `call `: tasks and workflows in scope, imported ones by namespace.
    typing = CELL.replace("call lib.greet {", "call lib.greet {}\n  call \n  call x {")
    answer = service.complete("cell", typing, folder, *at(typing, "call \n", 5))
    assert "lib.greet" in labels(answer)
    # `lib.` : the import's members; `greet.`: the call's outputs.
    typing = CELL.replace("String m = greet.msg", "String m = greet.")
    assert labels(service.complete("cell", typing, folder, *at(typing, "greet.\n", 6))) == ["msg"]
    # In a task's runtime section: its keys; at a declaration: types and structs.
    task = LIB.replace("  output {", "  runtime {\n    \n  }\n  output {")
    assert {"docker", "memory", "cpu"} <= set(labels(service.complete("lib.wdl", task, folder, *at(task, "runtime {\n    ", 16))))
    assert {"String", "Array", "Sample"} <= set(labels(service.complete("cell", CELL, folder, *at(CELL, "Int n", 0))))
    requirements = LIB.replace("version 1.1", "version 1.2").replace("  output {", "  requirements {\n    \n  }\n  output {")
    assert "container" in labels(service.complete("lib.wdl", requirements, folder, *at(requirements, "requirements {\n    ", 21)))
    # `lib.`: the import's tasks; at the top level: the top-level keywords.
    typing = CELL.replace("call lib.greet {", "call lib. {")
    assert labels(service.complete("cell", typing, folder, *at(typing, "lib. {", 4))) == ["greet"]
    assert labels(service.complete("cell", CELL + "\nwo", folder, CELL.count("\n") + 2, 2)) == ["version", "import", "struct", "workflow", "task"]


def test_completion_on_the_magic_line(folder):
    service = LanguageService()
    options = [("--out", "variable that receives the Run handle"), ("--backend", "container backend")]
    first = CELL.split("\n")[0] + " "
    answer = service.complete("cell", first + CELL[len(first) - 1:], folder, 1, len(first), options)
    assert labels(answer)[:2] == ["names=", "n="] and "--backend" in labels(answer)
    dollar = CELL.replace("%%wdl -o r", "%%wdl -o r names=$")
    answer = service.complete("cell", dollar, folder, 1, len("%%wdl -o r names=$"), options)
    assert answer["kernel"] == {"input": "names", "type": "Array[String]", "python_types": ["list", "tuple", "ndarray", "Series"]}
    assert labels(service.complete("cell", CELL, folder, 1, len("%%wdl -"), options)) == ["--out", "--backend"]


def test_hover_and_definition(folder):
    service = LanguageService()
    hover = service.hover("cell", CELL, folder, *at(CELL, "lib.greet {", 5))
    assert hover["text"].splitlines() == [
        "task lib.greet", "inputs:", "  String name (required)", "  Int times (default 1)", "  Boolean? loud (optional)",
        "outputs:", "  String msg",
    ]
    assert service.hover("cell", CELL, folder, *at(CELL, "greet.msg", 7))["text"] == "String greet.msg\noutput of task lib.greet"
    assert service.hover("cell", CELL, folder, *at(CELL, "names\n", 1))["text"] == "Array[String] names\ninput of workflow w, line 6"
    assert service.hover("lib.wdl", LIB, folder, *at(LIB, "~{name}", 3))["text"].endswith("parameter_meta: who to greet")
    assert service.hover("lib.wdl", LIB, folder, *at(LIB, "read_string", 1))["text"].startswith("String read_string(File)\nReads")
    struct = LIB + "workflow uses {\n  input { Sample s }\n}\n"
    assert service.hover("lib.wdl", struct, folder, *at(struct, "Sample s", 1))["text"] == "struct Sample\n  String id\n  File reads"
    found = service.definition("lib.wdl", struct, folder, *at(struct, "Sample s", 1))
    assert (found["line"], found["column"]) == (2, 1)  # the struct
    found = service.definition("cell", CELL, folder, *at(CELL, "names\n", 1))
    assert found["line"] == 6  # the declaration of names
    # Go to definition: the imported task's file and line; the import's file.
    found = service.definition("cell", CELL, folder, *at(CELL, "lib.greet {", 5))
    assert (found["abspath"], found["line"]) == (str(folder / "lib.wdl"), 6)
    found = service.definition("cell", CELL, folder, *at(CELL, '"lib.wdl"', 3))
    assert (found["abspath"], found["line"]) == (str(folder / "lib.wdl"), 1)


def test_parsed_once_per_change_and_answers_while_the_text_does_not_parse(folder):
    service = LanguageService()
    for _ in range(5):
        service.complete("cell", CELL, folder, *at(CELL, '"x", ', 5))
        service.hover("cell", CELL, folder, *at(CELL, "lib.greet {", 5))
    assert service.documents.parses == 1
    # Mid-typing: a half-written line; the rest still answers.
    typing = CELL.replace('call lib.greet { input: name = "x", }', "call lib.greet { input: name = \"x\", ti")
    answer = service.complete("cell", typing, folder, *at(typing, ", ti", 4))
    assert labels(answer) == ["times", "loud"] and answer["from"] == at(typing, ", ti", 2)[1]
    assert service.documents.wait_idle() and service.documents.parses == 2
    # While typing, completion answers from the last parse and the new text parses meanwhile:
    # a task typed just now is offered once that parse is done.
    added = CELL + "task mine {\n  command <<< >>>\n}\n"
    calling = added.replace("call lib.greet {", "call  {")
    assert "mine" not in labels(service.complete("cell", calling, folder, *at(calling, "call  {", 5)))
    assert service.documents.wait_idle()
    assert "mine" in labels(service.complete("cell", calling, folder, *at(calling, "call  {", 5)))
    # Beyond repair: the last version that parsed still answers.
    broken = CELL.replace("workflow w {", "workflow w { {{ ] ) (")
    assert labels(service.complete("cell", broken, folder, *at(broken, '"x", ', 5))) == ["times", "loud"]


def test_http_imports_are_fetched_once(tmp_path):
    served = tmp_path / "site"
    served.mkdir()
    (served / "lib.wdl").write_text(LIB)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # type: ignore[no-untyped-def]
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/lib.wdl"
        cell = CELL.replace('"lib.wdl"', f'"{url}"')
        service = LanguageService()
        assert "name" in labels(service.complete("cell", cell.replace('name = "x", ', ""), tmp_path, *at(cell, "input: ", 7)))
        edited = cell.replace("Int n = 2", "Int n = 3")
        found = service.definition("cell", edited, tmp_path, *at(edited, "lib.greet {", 5))
        assert found == {"url": url, "line": 6, "column": 1}
        assert requests == ["/lib.wdl"], requests
    finally:
        server.shutdown()


@pytest.mark.parametrize("body, line, message", [
    ("  Int n = 3\n  call crash { input: k = n }\n", 5, "exit code 3: reading sample 3: bad header"),
    ("  Array[Int] a = [1]\n  Int bad = a[3]\n  call crash { input: k = bad }\n", 5, "OutOfBounds: Array index out of bounds"),
])
def test_a_failed_run_marks_the_line_that_failed(workdir, body, line, message):
    wdl = ("version 1.1\nworkflow breaks {\n" + body + "}\ntask crash {\n  input { Int k }\n"
           "  command <<< echo \"reading sample 3: bad header\" >&2; exit 3 >>>\n}\n")
    run = runs.run(wdl, backend="local", wait=False)
    run.wait(raise_on_failure=False)
    assert run.poll().status == "failed"
    mark = LanguageService().failure("cell", "%%wdl\n" + wdl, workdir, run.run_dir)
    assert (mark["line"], mark["message"]) == (line, message), mark


def test_a_failed_task_run_marks_its_task_line(workdir):
    wdl = "version 1.1\ntask crash {\n  command <<< echo \"bad header\" >&2; exit 3 >>>\n}\n"
    run = runs.run(wdl, backend="local", wait=False)
    run.wait(raise_on_failure=False)
    mark = LanguageService().failure("cell", "%%wdl\n" + wdl, workdir, run.run_dir)
    assert (mark["line"], mark["message"]) == (3, "exit code 3: bad header"), mark
