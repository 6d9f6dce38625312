"""The workflow graph: calls and their dependencies from the run's WDL, scatters and conditionals
as groups, each node coloured by the state of its calls.

The WDL is the copy miniwdl keeps in the run directory (`wdl/`, written when the run ends) or,
while the run is live, the source its launch record names; parsed by miniwdl. Only the workflow's
top-level elements become nodes (a scatter or conditional is one box listing the calls inside it,
however wide it ran), so the graph stays readable at any scatter width; an edge joins two elements
when anything in one reads a value of the other (through declarations too).

`GraphLayout` places nodes and edges once; `.svg(states_of)` only recolours, so a live view redraws
the graph on every refresh for the cost of a few string joins.
"""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from .. import launch_record
from .data import CallReport
from .svg import STATE_COLOURS, esc, svg

NODE_WIDTH, COLUMN_GAP, LINE, MAX_LINES = 180, 50, 16, 6


@dataclass
class GraphNode:
    id: str  # miniwdl's workflow node id (call-x, scatter-L4C3-x, if-L5C3)
    label: str  # "call x", "scatter (x in xs)", "if (b)"
    calls: List[str]  # call names inside (the node's own name for a call)
    after: Set[str] = field(default_factory=set)  # ids of the nodes it depends on
    layer: int = 0


def workflow_graph(run_dir: Path) -> Optional[List[GraphNode]]:
    """The graph of the run's workflow, or None when no WDL of the run can be read."""
    document = _from_run_dir(Path(run_dir)) or _from_launch_record(Path(run_dir))
    if document is None or document.workflow is None:
        return None
    return _layered(document.workflow.body)


def _from_run_dir(run_dir: Path):
    main = _main_wdl(run_dir)
    if main is None:
        return None
    try:
        # WDL.load runs its own event loop: in a thread, so it works inside a running kernel too
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(_load, str(main)).result()
    except Exception:
        return None  # the report still has its timeline and usage


def _from_launch_record(run_dir: Path):
    """A live run's WDL (miniwdl copies it into wdl/ only at the end): the local file this package
    launched it from, parsed as the magic parsed it (so usually taken from its parse cache)."""
    from .. import wdl_source

    record = launch_record.read(run_dir) or {}
    source, cwd = record.get("source_path"), record.get("cwd")
    if record.get("task") or not source or not cwd or not Path(source).is_file():
        return None
    try:
        return wdl_source.load(source, cwd=Path(cwd), display_name=str(record.get("source") or source)).doc
    except Exception:
        return None


def _load(path: str):
    import WDL

    return WDL.load(path, check_quant=False, read_source=WDL.read_source_default)


def _main_wdl(run_dir: Path) -> Optional[Path]:
    """The WDL miniwdl ran: the one named in `rerun` among those it copied to wdl/."""
    candidates = sorted((run_dir / "wdl").glob("*.wdl")) if (run_dir / "wdl").is_dir() else []
    try:
        rerun = (run_dir / "rerun").read_text()
    except OSError:
        rerun = ""
    named = [c for c in candidates if c.name in rerun]
    return (named or candidates or [None])[0]


def _layered(body: list) -> List[GraphNode]:
    import WDL

    owner: Dict[str, str] = {}  # any node id -> the top-level element holding it
    inner: Dict[str, list] = {}
    for element in body:
        inner[element.workflow_node_id] = list(_walk(element))
        for node in inner[element.workflow_node_id]:
            owner[node.workflow_node_id] = element.workflow_node_id
    decl_deps = {e.workflow_node_id: set(e.workflow_node_dependencies) for e in body if isinstance(e, WDL.Tree.Decl)}
    nodes: Dict[str, GraphNode] = {}
    for element in body:
        calls = [n for n in inner[element.workflow_node_id] if isinstance(n, WDL.Tree.Call)]
        if not calls:
            continue
        node = GraphNode(element.workflow_node_id, _label(element), [c.name for c in calls])
        for member in inner[element.workflow_node_id]:
            for dep in member.workflow_node_dependencies:
                node.after |= _resolve(owner.get(dep, dep), decl_deps, owner, set())
        node.after.discard(node.id)
        nodes[node.id] = node
    for node in nodes.values():
        node.after &= set(nodes)
    for node in nodes.values():  # longest path from a source; the body order is topological
        node.layer = max((nodes[d].layer + 1 for d in node.after), default=0)
    return list(nodes.values())


def upstream_names(nodes: Optional[List[GraphNode]]) -> Optional[Dict[str, Set[str]]]:
    """Call name -> every call name it depends on, directly or not (None without a graph)."""
    if not nodes:
        return None
    by_id = {node.id: node for node in nodes}
    found: Dict[str, Set[str]] = {}

    def names_above(node: GraphNode) -> Set[str]:
        if node.id not in found:
            found[node.id] = set()
            for dep in node.after:
                found[node.id] |= set(by_id[dep].calls) | names_above(by_id[dep])
        return found[node.id]

    return {name: names_above(node) for node in nodes for name in node.calls}


def _walk(element):
    yield element
    for child in getattr(element, "body", []) or []:
        yield from _walk(child)
    for gather in (getattr(element, "gathers", None) or {}).values():
        yield gather


def _resolve(top_id: str, decl_deps: Dict[str, Set[str]], owner: Dict[str, str], seen: Set[str]) -> Set[str]:
    """A top-level declaration stands for the elements it reads."""
    if top_id not in decl_deps:
        return {top_id}
    if top_id in seen:
        return set()
    seen.add(top_id)
    found: Set[str] = set()
    for dep in decl_deps[top_id]:
        found |= _resolve(owner.get(dep, dep), decl_deps, owner, seen)
    return found


def _label(element) -> str:
    import WDL

    if isinstance(element, WDL.Tree.Call):
        return f"call {element.name}"
    if isinstance(element, WDL.Tree.Scatter):
        return f"scatter ({element.variable} in {element.expr})"
    if isinstance(element, WDL.Tree.Conditional):
        return f"if ({element.expr})"
    return element.workflow_node_id


StatesOf = Callable[[str], Counter]  # call name -> its calls' states (a sub-workflow: of all inside)


def states_by_name(named: Iterable[Tuple[str, Counter]]) -> StatesOf:
    """`states_of` over (call name path, state counts) pairs, e.g. the run's call groups: a WDL call
    name gathers its own calls and, for a sub-workflow call, every call inside it ("sub.greet")."""
    table: Dict[str, Counter] = {}
    for name, states in named:
        table.setdefault(name, Counter()).update(states)

    nested = [(other, states) for other, states in table.items() if "." in other]  # calls inside sub-workflows

    def states_of(name: str) -> Counter:
        found = Counter(table.get(name, ()))
        prefix = name + "."
        for other, states in nested:
            if other.startswith(prefix):
                found.update(states)
        return +found  # without the zero counts

    return states_of


def report_states(calls: List[CallReport]) -> StatesOf:
    return states_by_name((c.name, Counter({c.state: 1})) for c in calls)


def node_state(states: Counter) -> str:
    """One word for a node: what matters most among its calls' states (the key of its colour)."""
    for state in ("failed", "running", "retrying", "cancelled"):
        if states.get(state):
            return state
    if states and set(states) == {"cached"}:
        return "cached"
    if states and set(states) <= {"succeeded", "cached"}:
        return "succeeded"
    return "queued"  # nothing started yet, or some calls done and the rest waiting


def graph_svg(nodes: Optional[List[GraphNode]], calls: List[CallReport]) -> str:
    if not nodes:
        return svg(420, 24, ["<text x='4' y='16'>no workflow graph: the run directory keeps no WDL</text>"], "workflow graph")
    return GraphLayout(nodes).svg(report_states(calls))


class GraphLayout:
    """Where each node and edge of a graph goes, computed once; `svg()` colours it."""

    def __init__(self, nodes: List[GraphNode]):
        columns: Dict[int, List[GraphNode]] = {}
        for node in nodes:
            columns.setdefault(node.layer, []).append(node)
        box: Dict[str, tuple] = {}
        self.placed: List[tuple] = []  # (node, x, y, h, call names listed, how many more)
        self.height = 0.0
        for layer, members in sorted(columns.items()):
            y = 8.0
            x = 8 + layer * (NODE_WIDTH + COLUMN_GAP)
            for node in members:
                lines = node.calls if node.label != f"call {node.calls[0]}" or len(node.calls) > 1 else []
                shown = lines[:MAX_LINES]
                h = LINE * (1.6 + len(shown) + (1 if len(lines) > len(shown) else 0))
                box[node.id] = (x, y, h)
                self.placed.append((node, x, y, h, shown, len(lines) - len(shown)))
                y += h + 14
            self.height = max(self.height, y)
        self.edges: List[str] = [
            "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='6' markerHeight='6' orient='auto'>"
            "<path d='M0 0 L10 5 L0 10 z' fill='#777'/></marker></defs>"
        ]
        for node in nodes:
            x2, y2, h2 = box[node.id]
            for dep in sorted(node.after):
                x1, y1, h1 = box[dep]
                self.edges.append(
                    f"<path d='M{x1 + NODE_WIDTH:.0f} {y1 + h1 / 2:.0f} C{x1 + NODE_WIDTH + COLUMN_GAP / 2:.0f} {y1 + h1 / 2:.0f} "
                    f"{x2 - COLUMN_GAP / 2:.0f} {y2 + h2 / 2:.0f} {x2:.0f} {y2 + h2 / 2:.0f}' fill='none' stroke='#777' "
                    f"marker-end='url(#arrow)'/>"
                )
        self.width = 16 + (max(columns) + 1) * (NODE_WIDTH + COLUMN_GAP)

    def svg(self, states_of: StatesOf) -> str:
        body = [_node(node, x, y, h, shown, more, states_of) for node, x, y, h, shown, more in self.placed]
        return svg(self.width, self.height, self.edges[:1] + body + self.edges[1:], "workflow graph")


def _node(node: GraphNode, x: float, y: float, h: float, shown: List[str], more: int, states_of: StatesOf) -> str:
    own = sum((states_of(n) for n in node.calls), Counter())
    word = node_state(own)
    group = node.label.startswith(("scatter", "if"))
    dashed = " stroke-dasharray='4 2'" if group else ""
    colour = STATE_COLOURS[word]
    parts = [
        # class and data-* let a page (or a test) read each node's state without parsing colours
        f"<g class='miniwdl-graph-node' data-node='{esc(node.id)}' data-state='{word}'><title>{esc(node.label)}: {esc(counts_text(own))}</title>",
        f"<rect x='{x}' y='{y}' width='{NODE_WIDTH}' height='{h:.0f}' rx='{3 if group else 8}' fill='{colour}' "
        f"fill-opacity='{0.15 if group else 0.9}' stroke='{colour}'{dashed}/>",
        f"<text x='{x + 6}' y='{y + LINE}' fill='{'#222' if group else '#fff'}' font-weight='bold'>{esc(_fit(node.label))}</text>",
    ]
    for i, name in enumerate(shown):
        states = states_of(name)
        ty = y + LINE * (2 + i)
        parts.append(f"<rect x='{x + 6}' y='{ty - 9}' width='10' height='10' fill='{STATE_COLOURS[node_state(states)]}'/>")
        parts.append(f"<text x='{x + 20}' y='{ty}'>{esc(_fit(name + ' ' + counts_text(states), 26))}</text>")
    if more:
        parts.append(f"<text x='{x + 6}' y='{y + LINE * (2 + len(shown))}' fill='#555'>... {more} more calls</text>")
    return "".join(parts) + "</g>"


def counts_text(states: Counter) -> str:
    return ", ".join(f"{n:,} {s}" for s, n in sorted(states.items()) if n) or "not started"


def _fit(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
