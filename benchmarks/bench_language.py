"""Language-service benchmark: completion and hover in a 2,000-line WDL document with imports.

The document (a `%%wdl` cell): an import of a 200-line library beside it, ~100 tasks and a
workflow calling each of them, 2,000 lines in all. Requests alternate between completion inside a
call's braces (the callee's missing inputs) and hover on a call (the task's inputs and outputs),
as an editor sends them while the user moves around one version of the text.

- service: `LanguageService` as the server extension runs it; the document is parsed once (the
  first request after a change, timed apart as "after a change"), later requests reuse the parse.
  Then "while typing": each request on a new text (as every keystroke makes one): completion
  answers from the last parse while the newest text parses in the background.
- baseline: parsing per request (a fresh service for each request: parse, resolve imports,
  typecheck, then answer), what a handler without the per-version cache would do.
Goal (issue 23): completion and hover under 100 ms. Figures: median [min-max] ms over --requests
requests of each kind, and the ratio of medians.

    python benchmarks/bench_language.py [--lines 2000] [--requests 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from miniwdl_jupyter.language import LanguageService

TASK = """task step{i} {{
  input {{
    File reads
    String sample
    Int threads = 4
    Float? min_quality
  }}
  command <<<
    tool --threads ~{{threads}} --sample ~{{sample}} ~{{reads}} > out.txt
  >>>
  output {{
    File out = "out.txt"
    Int count = read_int("out.txt")
  }}
  runtime {{
    docker: "debian:bookworm-slim"
    cpu: threads
  }}
}}
"""
CALL = "  call step{i} {{ input: reads = reads, sample = \"s{i}\" }}\n"
LIB_TASK = TASK.replace("task step", "task lib_step")


def document(lines: int) -> str:
    tasks, calls, i = [], [], 0
    body = lambda: "%%wdl -o r\nversion 1.1\nimport \"lib.wdl\"\nworkflow big {\n  input { File reads }\n  call lib.lib_step0 { input: reads = reads, sample = \"lib\" }\n" + "".join(calls) + "}\n" + "".join(tasks)  # noqa: E731
    while len(body().split("\n")) < lines:
        tasks.append(TASK.format(i=i))
        calls.append(CALL.format(i=i))
        i += 1
    return body()


def median(samples):  # type: ignore[no-untyped-def]
    return f"{statistics.median(samples):.2f} [{min(samples):.2f}-{max(samples):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-language-"))
    (folder / "lib.wdl").write_text("version 1.1\n" + "".join(LIB_TASK.format(i=i) for i in range(10)))
    text = document(args.lines)
    lines = text.split("\n")
    call_lines = [n for n, l in enumerate(lines, 1) if l.startswith("  call step")]
    print(f"document: {len(lines)} lines, {len(call_lines)} calls, importing lib.wdl ({len((folder / 'lib.wdl').read_text().splitlines())} lines)")

    def complete(service, n):  # type: ignore[no-untyped-def]
        line = call_lines[n % len(call_lines)]
        answer = service.complete("cell", text, folder, line, lines[line - 1].index("reads = ") - 1)
        assert [i["label"] for i in answer["items"]] == ["threads", "min_quality"], answer  # sample, reads given

    def hover(service, n):  # type: ignore[no-untyped-def]
        line = call_lines[n % len(call_lines)]
        answer = service.hover("cell", text, folder, line, lines[line - 1].index("step") + 1)
        assert answer and "inputs:" in answer["text"], answer

    def timed(fn, *a):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        fn(*a)
        return (time.perf_counter() - start) * 1000

    service = LanguageService()
    first = timed(complete, service, 0)  # the parse after a change, then the answer
    figures = {"completion": ([], []), "hover": ([], [])}
    for n in range(args.requests):  # alternate the sides so load spikes hit both
        for kind, fn in (("completion", complete), ("hover", hover)):
            figures[kind][0].append(timed(fn, service, n))
            figures[kind][1].append(timed(fn, LanguageService(), n))
    one_version_parses = service.documents.parses
    assert one_version_parses == 1, one_version_parses
    # Typing: every request comes with a new text (one more character in a comment). Completion
    # answers from the last parse; the newest text parses in the background, one at a time.
    typing = []
    for n in range(args.requests):
        text_n = text + "#" + "x" * n
        line = call_lines[n % len(call_lines)]
        start = time.perf_counter()
        answer = service.complete("cell", text_n, folder, line, lines[line - 1].index("reads = ") - 1)
        typing.append((time.perf_counter() - start) * 1000)
        assert [i["label"] for i in answer["items"]] == ["threads", "min_quality"], answer
        time.sleep(0.05)  # a fast typist: 20 characters a second
    service.documents.wait_idle()
    print(f"first request after a change, waiting for its parse (parse + typecheck + answer): {first:.1f} ms")
    print(f"while typing ({args.requests} requests, each on a new text, 50 ms apart): completion {median(typing)} ms, "
          f"answered from the last parse; {service.documents.parses - 1} background parses")
    print(f"parses for {2 * args.requests + 1} requests on one version: {one_version_parses}")
    print("| request | parsed once per change (ms) | baseline: parsed per request (ms) | baseline / service |")
    print("|---|---|---|---|")
    for kind, (ours, base) in figures.items():
        print(f"| {kind} | {median(ours)} | {median(base)} | {statistics.median(base) / statistics.median(ours):.0f}x |")
    worst = max(max(figures["completion"][0]), max(figures["hover"][0]), max(typing))
    print(f"goal: under 100 ms: {'met' if worst < 100 else 'NOT met'} (slowest request {worst:.2f} ms)")


if __name__ == "__main__":
    main()
