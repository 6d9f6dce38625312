"""Where the WDL and its inputs come from, through the magic in a real IPython shell: files named
like WDL keywords, WDL over plain HTTP (a real `http.server` on a free port), and input that is bad
in every way a user can get wrong, each reported as one short error.

Runs use the `local` backend: these are about reading input, not about containers.
"""

from __future__ import annotations

import functools
import http.server
import socket
import threading

import pytest
from IPython.core.error import UsageError

from miniwdl_jupyter.errors import InputError, WDLSourceError

from conftest import wdl

RUN = "--backend local --progress none"
TASK = "version 1.1\ntask hello {\n  input { String who = \"you\" }\n  command <<<\n    echo \"hi ~{who}\"\n  >>>\n  output { String message = read_string(stdout()) }\n}\n"


def short_error(shell, capsys, cell: str, kind: type) -> str:
    """Run a cell that must fail with `kind`; return its message, checking the cell printed a few
    lines and no traceback."""
    capsys.readouterr()
    result = shell.run_cell(cell)
    assert isinstance(result.error_in_exec, kind), f"{cell!r}: {result.error_in_exec!r}"
    printed = capsys.readouterr()
    shown = (printed.out + printed.err).strip()
    assert "Traceback" not in shown and len(shown.splitlines()) <= 4, shown
    return str(result.error_in_exec)


@pytest.fixture
def served(tmp_path_factory):
    """A folder served over plain HTTP on a free loopback port: (folder, base URL)."""
    folder = tmp_path_factory.mktemp("served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_wdl_over_http_with_imports_relative_to_the_url(shell, served, capsys):
    folder, base = served
    (folder / "wf").mkdir()
    (folder / "wf" / "main.wdl").write_text(wdl("lib/main.wdl"))
    (folder / "wf" / "greet.wdl").write_text(wdl("lib/greet.wdl"))
    assert shell.run_cell(f"%%wdl -f {base}/wf/main.wdl {RUN} -o r\nwho: bea\n").success
    assert shell.user_ns["r"].outputs == {"message": "hi bea"}
    assert shell.run_cell(f"%wdl run -f {base}/wf/main.wdl who=cy {RUN} -o r2").success
    assert shell.user_ns["r2"].outputs == {"message": "hi cy"}
    assert shell.run_cell(f"%wdl check -f {base}/wf/main.wdl").success
    assert "main: no problems" in capsys.readouterr().out

    message = short_error(shell, capsys, f"%wdl run -f {base}/wf/nothere.wdl {RUN}", WDLSourceError)
    assert message == f"WDL file not found: {base}/wf/nothere.wdl"
    (folder / "wf" / "broken.wdl").write_text('version 1.1\nimport "gone.wdl"\nworkflow w {}\n')
    message = short_error(shell, capsys, f"%wdl run -f {base}/wf/broken.wdl {RUN}", WDLSourceError)
    assert "broken.wdl:2:1" in message and "gone.wdl" in message and "not found" in message


def test_a_host_that_does_not_answer_is_not_a_missing_file(shell, capsys):
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = short_error(shell, capsys, f"%wdl run -f http://127.0.0.1:{port}/main.wdl {RUN}", WDLSourceError)
    assert f"127.0.0.1:{port} did not answer" in message and "not found" not in message


@pytest.mark.parametrize("name", ["workflow.wdl", "tasks.wdl", "structs.wdl", "imports.wdl", "version.wdl", "task"])
def test_files_named_like_wdl_keywords_are_files(shell, workdir, capsys, name):
    (workdir / name).write_text(TASK)
    assert shell.run_cell(f"%wdl run -f {name} who=kw {RUN} -o r").success
    assert shell.user_ns["r"].outputs == {"message": "hi kw"}
    assert shell.run_cell(f"%wdl check -f {name}").success
    (workdir / name).unlink()
    assert short_error(shell, capsys, f"%wdl run -f {name} {RUN}", WDLSourceError) == f"WDL file not found: {name}"


def test_malformed_configuration_file(shell, workdir, capsys):
    (workdir / "bad.cfg").write_text("this is not an INI file\n")
    message = short_error(shell, capsys, f"%%wdl --cfg bad.cfg {RUN}\n{TASK}", UsageError)
    assert message.startswith("bad.cfg, line 1: not a valid miniwdl configuration file")
    (workdir / "dup.cfg").write_text("[jupyter]\nroot = a\nroot = b\n")
    assert "dup.cfg, line 3" in short_error(shell, capsys, f"%%wdl --cfg dup.cfg {RUN}\n{TASK}", UsageError)
    (workdir / "latin1.cfg").write_bytes("[jupyter]\nroot = caf\xe9\n".encode("latin-1"))
    assert "latin1.cfg is not UTF-8" in short_error(shell, capsys, f"%%wdl --cfg latin1.cfg {RUN}\n{TASK}", UsageError)
    assert not (workdir / "wdl_runs").exists() or not any((workdir / "wdl_runs").glob("*_hello")), "nothing started"


def test_files_that_are_not_utf8_are_named(shell, workdir, capsys):
    (workdir / "latin1.wdl").write_bytes(TASK.replace("hi", "h\xe9").encode("latin-1"))
    message = short_error(shell, capsys, f"%wdl run -f latin1.wdl {RUN}", WDLSourceError)
    assert "latin1.wdl is not UTF-8 text" in message
    (workdir / "main.wdl").write_text('version 1.1\nimport "latin1.wdl"\nworkflow w {}\n')
    message = short_error(shell, capsys, f"%wdl run -f main.wdl {RUN}", WDLSourceError)
    assert "main.wdl:2:1" in message and "latin1.wdl is not UTF-8 text" in message

    (workdir / "hello.wdl").write_text(TASK)
    (workdir / "inputs.json").write_bytes('{"who": "Jos\xe9"}'.encode("latin-1"))
    message = short_error(shell, capsys, f"%wdl run -f hello.wdl -i inputs.json {RUN}", InputError)
    assert "inputs.json is not UTF-8 text" in message


def test_inputs_naming_a_directory(shell, workdir, capsys):
    (workdir / "hello.wdl").write_text(TASK)
    (workdir / "inputs").mkdir()
    message = short_error(shell, capsys, f"%wdl run -f hello.wdl -i inputs {RUN}", InputError)
    assert message == "inputs file inputs is a directory; give a JSON or YAML file"
    message = short_error(shell, capsys, f"%wdl run -f inputs {RUN}", WDLSourceError)
    assert message == "inputs is a directory, not a WDL file"


def test_missing_file_with_a_cell_body_reports_the_file(shell, capsys):
    message = short_error(shell, capsys, f"%%wdl -f missing.wdl {RUN}\nwho: x\n", WDLSourceError)
    assert message == "WDL file not found: missing.wdl"
    message = short_error(shell, capsys, f"%%wdl -f missing.wdl {RUN}\n{TASK}", WDLSourceError)
    assert message == "WDL file not found: missing.wdl"


def test_wdl_in_the_body_of_a_file_cell_is_called_out(shell, workdir, capsys):
    (workdir / "hello.wdl").write_text(TASK)
    message = short_error(shell, capsys, f"%%wdl -f hello.wdl {RUN}\n{TASK}", InputError)
    assert "looks like WDL" in message


def test_unknown_input_lists_the_documents_inputs_only(shell, capsys):
    message = short_error(shell, capsys, f"%%wdl nosuch=1 {RUN}\n{TASK}", InputError)
    assert message == "hello has no input 'nosuch' (inputs: who)"
    message = short_error(shell, capsys, f"%%wdl nosuch=1 {RUN}\n{wdl('scatter.wdl')}", InputError)
    assert "_runtime" not in message and "greeting" in message and "names" in message


def test_a_document_with_nothing_to_run(shell, capsys):
    for body in ("version 1.1\n", "version 1.1\nstruct S { Int x }\n"):
        message = short_error(shell, capsys, f"%%wdl {RUN}\n{body}", WDLSourceError)
        assert message == "cell has no workflow or task to run"
