"""The ``transitions`` diagram engines, bent to draw one edge per row of the table.

``transitions.extensions.diagrams.GraphMachine`` already turns a machine into a
Graphviz ``Digraph`` or a Mermaid ``stateDiagram-v2``. Three things in it do not fit a
protocol table, and each is fixed here at the narrowest hook the library offers:

* Both engines merge every transition between the same two states into one edge with
  the labels joined by ``" | "``. Here two rows are two requirements, so
  :meth:`DotGraph._add_edges` and :meth:`MermaidGraph._add_edges` draw one edge per
  transition (``dot`` lays parallel edges and self-loops out side by side).
* Edge styles are keyed by ``(source, dest)``, so a parallel edge cannot be
  highlighted alone. Each transition carries the name of its row (``Row.name``, the
  key of the networkx graphs) as a markup attribute, and the highlight is looked up
  by that name.
* The label of a transition is the ``label`` attribute ``TransitionGraphSupport``
  already accepts (the library's own hook, kept by the markup); each engine only
  turns its line break into the engine's syntax.
* A coverage overlay styles rows by the same name: rows a test run never exercised
  (and states it never reached) take the ``uncovered`` style. Mermaid cannot style
  one transition, so there the count in the label (built by the caller) says it.

Nothing here knows the protocol: the rows, labels and highlight come from
:mod:`sephb.diagrams.statechart`, which builds them from the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transitions.extensions.diagrams import GraphMachine, TransitionGraphSupport
from transitions.extensions.diagrams_base import BaseGraph
from transitions.extensions.diagrams_graphviz import Graph as _GraphvizGraph
from transitions.extensions.diagrams_mermaid import Graph as _MermaidGraph

#: The line break inside a label, before an engine translates it.
NL = "\n"
#: Compass points self-loops take in turn (Graphviz ports).
_LOOP_SIDES = ("e", "w")


@dataclass(frozen=True)
class EdgeSpec:
    """One row as the engines see it: states, trigger and the text to print."""

    row: str
    trigger: str
    source: str
    dest: str
    label: str
    guard: str | None = None


@dataclass(frozen=True)
class Drawing:
    """Everything a graph needs besides the machine: what to write and what to stress."""

    title: str
    #: State name -> node label (lines separated by :data:`NL`).
    node_labels: Mapping[str, str]
    #: Row name -> the 1-based positions it takes in the highlighted path.
    path_steps: Mapping[str, Sequence[int]] = field(default_factory=dict)
    #: States on the highlighted path.
    path_states: frozenset[str] = frozenset()
    #: States drawn as rest states (where a check-in starts and ends).
    rest_states: frozenset[str] = frozenset()
    #: Coverage overlay: rows a test run never exercised, states it never reached.
    uncovered_rows: frozenset[str] = frozenset()
    uncovered_states: frozenset[str] = frozenset()
    #: Graph attributes only Graphviz understands (layout, fonts).
    dot_graph_attr: Mapping[str, str] = field(default_factory=dict)


class RowTransition(TransitionGraphSupport):
    """A transition that remembers which row of the table it was made from."""

    def __init__(self, *args: Any, row: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.row = row


class TableMachine(GraphMachine):
    """A ``GraphMachine`` that draws, never runs: no model, one transition per row."""

    transition_cls = RowTransition
    # ``row`` joins the attributes the markup keeps, so the graphs receive it.
    transition_attributes = [*GraphMachine.transition_attributes, "row"]  # noqa: RUF012

    def __init__(
        self,
        states: Sequence[str],
        initial: str,
        edges: Sequence[EdgeSpec],
        drawing: Drawing,
        engine: str,
        style_attributes: dict[str, dict[str, dict[str, str]]],
    ) -> None:
        # Set before the base initialiser, which draws at once for any model it gets.
        self.drawing = drawing
        self.row_order = {e.row: i for i, e in enumerate(edges)}
        #: The styles, typed as we use them (the stub types style_attributes loosely).
        self.styles = style_attributes
        self.style_attributes = style_attributes  # type: ignore[assignment]
        # Top to bottom follows the seed's steps down the page and keeps the drawing
        # about as wide as it is high; both engines read rankdir (Mermaid: direction).
        self.machine_attributes = {"directed": "true", "strict": "false", "rankdir": "TB"}
        super().__init__(
            model=None,
            states=list(states),
            initial=initial,
            transitions=[
                {
                    "trigger": e.trigger,
                    "source": e.source,
                    "dest": e.dest,
                    "conditions": [e.guard] if e.guard else None,
                    "label": e.label,
                    "row": e.row,
                }
                for e in edges
            ],
            auto_transitions=False,
            ignore_invalid_triggers=False,
            title=drawing.title,
            graph_engine=engine,  # type: ignore[arg-type]
        )

    def _init_graphviz_engine(self, graph_engine: str) -> type[BaseGraph]:
        # The library picks its engine class here; ours, so that the machine's own
        # get_graph (if a model is ever attached) draws what render() draws.
        return {"graphviz": DotGraph, "mermaid": MermaidGraph}[graph_engine]

    def table_transitions(self, transitions: list[dict[str, str]]) -> list[dict[str, str]]:
        """The markup's transitions in table order (the markup groups them by event);
        the order of edges steers ``dot``'s layout, and the table's reads best."""
        return sorted(transitions, key=lambda t: self.row_order[t["row"]])

    def step_prefix(self, row: str) -> str:
        """``(2) `` or ``(2,3) ``: where the highlighted path takes this row."""
        steps = self.drawing.path_steps.get(row)
        return f"({','.join(map(str, steps))}) " if steps else ""

    def node_style(self, state: str) -> str:
        # A highlighted path wins over coverage: it is what the caller asked to see.
        if state in self.drawing.path_states:
            return "path"
        if state in self.drawing.uncovered_states:
            return "uncovered"
        return "rest" if state in self.drawing.rest_states else ""

    def edge_style(self, row: str) -> str:
        if row in self.drawing.path_steps:
            return "path"
        return "uncovered" if row in self.drawing.uncovered_rows else ""


class DotGraph(_GraphvizGraph):
    """The Graphviz engine with one edge per row and per-row highlighting."""

    machine: TableMachine

    def __init__(self, machine: TableMachine) -> None:
        super().__init__(machine)  # type: ignore[arg-type]  # the stub says Type[...]

    def _convert_state_attributes(self, state: dict[str, str]) -> str:
        return self.machine.drawing.node_labels[state["name"]].replace(NL, r"\n")

    def _transition_label(self, tran: dict[str, str]) -> str:
        label = self.machine.step_prefix(tran["row"]) + tran["label"]
        return label.replace(NL, r"\n")

    def _add_nodes(self, states: list[dict[str, str]], container: Any) -> None:
        styles = self.machine.styles["node"]
        for state in states:
            container.node(
                state["name"],
                label=self._convert_state_attributes(state),
                **styles.get(self.machine.node_style(state["name"]), {}),
            )

    def _add_edges(self, transitions: list[dict[str, str]], container: Any) -> None:
        styles = self.machine.styles["edge"]
        loops: dict[str, int] = {}
        for tran in self.machine.table_transitions(transitions):
            source, dest = tran["source"], tran.get("dest", tran["source"])
            attrs = dict(styles.get(self.machine.edge_style(tran["row"]), {}))
            if source == dest:
                # dot nests a state's self-loops on one side and lays their labels over
                # each other; alternate sides instead (east, west, east, ...).
                side = _LOOP_SIDES[loops.get(source, 0) % len(_LOOP_SIDES)]
                loops[source] = loops.get(source, 0) + 1
                attrs.update(tailport=side, headport=side)
            container.edge(
                source,
                dest,
                label=self._transition_label(tran),
                # The row name travels into the SVG as the edge's tooltip and id, so
                # a reader (or a test) can tell parallel edges apart.
                id=tran["row"],
                tooltip=tran["row"],
                **attrs,
            )

    def get_graph(self, title: str | None = None, roi_state: str | None = None) -> Any:
        graph = super().get_graph(title, roi_state)
        graph.graph_attr.update(self.machine.drawing.dot_graph_attr)
        return graph


class MermaidGraph(_MermaidGraph):
    """The Mermaid engine with one ``-->`` line per row.

    Mermaid's state diagrams cannot style a single transition, so a highlighted row is
    marked by its step numbers in the label; highlighted states get a class.
    """

    machine: TableMachine

    def __init__(self, machine: TableMachine) -> None:
        super().__init__(machine)  # type: ignore[arg-type]  # the stub says Type[...]

    def _convert_state_attributes(self, state: dict[str, str]) -> str:
        return self.machine.drawing.node_labels[state["name"]].replace(NL, "<br/>")

    def _transition_label(self, tran: dict[str, str]) -> str:
        label = self.machine.step_prefix(tran["row"]) + tran["label"]
        return label.replace(NL, "<br/>")

    def _add_nodes(self, states: list[dict[str, str]], container: list[str]) -> None:
        # The base class reads custom_styles; route our node styles through them.
        node_styles = self.custom_styles["node"]
        for state in states:
            node_styles[state["name"]] = self.machine.node_style(state["name"])
        super()._add_nodes(states, container)

    def _add_edges(self, transitions: list[dict[str, str]], container: list[str]) -> None:
        for tran in self.machine.table_transitions(transitions):
            dest = tran.get("dest", tran["source"])
            container.append(f"{tran['source']} --> {dest}: {self._transition_label(tran)}")

    def get_graph(self, title: str | None = None, roi_state: str | None = None) -> Any:
        graph = super().get_graph(title, roi_state)
        lines: list[str] = graph.source.split("\n")
        # transitions opens with a front matter whose body is the bare title (not the
        # ``title:`` key Mermaid reads); the diagram starts at ``stateDiagram-v2`` and
        # the title stays as a comment.
        start = lines.index("stateDiagram-v2")
        head = [lines[start], f"  %% {title or self.machine.title}"]
        graph.source = "\n".join([*head, *lines[start + 1 :]]) + "\n"
        return graph
