"""The fast reader of miniwdl's JSON log gives the events json.loads gives, line by line."""

from __future__ import annotations

import json

from miniwdl_jupyter.json_log import VALUE_EVENTS, events


def reference(data: bytes) -> list:
    """What the monitor did before: json.loads of every non-blank line but value events."""
    found = []
    for line in data.split(b"\n"):
        if not line.strip() or any(line.startswith(f'{{"message": "{m}"'.encode()) for m in VALUE_EVENTS):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            found.append(event)
    return found


ODD_LINES = [
    b'{"message": "ready", "level": "NOTICE", "job": "call-a-0", "timestamp": 1.5, "source": "wdl.w:w", "levelno": 25}',
    b"",
    b"   ",
    b"not json {",
    b'  {"message": "indented", "source": "wdl.w:w"}  ',
    b'{"message": "crlf", "source": "wdl.w:w"}\r',
    b'{"message": "extra data", "source": "wdl.w:w"} trailing',
    b'{"message": "two"} {"message": "objects"}',
    b'{"message": "escapes \\" and \\u00e9", "dir": "/x/\\"q\\"", "nested": {"a": [1, 2.5, null, true]}}',
    b'{"message": "a raw tab\tin a string"}',
    b'{"message": "visit", "level": "INFO"}',
    b'{"level": "INFO", "message": "visit"}',
    b'{"message": "inputs", "level": "INFO"}',
    b"[1, 2]",
    b"42",
    b'{"message": "big numbers", "n": 123456789012345678901234567890, "f": 1e400, "g": -Infinity}',
    b'{"message": "unterminated',
    "{\"message\": \"utf-8 \u00e9\u4e2d\"}".encode(),
]


def test_the_same_events_as_json_loads_on_odd_lines():
    data = b"\n".join(ODD_LINES) + b"\n"
    assert list(events(data)) == list(events(memoryview(data))) == reference(data)  # the monitor passes a memoryview
    assert [e["message"] for e in events(data)][:3] == ["ready", "indented", "crlf"]


def test_a_line_that_is_not_utf8_is_skipped_and_the_others_still_read():
    data = b"\n".join(ODD_LINES + [b'{"message": "bad \xff byte"}', b'{"message": "after"}']) + b"\n"
    got = list(events(memoryview(data)))
    assert got == reference(data)
    assert got[-1] == {"message": "after"} and all("bad" not in e["message"] for e in got)
