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
* The statechart view is a ``HierarchicalGraphMachine`` (:class:`ChartMachine`):
  superstates are its parent states, which both engines draw as boxes (a Graphviz
  cluster, a Mermaid composite state). Its state separator is ``__`` because the
  table's state names hold ``_``; an edge from a superstate starts at the box's
  border (Graphviz ``ltail``, which needs ``compound``) and keeps its label in the
  middle (the library puts it at the head, far from the edge it names).

Nothing here knows the protocol: the rows, labels and highlight come from
:mod:`sephb.diagrams.statechart`, which builds them from the table.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transitions.extensions.diagrams import (
    GraphMachine,
    HierarchicalGraphMachine,
    NestedGraphTransition,
    TransitionGraphSupport,
)
from transitions.extensions.diagrams_base import BaseGraph
from transitions.extensions.diagrams_graphviz import Graph as _GraphvizGraph
from transitions.extensions.diagrams_graphviz import NestedGraph as _NestedGraphviz
from transitions.extensions.diagrams_mermaid import Graph as _MermaidGraph
from transitions.extensions.diagrams_mermaid import NestedGraph as _NestedMermaid
from transitions.extensions.nesting import NestedState

#: The line break inside a label, before an engine translates it.
NL = "\n"
#: Characters per line of a Graphviz title or legend (longer lines wrap).
_TITLE_WIDTH = 110
#: The circle that stands for a superstate (statechart view).
_DOT_INK = "#37474f"
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
    #: Lines that explain the drawing's marks (drawn under the title).
    legend: Sequence[str] = ()
    #: Statechart view: superstate name -> the title of its box.
    cluster_labels: Mapping[str, str] = field(default_factory=dict)


class RowTransition(TransitionGraphSupport):
    """A transition that remembers which row of the table it was made from."""

    def __init__(self, *args: Any, row: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.row = row


# The mixin below is a GraphMachine to the type checker (its super().__init__ is the
# machine's), and a plain class at run time (each machine lists its own base).
if TYPE_CHECKING:
    _Base = GraphMachine
else:
    _Base = object


class _Drawn(_Base):
    """What both machines share: they draw, never run (no model), one transition per
    row (or per edge of the statechart view), styled by its name."""

    drawing: Drawing
    row_order: dict[str, int]
    styles: dict[str, dict[str, dict[str, str]]]

    def _setup(
        self,
        states: Sequence[str | dict[str, Any]],
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

    def table_transitions(self, transitions: list[dict[str, str]]) -> list[dict[str, str]]:
        """The markup's transitions in table order (the markup groups them by event);
        the order of edges steers ``dot``'s layout, and the table's reads best."""
        return sorted(transitions, key=lambda t: self.row_order[t["row"]])

    def step_prefix(self, row: str) -> str:
        """``(2) `` or ``(2,3) ``: where the highlighted path takes this row."""
        steps = self.drawing.path_steps.get(row)
        return f"({','.join(map(str, steps))}) " if steps else ""

    def node_style(self, state: str) -> str:
        # (A statechart's node is named after its parent too, as the drawing's sets
        # name it: SESSION_PENDING__CONNECTING.)
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


class TableMachine(_Drawn, GraphMachine):
    """A ``GraphMachine`` that draws the table flat: one node per state."""

    transition_cls = RowTransition
    # ``row`` joins the attributes the markup keeps, so the graphs receive it.
    transition_attributes = [*GraphMachine.transition_attributes, "row"]  # noqa: RUF012

    def __init__(self, states: Sequence[str | dict[str, Any]], initial: str,
                 edges: Sequence[EdgeSpec],
                 drawing: Drawing, engine: str,
                 style_attributes: dict[str, dict[str, dict[str, str]]]) -> None:
        self._setup(states, initial, edges, drawing, engine, style_attributes)

    def _init_graphviz_engine(self, graph_engine: str) -> type[BaseGraph]:
        # The library picks its engine class here; ours, so that the machine's own
        # get_graph (if a model is ever attached) draws what render() draws.
        return {"graphviz": DotGraph, "mermaid": MermaidGraph}[graph_engine]


class ChartState(NestedState):
    """A state of the statechart view: ``__`` separates parent and child, since the
    table's names hold ``_`` (the library's default separator)."""

    separator = "__"


class ChartTransition(NestedGraphTransition):
    """A nested transition that remembers which edge of the view it draws."""

    def __init__(self, *args: Any, row: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.row = row


# (transitions' stubs type GraphMachine's and HierarchicalMachine's add_* apart.)
class ChartMachine(_Drawn, HierarchicalGraphMachine):  # type: ignore[misc]
    """A ``HierarchicalGraphMachine`` that draws the statechart view: superstates are
    parent states, ``states`` nested as the library takes them (``children``)."""

    state_cls = ChartState
    transition_cls = ChartTransition
    transition_attributes = [*GraphMachine.transition_attributes, "row"]  # noqa: RUF012

    def __init__(self, states: Sequence[str | dict[str, Any]], initial: str,
                 edges: Sequence[EdgeSpec], drawing: Drawing, engine: str,
                 style_attributes: dict[str, dict[str, dict[str, str]]]) -> None:
        self._setup(states, initial, edges, drawing, engine, style_attributes)

    def _init_graphviz_engine(self, graph_engine: str) -> type[BaseGraph]:
        return {"graphviz": NestedDotGraph, "mermaid": NestedMermaidGraph}[graph_engine]


class DotGraph(_GraphvizGraph):
    """The Graphviz engine with one edge per row and per-row highlighting."""

    machine: _Drawn

    def __init__(self, machine: _Drawn) -> None:
        super().__init__(machine)  # type: ignore[arg-type]  # the stub says Type[...]

    def _convert_state_attributes(self, state: dict[str, str]) -> str:
        return self.machine.drawing.node_labels[state["name"]].replace(NL, r"\n")

    def _ends(self, source: str, dest: str) -> tuple[str, dict[str, str]]:
        """The node an edge leaves from and the attributes that say where it starts
        (a superstate's: its box)."""
        return source, {}

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
            tail, ends = self._ends(source, dest)
            attrs.update(ends)
            container.edge(
                tail,
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
        # The title's lines and the legend under it, left-justified (``\l`` ends a
        # line flush left); the graph is named by the first line alone.
        d = self.machine.drawing
        legend = ["", *d.legend] if d.legend else []
        lines = [wrapped for line in [*(title or d.title).split(NL), *legend]
                 for wrapped in (textwrap.wrap(line, _TITLE_WIDTH) or [""])]
        graph.graph_attr["label"] = "".join(line + r"\l" for line in lines)
        graph.name = lines[0]
        return graph


class NestedDotGraph(DotGraph, _NestedGraphviz):
    """The Graphviz engine of the statechart view: a superstate is a cluster holding
    its states. An edge from a superstate leaves from the box's border (``ltail``;
    ``dot`` routes it from the box's first state) and starts with a small open
    circle. ``dot`` cannot clip an edge at a box that also holds its head, so an
    edge back into its own superstate leaves from an open circle at the bottom of
    the box, which stands for the box."""

    def _add_nodes(self, states: list[dict[str, Any]], container: Any) -> None:
        self._first: dict[str, str] = {}
        self._last: dict[str, str] = {}
        self._add_tree(states, container, "")

    def _add_tree(self, states: list[dict[str, Any]], container: Any, prefix: str) -> None:
        node_styles = self.machine.styles["node"]
        for state in states:
            name = prefix + state["name"]
            if state.get("children") is None:
                container.node(name, label=self._convert_state_attributes(state),
                               **node_styles.get(self.machine.node_style(name), {}))
                continue
            self._cluster_states.append(name)
            attr = {**self.machine.styles["graph"].get("cluster", {}),
                    "label": self.machine.drawing.cluster_labels[name].replace(NL, r"\n")}
            with container.subgraph(name="cluster_" + name, graph_attr=attr) as sub:
                inner = name + ChartState.separator
                self._add_tree(state["children"], sub, inner)
                self._first[name] = inner + state["children"][0]["name"]
                self._last[name] = inner + state["children"][-1]["name"]

    def _ends(self, source: str, dest: str) -> tuple[str, dict[str, str]]:
        if source not in self._cluster_states:
            return source, {}
        # A frame's arrow starts with a small open circle, on the frame's border or
        # (back into the frame) at the circle inside it, so that it cannot pass for
        # an arrow of a framed state that leaves near the border.
        mark = {"dir": "both", "arrowtail": "odot"}
        if not dest.startswith(source + ChartState.separator):
            return self._first[source], {"ltail": "cluster_" + source, **mark}
        if source not in self._dots:  # the frame's circle, below its last state
            self._dots.add(source)
            with self._graph.subgraph(name="cluster_" + source) as sub:
                sub.node(source, label="", shape="circle", width="0.13", height="0.13",
                         fixedsize="true", color=_DOT_INK, fillcolor="white",
                         style="filled", penwidth="1.2")
                sub.edge(self._last[source], source, style="invis", weight="10")
        return source, {}

    def _add_edges(self, transitions: list[dict[str, str]], container: Any) -> None:
        self._graph: Any = container
        self._dots: set[str] = set()
        super()._add_edges(transitions, container)

    def get_graph(self, title: str | None = None, roi_state: str | None = None) -> Any:
        graph = super().get_graph(title, roi_state)
        graph.graph_attr["compound"] = "true"  # what ltail needs
        return graph


class MermaidGraph(_MermaidGraph):
    """The Mermaid engine with one ``-->`` line per row.

    Mermaid's state diagrams cannot style a single transition, so a highlighted row is
    marked by its step numbers in the label; highlighted states get a class.
    """

    machine: _Drawn

    def __init__(self, machine: _Drawn) -> None:
        super().__init__(machine)  # type: ignore[arg-type]  # the stub says Type[...]

    def _convert_state_attributes(self, state: dict[str, str]) -> str:
        d = self.machine.drawing
        label = d.node_labels.get(state["name"]) or d.cluster_labels[state["name"]]
        return label.replace(NL, "<br/>")

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
        # ``title:`` key Mermaid reads): ours has the key, the title's lines joined
        # (a YAML string: JSON's quoting is YAML's). The legend is a note on the
        # initial state.
        d = self.machine.drawing
        start = lines.index("stateDiagram-v2")
        head = ["---", f"title: {json.dumps(' / '.join((title or d.title).split(NL)))}",
                "---", lines[start]]
        legend = [f"  note left of {self.machine.initial}", *(f"    {line}" for line in
                                                             d.legend), "  end note"]
        graph.source = "\n".join([*head, *lines[start + 1 :], *(
            legend if d.legend else [])]) + "\n"
        return graph


class NestedMermaidGraph(MermaidGraph, _NestedMermaid):
    """The Mermaid engine of the statechart view: a superstate is a composite state
    (``state NAME { ... }``). The library gives only top-level states a class; the
    states inside get theirs here, so a highlight or a coverage gap shows on them."""

    def _add_nodes(self, states: list[dict[str, Any]], container: list[str]) -> None:
        super()._add_nodes(states, container)
        for state in states:
            for child in state.get("children") or ():
                name = state["name"] + ChartState.separator + child["name"]
                style = self.machine.node_style(name) or "default"
                container.append(f"Class {name} s_{style}")
