"""Hover and go to definition: what the name under the cursor is, and where it is written.

A name is looked up in this order: a standard-library function (when a `(` follows), a call's
callee (`call lib.greet`), a call's output (`greet.out`), a call by its name, a struct, a
declaration of the enclosing task or workflow, an import's namespace. Hover answers
`{text, from, to}` (plain text); definition `{abspath, line, column}` or, for an http(s)
import, `{url, line, column}`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from WDL import Tree

from . import stdlib_docs, symbols
from .documents import Analysis

def _lookup(analysis: Analysis, line: int, ch: int) -> Optional[Tuple[str, Any, str, int, int]]:
    text = analysis.lines[line - 1] if 0 < line <= len(analysis.lines) else ""
    word, start, end = symbols.word_at(text, ch)
    if text.lstrip().startswith("import "):
        imp = _import_on(analysis, line, text)
        if imp is not None:
            return ("import", imp, word, start, end)
    if not word:
        return None
    scope = symbols.enclosing(analysis, line)
    functions = stdlib_docs.available(analysis.version)
    if word in functions and text[end:].lstrip().startswith("("):
        return ("function", (word, functions[word]), word, start, end)
    callables = symbols.callables(analysis)
    if word in callables:
        return ("callable", (word, callables[word]), word, start, end)
    head, _, member = word.partition(".")
    call = symbols.call_named(analysis, scope, head)
    if call is not None:
        target = symbols.callee(analysis, call)
        if member and target is not None:
            out = next((d for d in target.outputs or [] if d.name == member), None)
            if out is not None and ch >= start + len(head):
                return ("output", (call, target, out), word, start, end)
        return ("call", (call, target), head, start, start + len(head))
    structs = symbols.structs(analysis)
    if word in structs:
        return ("struct", (word, structs[word]), word, start, end)
    decl = symbols.declarations(scope).get(head)
    if decl is not None:
        return ("decl", (scope, decl), head, start, start + len(head))
    if head in analysis.imports:
        return ("namespace", analysis.imports[head], head, start, start + len(head))
    return None


def _import_on(analysis: Analysis, line: int, text: str) -> Optional[Tree.Document]:
    doc = analysis.doc
    for imp in (doc.imports if doc else []):
        if imp.uri in text and imp.doc is not None:
            return imp.doc
    return None


def hover(analysis: Analysis, line: int, ch: int) -> Optional[Dict[str, Any]]:
    found = _lookup(analysis, line, ch)
    if found is None:
        return None
    what, node, word, start, end = found
    if what == "function":
        name, (signature, description) = node
        text = f"{signature}\n{description}".strip()
    elif what == "callable":
        text = symbols.describe_callable(node[0], node[1])
    elif what == "call":
        call, target = node
        callee = ".".join(call.callee_id)
        text = f"call {call.name}" + (f" ({callee})" if callee != call.name else "")
        if target is not None:
            text += "\n" + symbols.describe_callable(callee, target)
    elif what == "output":
        call, target, out = node
        text = f"{out.type} {call.name}.{out.name}\noutput of {symbols.kind(target)} {'.'.join(call.callee_id)}"
    elif what == "struct":
        name, typedef = node
        text = f"struct {name}\n" + "\n".join(f"  {ty} {member}" for member, ty in typedef.members.items())
    elif what == "decl":
        scope, decl = node
        role = "input" if decl in (scope.inputs or []) else ("output" if decl in (scope.outputs or []) else "declaration")
        text = f"{decl.type} {decl.name}" + (f" = {decl.expr}" if decl.expr is not None else "")
        text += f"\n{role} of {symbols.kind(scope)} {scope.name}, line {decl.pos.line}"
        meta = symbols.parameter_meta(scope, decl.name)
        if meta:
            text += f"\nparameter_meta: {meta}"
    elif what in ("import", "namespace"):
        doc = node
        names = [t.name for t in doc.tasks] + ([doc.workflow.name] if doc.workflow else [])
        text = f"{doc.pos.abspath}\n" + (f"defines: {', '.join(names)}" if names else "")
    else:
        return None
    return {"text": text.strip(), "from": start, "to": end}


def definition(analysis: Analysis, line: int, ch: int) -> Optional[Dict[str, Any]]:
    found = _lookup(analysis, line, ch)
    if found is None:
        return None
    what, node = found[0], found[1]
    if what == "callable":
        pos = node[1].pos
    elif what == "call":
        call, target = node
        # On the `call` statement itself: the callee; elsewhere (`g2.msg`): the call statement.
        pos = target.pos if target is not None and call.pos.line == line else call.pos
    elif what == "output":
        pos = node[2].pos
    elif what == "struct":
        pos = node[1].pos
    elif what == "decl":
        pos = node[1].pos
    elif what in ("import", "namespace"):
        pos = node.pos
        return _place(pos.abspath, 1, 1)
    else:
        return None
    return _place(pos.abspath, pos.line, pos.column)


def _place(abspath: str, line: int, column: int) -> Dict[str, Any]:
    if abspath.startswith(("http://", "https://")):
        return {"url": abspath, "line": line, "column": column}
    return {"abspath": abspath, "line": line, "column": column}
