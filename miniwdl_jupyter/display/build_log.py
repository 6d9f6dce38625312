"""Build output in a cell (`%wdl build`): the latest lines, redrawn in place, cleared when the build
ends (the whole log stays in the file the build names; a failure shows pip's error)."""

from __future__ import annotations

import html
import time
from typing import List

from IPython.display import display


class BuildLog:
    LINES = 12

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.handle = display(_Lines([]), display_id=True)
        self.last_draw = 0.0

    def line(self, text: str) -> None:
        self.lines = (self.lines + [text.rstrip()])[-self.LINES :]
        now = time.monotonic()
        if now - self.last_draw > 0.2:  # redraw at most 5 times a second
            self.last_draw = now
            self.handle.update(_Lines(self.lines))

    def close(self) -> None:
        self.handle.update(_Lines([]))


class _Lines:
    def __init__(self, lines: List[str]):
        self.lines = lines

    def __repr__(self) -> str:
        return "\n".join(self.lines)

    def _repr_html_(self) -> str:
        if not self.lines:
            return ""
        return "<pre style='max-height:14em;overflow:auto'>" + html.escape("\n".join(self.lines)) + "</pre>"
