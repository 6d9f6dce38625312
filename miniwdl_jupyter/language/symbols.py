"""What a document's names mean: callables (tasks and workflows, imported ones as `ns.name`),
structs, declarations in scope, and where each is written. Shared by completion, hover and go to
definition; everything reads miniwdl's tree (a stale one while the text does not parse)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

from WDL import Tree

from .documents import Analysis

Callable = Union[Tree.Task, Tree.Workflow]
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass
class Param:
    name: str
    type: str
    required: bool
    default: Optional[str]


def callables(analysis: Analysis) -> Dict[str, Callable]:
    """Names a `call` can use: local tasks, and each import's tasks and workflow as `ns.name`."""
    found: Dict[str, Callable] = {}
    doc = analysis.doc
    if doc is None:
        return found
    for task in doc.tasks:
        found[task.name] = task
    for namespace, sub in analysis.imports.items():
        for task in sub.tasks:
            found[f"{namespace}.{task.name}"] = task
        if sub.workflow:
            found[f"{namespace}.{sub.workflow.name}"] = sub.workflow
    return found


def structs(analysis: Analysis) -> Dict[str, Tree.StructTypeDef]:
    found: Dict[str, Tree.StructTypeDef] = {}
    docs = list(analysis.imports.values()) + ([analysis.doc] if analysis.doc else [])
    for doc in docs:  # the document's own last, so its definitions win
        for binding in doc.struct_typedefs:
            found[binding.name] = binding.value
    return found


def params(callable_: Callable) -> List[Param]:
    """A task's or workflow's inputs, required first (as they are written otherwise)."""
    decls = callable_.inputs
    if decls is None:  # pre-1.0 style: unbound declarations are the inputs
        decls = [d for d in (callable_.postinputs if isinstance(callable_, Tree.Task) else []) if d.expr is None]
    found = [Param(d.name, str(d.type), d.expr is None and not d.type.optional, str(d.expr) if d.expr else None) for d in decls]
    return sorted(found, key=lambda p: not p.required)


def outputs(callable_: Callable) -> List[Tuple[str, str]]:
    return [(d.name, str(d.type)) for d in (callable_.outputs or [])]


def kind(callable_: Callable) -> str:
    return "task" if isinstance(callable_, Tree.Task) else "workflow"


def enclosing(analysis: Analysis, line: int) -> Optional[Callable]:
    """The task or workflow written around `line` (in the tree's positions)."""
    doc = analysis.doc
    if doc is None:
        return None
    for item in [*doc.tasks, *([doc.workflow] if doc.workflow else [])]:
        if item.pos.line <= line <= item.pos.end_line:
            return item
    return None


def calls(workflow: Tree.Workflow) -> List[Tree.Call]:
    found: List[Tree.Call] = []

    def walk(body) -> None:  # type: ignore[no-untyped-def]
        for node in body:
            if isinstance(node, Tree.Call):
                found.append(node)
            elif isinstance(node, (Tree.Scatter, Tree.Conditional)):
                walk(node.body)

    walk(workflow.body)
    return found


def declarations(scope: Optional[Callable]) -> Dict[str, Tree.Decl]:
    """Declarations visible in a task or workflow (inputs, body, outputs; scatter/if bodies too)."""
    found: Dict[str, Tree.Decl] = {}
    if scope is None:
        return found
    for decl in scope.inputs or []:
        found[decl.name] = decl
    if isinstance(scope, Tree.Task):
        for decl in scope.postinputs:
            found.setdefault(decl.name, decl)
    else:

        def walk(body) -> None:  # type: ignore[no-untyped-def]
            for node in body:
                if isinstance(node, Tree.Decl):
                    found.setdefault(node.name, node)
                elif isinstance(node, (Tree.Scatter, Tree.Conditional)):
                    walk(node.body)

        walk(scope.body)
    for decl in scope.outputs or []:
        found.setdefault(decl.name, decl)
    return found


def callee(analysis: Analysis, call: Tree.Call) -> Optional[Callable]:
    if getattr(call, "callee", None) is not None:
        return call.callee
    return callables(analysis).get(".".join(call.callee_id))


def call_named(analysis: Analysis, scope: Optional[Callable], name: str) -> Optional[Tree.Call]:
    if isinstance(scope, Tree.Workflow):
        return next((c for c in calls(scope) if c.name == name), None)
    return None


def word_at(text: str, ch: int) -> Tuple[str, int, int]:
    """The (dotted) name under or just before offset `ch` of a line, with its start and end."""
    for match in WORD.finditer(text):
        if match.start() <= ch <= match.end():
            return match.group(), match.start(), match.end()
    return "", ch, ch


def parameter_meta(scope: Optional[Callable], name: str) -> Optional[str]:
    meta = getattr(scope, "parameter_meta", None) or {}
    value = meta.get(name)
    if value is None:
        return None
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def describe_callable(name: str, callable_: Callable) -> str:
    """`task greet` with its inputs (required first) and outputs, with types: hover's text."""
    lines = [f"{kind(callable_)} {name}"]
    ins = params(callable_)
    if ins:
        lines.append("inputs:")
        for p in ins:
            note = "required" if p.required else (f"default {p.default}" if p.default else "optional")
            lines.append(f"  {p.type} {p.name} ({note})")
    outs = outputs(callable_)
    if outs:
        lines.append("outputs:")
        lines.extend(f"  {ty} {n}" for n, ty in outs)
    return "\n".join(lines)
