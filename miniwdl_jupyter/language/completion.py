"""Completion at a position of a `%%wdl` cell or a .wdl file.

The context comes from the text before the cursor (the innermost open `{` and what opened it),
since mid-typing the text rarely parses; the names come from the last tree that did.
Items: `{label, type, detail?, info?, boost?}`; `from` is where the replaced word starts.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import stdlib_docs, symbols
from .documents import Analysis

TYPES = ["String", "Int", "Float", "Boolean", "File", "Directory", "Array", "Map", "Pair", "Object"]
TOP_LEVEL = ["version", "import", "struct", "workflow", "task"]
IN_TASK = ["input", "output", "command", "runtime", "requirements", "hints", "meta", "parameter_meta"]
IN_WORKFLOW = ["input", "output", "call", "scatter", "if", "meta", "parameter_meta", "hints"]
IN_EXPRESSION = ["if", "then", "else", "true", "false", "None", "object"]
RUNTIME_KEYS = {
    "docker": "container image (alias of container)", "container": "container image(s) to run the command in",
    "cpu": "CPUs to reserve", "memory": "memory to reserve, e.g. \"4 GiB\"", "disks": "disk space, e.g. \"20 GiB\"",
    "gpu": "whether the task needs a GPU", "maxRetries": "retries after a failure", "returnCodes": "exit codes that mean success",
    "preemptible": "tries on preemptible machines", "max_retries": "retries after a failure (WDL 1.2)",
    "return_codes": "exit codes that mean success (WDL 1.2)", "fpga": "whether the task needs an FPGA",
}
_BLOCK_OPEN = re.compile(r"(\bcall\s+([A-Za-z_][\w.]*)(?:\s+as\s+\w+)?(?:\s+after\s+\w+)*|\b(task|workflow|struct|input|output|command|runtime|requirements|hints|meta|parameter_meta|scatter|if|else)\b[^{}]*?)\s*$")

# Python types that fit a WDL input's type, for `name=$variable` on the magic line.
_PYTHON_FITS = {
    "String": ["str", "PosixPath", "Path"], "File": ["str", "PosixPath", "Path"], "Directory": ["str", "PosixPath", "Path"],
    "Int": ["int"], "Float": ["float", "int"], "Boolean": ["bool"],
    "Array": ["list", "tuple", "ndarray", "Series"], "Map": ["dict"], "Object": ["dict"], "Pair": ["tuple", "list"],
}


def python_types_for(wdl_type: str) -> List[str]:
    head = re.match(r"\w+", wdl_type)
    return _PYTHON_FITS.get(head.group() if head else "", ["dict"])  # a struct: a dict of its members


def complete(analysis: Analysis, line: int, ch: int, magic_options: Sequence[Tuple[str, str]] = ()) -> Dict[str, Any]:
    """Completion at 1-based `line`, 0-based offset `ch` in it."""
    text = analysis.lines[line - 1] if 0 < line <= len(analysis.lines) else ""
    before = text[:ch]
    if line == 1 and before.startswith("%%"):
        return _magic_line(analysis, before, magic_options) if re.match(r"%%wdl\s", before) else {"from": ch, "items": []}
    word = re.search(r"[A-Za-z_][\w.]*$", before)
    start = ch - len(word.group()) if word else ch
    typed = word.group() if word else ""
    if "." in typed:  # `lib.gr` or `greet.ou`: members after the dot
        return {"from": ch - len(typed.rsplit(".", 1)[1]), "items": _members(analysis, line, typed.rsplit(".", 1)[0], before)}
    if re.search(r"\bcall\s+$", before[:start]):
        return {"from": start, "items": _callables(analysis)}
    context = _open_block(analysis.lines, line, start)
    head = before[:start]
    after_equals = re.search(r"=\s*$|[(,\[+\-*/<>!&|?:]\s*$|\b(if|then|else)\s+$", head) and not re.search(r"\binput\s*:\s*$", head)
    if context and context[0] == "call":
        if "=" in re.split(r"[,{:]", head)[-1]:  # after `name =`: a value
            return {"from": start, "items": _expression(analysis, line)}
        return {"from": start, "items": _call_inputs(analysis, context[1], line, ch)}
    if context and context[0] in ("runtime", "requirements", "hints") and ":" not in head:
        return {"from": start, "items": [_item(k, "property", detail=d) for k, d in RUNTIME_KEYS.items()]}
    if context and context[0] in ("runtime", "requirements", "hints", "meta"):
        return {"from": start, "items": _expression(analysis, line)}
    if context and context[0] == "parameter_meta" and ":" not in head:
        scope = symbols.enclosing(analysis, line)
        return {"from": start, "items": [_item(p.name, "variable", detail=p.type) for p in (symbols.params(scope) if scope else [])]}
    if context and context[0] == "command":
        return {"from": start, "items": _expression(analysis, line) if "~{" in head or "${" in head else []}
    if after_equals:
        return {"from": start, "items": _expression(analysis, line)}
    return {"from": start, "items": _statement(analysis, context[0] if context else None, line)}


def _item(label: str, type_: str, detail: str = "", info: str = "", boost: int = 0) -> Dict[str, Any]:
    item: Dict[str, Any] = {"label": label, "type": type_}
    if detail:
        item["detail"] = detail
    if info:
        item["info"] = info
    if boost:
        item["boost"] = boost
    return item


def _open_block(lines: List[str], line: int, ch: int) -> Optional[Tuple[str, str]]:
    """What opened the innermost `{` still open at the cursor: ("call", callee), ("task", ""),
    ("runtime", "")...; None at the top level. Placeholders `~{ }` count as `command` content."""
    before = "\n".join(lines[: line - 1] + [lines[line - 1][:ch] if line <= len(lines) else ""])
    depth = 0
    i = len(before) - 1
    while i >= 0:
        c = before[i]
        if c == "}":
            depth += 1
        elif c == "{":
            if depth == 0:
                if i > 0 and before[i - 1] in "~$":
                    return ("command", "")
                match = _BLOCK_OPEN.search(before[max(0, i - 300) : i])
                if not match:
                    return ("other", "")
                if match.group(2):
                    return ("call", match.group(2))
                return (match.group(3), "")
            depth -= 1
        elif c == "<" and depth == 0 and before.endswith("<<<", 0, i + 1) and ">>>" not in before[i:]:
            # an unclosed `<<<`: the cursor is in a command (or multi-line string) heredoc
            return ("command", "")
        i -= 1
    return None


def _callables(analysis: Analysis) -> List[Dict[str, Any]]:
    return [
        _item(name, "class" if symbols.kind(c) == "workflow" else "function", detail=symbols.kind(c),
              info=symbols.describe_callable(name, c))
        for name, c in symbols.callables(analysis).items()
    ]


def _members(analysis: Analysis, line: int, owner: str, before: str) -> List[Dict[str, Any]]:
    if owner in analysis.imports:
        prefix = owner + "."
        return [dict(item, label=item["label"][len(prefix):]) for item in _callables(analysis) if item["label"].startswith(prefix)]
    call = symbols.call_named(analysis, symbols.enclosing(analysis, line), owner)
    target = symbols.callee(analysis, call) if call else None
    if target is None:
        return []
    return [_item(name, "property", detail=ty) for name, ty in symbols.outputs(target)]


def _call_inputs(analysis: Analysis, callee_name: str, line: int, ch: int) -> List[Dict[str, Any]]:
    """The callee's inputs not yet given in this call's braces, required first."""
    target = symbols.callables(analysis).get(callee_name)
    if target is None:
        return []
    block = _call_block_text(analysis.lines, line, ch)
    given = set(re.findall(r"([A-Za-z_]\w*)\s*=(?!=)", block))
    items = []
    for p in symbols.params(target):
        if p.name in given:
            continue
        note = "required" if p.required else (f"default {p.default}" if p.default else "optional")
        # `boost` keeps this order (required first) in the editor, which otherwise sorts by name.
        items.append(_item(p.name, "variable", detail=f"{p.type} ({note})", boost=99 - len(items)))
    return items


def _call_block_text(lines: List[str], line: int, ch: int) -> str:
    """The text of the call braces around the cursor (before and after it)."""
    text = "\n".join(lines)
    offset = sum(len(l) + 1 for l in lines[: line - 1]) + ch
    start = text.rfind("{", 0, offset)
    end = text.find("}", offset)
    return text[start + 1 : end if end >= 0 else len(text)]


def _expression(analysis: Analysis, line: int) -> List[Dict[str, Any]]:
    scope = symbols.enclosing(analysis, line)
    items = [_item(name, "variable", detail=str(decl.type)) for name, decl in symbols.declarations(scope).items()]
    if scope is not None and not hasattr(scope, "command"):
        items += [_item(c.name, "variable", detail=f"call {'.'.join(c.callee_id)}") for c in symbols.calls(scope)]
    items += [_item(name, "function", detail=sig, info=desc) for name, (sig, desc) in stdlib_docs.available(analysis.version).items()]
    items += [_item(k, "keyword") for k in IN_EXPRESSION]
    return items


def _statement(analysis: Analysis, block: Optional[str], line: int) -> List[Dict[str, Any]]:
    if block is None:
        return [_item(k, "keyword") for k in TOP_LEVEL]
    types = [_item(t, "type") for t in TYPES] + [_item(str(n), "type", detail="struct") for n in symbols.structs(analysis)]
    if block == "task":
        return [_item(k, "keyword") for k in IN_TASK] + types
    if block in ("workflow", "scatter", "if", "else"):
        keywords = IN_WORKFLOW if block == "workflow" else ["call", "scatter", "if"]
        return [_item(k, "keyword") for k in keywords] + types
    return types  # input, output, struct: declarations


def _magic_line(analysis: Analysis, before: str, options: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
    """`%%wdl` options, the workflow's inputs as `name=`, and after `name=$` the kernel's variables
    that fit (the frontend asks the kernel; this says which Python types fit)."""
    token = re.search(r"\S*$", before).group()  # type: ignore[union-attr]
    start = len(before) - len(token)
    target = _run_target(analysis)
    inputs = symbols.params(target) if target else []
    dollar = re.match(r"([\w.]+)=\$(\w*)$", token)
    if dollar:
        param = next((p for p in inputs if p.name == dollar.group(1)), None)
        kernel = {"input": dollar.group(1), "type": param.type if param else "", "python_types": python_types_for(param.type) if param else []}
        return {"from": len(before) - len(dollar.group(2)), "items": [], "kernel": kernel}
    if token.startswith("-"):
        return {"from": start, "items": [_item(flag, "keyword", info=help_) for flag, help_ in options]}
    given = set(re.findall(r"(?:^|\s)([\w.]+)=", before))
    items = [
        _item(f"{p.name}=", "variable", detail=f"{p.type} ({'required' if p.required else 'optional'})", boost=99 - i)
        for i, p in enumerate(p for p in inputs if p.name not in given)
    ]
    return {"from": start, "items": items + [_item(flag, "keyword", info=help_) for flag, help_ in options]}


def _run_target(analysis: Analysis) -> Optional[symbols.Callable]:
    doc = analysis.doc
    if doc is None:
        return None
    if doc.workflow:
        return doc.workflow
    return doc.tasks[0] if len(doc.tasks) == 1 else None
