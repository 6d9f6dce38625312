"""The workflow graph in the live views: laid out once per run, recoloured on each refresh.

Parsing the WDL (miniwdl's parser; usually a hit in the magic's parse cache) and laying the graph
out happen once, in a background thread, so neither the first view nor a refresh waits for them;
until then the views show no graph. A refresh recolours the layout from the call groups' counts
(O(call names + graph nodes), whatever the number of calls) and only when a count changed.
The graph's size follows the WDL, not the run: a 10,000-way scatter is one box.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Optional

from ..monitor import RunState
from ..report.graph import GraphLayout, node_state, states_by_name, workflow_graph


class LiveGraph:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.layout: Optional[GraphLayout] = None
        self.ready = threading.Event()  # set once the layout is known (or known to be missing)
        self._thread: Optional[threading.Thread] = None
        self._drawn_for: Optional[tuple] = None
        self._svg = ""
        self.title = "workflow graph"  # with how many of its steps are in which state, once drawn

    def svg(self, state: RunState) -> str:
        """The graph coloured by `state`, or "" while it is being laid out or when the run has none."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._lay_out, name=f"miniwdl-graph-{self.run_dir.name}", daemon=True)
            self._thread.start()
        layout = self.layout
        if layout is None:
            return ""
        key = tuple((g.name, tuple(g.counts.values())) for g in list(state.groups.values()))
        if key != self._drawn_for:
            states_of = states_by_name((g.name, Counter(g.counts)) for g in list(state.groups.values()))
            self._svg, self._drawn_for = layout.svg(states_of), key
            steps = Counter(node_state(sum((states_of(n) for n in node.calls), Counter())) for node, *_ in layout.placed)
            total = len(layout.placed)
            self.title = f"workflow graph: {total} step{'s' if total != 1 else ''}, " + ", ".join(f"{n} {s}" for s, n in sorted(steps.items()))
        return self._svg

    def _lay_out(self) -> None:
        try:
            nodes = workflow_graph(self.run_dir)
            self.layout = GraphLayout(nodes) if nodes else None
        except Exception:  # the graph is a bonus: the progress must show without it
            self.layout = None
        finally:
            self.ready.set()
