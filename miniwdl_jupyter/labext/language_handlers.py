"""REST endpoints of the WDL language service (miniwdl_jupyter.language) under
`<base_url>/miniwdl-jupyter/language/`, all POST with `{key, path, kind, text, line, ch}`:

- `complete` -> `{from, items: [{label, type, detail?, info?, boost?}], kernel?}`
- `hover` -> `{text, from, to}` or `{}`
- `definition` -> `{path?, abspath?, url?, line, column}` or `{}` (`path`: relative to the server
  root, when the file is under it, so the editor can open it)
- `failure` (`{key, path, kind, text, run_dir}`) -> `{line, column, message}` or `{}`

`key` names the document (a cell's id, or the file's path): the service parses a document once
per change, however many requests ask about it. `line` is 1-based, `ch` a 0-based offset in the
line. Each answer echoes the request's `version`, so the editor drops answers to older text.
"""

from __future__ import annotations

import asyncio
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Tuple

import tornado.web
from jupyter_server.utils import url_path_join

from ..language import LanguageService
from .handlers import _Base

service = LanguageService()


@lru_cache(maxsize=1)
def magic_options() -> List[Tuple[str, str]]:
    """The `%%wdl` magic's options with their help, read from its own argument parser."""
    from ..magics import WDLMagics

    options = []
    for action in WDLMagics.wdl.parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") or not any(f.startswith("--") for f in action.option_strings):
                options.append((flag, action.help or ""))
    return options


class _LanguageHandler(_Base):
    def document(self) -> Tuple[Dict[str, Any], str, str, Path]:
        body = self.body()
        text = body.get("text")
        if not isinstance(text, str):
            raise tornado.web.HTTPError(400, "text (the document) is required")
        path = str(body.get("path") or "")
        target = self.local_path(path)
        folder = target if target.is_dir() else target.parent
        # A file is its own path (its imports resolve beside it); a cell is its notebook + cell id.
        key = path if body.get("kind") == "file" else f"{path}#{body.get('key') or ''}"
        return body, key, text, folder

    def position(self, body: Dict[str, Any]) -> Tuple[int, int]:
        try:
            return int(body["line"]), int(body["ch"])
        except (KeyError, TypeError, ValueError):
            raise tornado.web.HTTPError(400, "line (1-based) and ch (0-based offset in the line) are required") from None

    def reply(self, body: Dict[str, Any], answer: Any) -> None:
        self.finish(json.dumps({**(answer or {}), "version": body.get("version")}))


class CompleteHandler(_LanguageHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        body, key, text, folder = self.document()
        line, ch = self.position(body)
        options = magic_options() if body.get("kind") == "cell" else []
        answer = await asyncio.get_running_loop().run_in_executor(None, service.complete, key, text, folder, line, ch, options)
        self.reply(body, answer)


class HoverHandler(_LanguageHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        body, key, text, folder = self.document()
        line, ch = self.position(body)
        answer = await asyncio.get_running_loop().run_in_executor(None, service.hover, key, text, folder, line, ch)
        self.reply(body, answer)


class DefinitionHandler(_LanguageHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        body, key, text, folder = self.document()
        line, ch = self.position(body)
        answer = await asyncio.get_running_loop().run_in_executor(None, service.definition, key, text, folder, line, ch)
        if answer and answer.get("abspath"):
            answer["path"] = self.relative(Path(answer["abspath"]).resolve())
        self.reply(body, answer)


class FailureHandler(_LanguageHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        body, key, text, folder = self.document()
        run_dir = Path(str(body.get("run_dir") or ""))
        if not run_dir.is_absolute():
            run_dir = self.local_path(str(run_dir))
        answer = await asyncio.get_running_loop().run_in_executor(None, service.failure, key, text, folder, run_dir)
        self.reply(body, answer)


def setup_language_handlers(web_app: Any) -> None:
    base = url_path_join(web_app.settings["base_url"], "miniwdl-jupyter", "language")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "complete"), CompleteHandler),
            (url_path_join(base, "hover"), HoverHandler),
            (url_path_join(base, "definition"), DefinitionHandler),
            (url_path_join(base, "failure"), FailureHandler),
        ],
    )
