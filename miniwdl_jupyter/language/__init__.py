"""A WDL language service for editors: completion, hover, go to definition, and the line a failed
run failed on, answered from miniwdl's parser and type checker.

Core code (no Jupyter imports): the JupyterLab server extension (labext/language_handlers.py) and
the benchmark drive it. A document is named by a key (a notebook cell or a .wdl file) and sent
whole with each request; it is parsed once per change (documents.py). Completion and hover answer
at once from the last parse while a changed text parses in the background; go to definition and
failure marks wait for the parse of the text they are given (positions must be exact). A `%%wdl` cell is sent as
the editor holds it: its magic line is blanked for the parser, so lines keep their numbers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from . import completion, failures, navigation
from .documents import Analysis, Documents


class LanguageService:
    def __init__(self) -> None:
        self.documents = Documents()

    def analyze(self, key: str, text: str, folder: Path, *, wait: bool = True) -> Analysis:
        lines = text.split("\n")
        wdl = "\n".join([""] + lines[1:]) if lines and lines[0].startswith("%%") else text
        analysis = self.documents.analyze(key, wdl, folder, wait=wait)
        if wdl is not text:  # answers read the line the user sees (the magic line's options)
            analysis = dataclasses.replace(analysis, lines=lines)
        return analysis

    def complete(self, key: str, text: str, folder: Path, line: int, ch: int,
                 magic_options: Sequence[Tuple[str, str]] = ()) -> Dict[str, Any]:
        # Completion and hover come while typing: from the last parse, while the new text parses.
        return completion.complete(self.analyze(key, text, folder, wait=False), line, ch, magic_options)

    def hover(self, key: str, text: str, folder: Path, line: int, ch: int) -> Optional[Dict[str, Any]]:
        return navigation.hover(self.analyze(key, text, folder, wait=False), line, ch)

    def definition(self, key: str, text: str, folder: Path, line: int, ch: int) -> Optional[Dict[str, Any]]:
        return navigation.definition(self.analyze(key, text, folder), line, ch)

    def failure(self, key: str, text: str, folder: Path, run_dir: Path) -> Optional[Dict[str, Any]]:
        error = failures.read_error(run_dir)
        if error is None:
            return None
        return failures.failure_mark(self.analyze(key, text, folder), error)
