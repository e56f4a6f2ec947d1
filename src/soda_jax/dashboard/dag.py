"""An experiment's step DAG as SVG, laid out by Graphviz ``dot``, nodes coloured by status.

Each node is a link to its step page and carries ``id="step-{i}"`` and ``class="node status-X"``,
so the page recolours it in place when a poll reports a new status.
"""

from __future__ import annotations

import re
import shutil

from soda_jax.dashboard.store import ExperimentView

STATUS_FILL = {
    "WAITING": "#e0e0e0",
    "RUNNING": "#90caf9",
    "SUCCESS": "#a5d6a7",
    "FAILED": "#ef9a9a",
    "DEP_FAILED": "#ffcc80",
    "UNKNOWN": "#f5f5f5",
}
"""Also in static/dashboard.css (the live recolouring uses the CSS)."""


def dot_available() -> bool:
    return shutil.which("dot") is not None


def dag_svg(experiment: ExperimentView, step_href: dict[int, str]) -> str:
    """The DAG as an inline SVG element (no XML prologue)."""
    import graphviz

    graph = graphviz.Digraph(
        "experiment", graph_attr={"rankdir": "LR", "bgcolor": "transparent", "fontname": "sans-serif"}
    )
    graph.attr("node", shape="box", style="rounded,filled", fontname="sans-serif", fontsize="11")
    for i, step in enumerate(experiment.steps):
        label = f"{step.name}\n{step.status.replace('_', '-').lower()}"
        graph.node(
            f"s{i}",
            label=label,
            id=f"step-{i}",
            fillcolor=STATUS_FILL.get(step.status, "#ffffff"),
            tooltip=step.rel or "outside the prefix",
            href=step_href.get(i, ""),
            **{"class": f"status-{step.status}"},
        )
        for dep in step.depends_on:
            graph.edge(f"s{dep}", f"s{i}")
    svg = graph.pipe(format="svg", encoding="utf-8")
    return re.sub(r"^.*?(<svg\b)", r"\1", svg, flags=re.DOTALL)
