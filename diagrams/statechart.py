"""State diagrams of the heartbeat, drawn from the transition table.

Theory of operation
-------------------
The table (:data:`sephb.model.protocol.TABLE`, filtered by an interpretation's
:meth:`~sephb.model.interpretations.Interpretation.rows`) is loaded into a
``transitions`` ``GraphMachine`` -- one transition per row, guards as conditions --
and the machine's own diagram engines draw it: Graphviz for DOT, SVG and PNG, Mermaid
for ``stateDiagram-v2``. No DOT or Mermaid is written by hand; the few places where
the engines needed bending (one edge per row rather than one per pair of states,
highlighting one row among parallel ones) are in :mod:`sephb.diagrams._engines`.

Each edge reads ``EVENT [guard]`` over the requirement id that makes the move
mandatory, so a reviewer can go from any arrow to the seed's sentence. Each node gives
the state, the seed step it performs and its entry action. Rest states (where a
check-in starts and ends) are shaded.

A *highlight* is a check-in path as :mod:`sephb.model.graph` produces it: edges
``(source node, dest node, row name)`` of the abstract graph or of a concrete graph
(nodes like ``CONNECTING@m2``); the row name decides which edge is meant, so parallel
edges and a self-loop taken several times (failover across managers) are drawn
exactly. Highlighted edges carry their step numbers, ``(1) HEARTBEAT_DUE ...``.

A *coverage overlay* (``counts``: row name -> times exercised, as a conformance run's
``SuiteResult.transitions`` holds it) adds a third line to every edge with its count
and draws the rows never exercised, and the states no exercised row reaches, in red
dashed lines: the gaps of a test run show up where the protocol has them. A row absent
from ``counts`` counts as never exercised; a name that is not a row is refused, since
it means the counts were taken against another table.

Everything rendered is deterministic: the same table gives the same DOT and Mermaid
bytes anywhere, and the same SVG/PNG bytes with the same Graphviz. That is what
:func:`is_stale` relies on to tell whether the committed ``docs/diagrams`` still
match the table.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sephb.model.errors import UsageError
from sephb.model.hierarchy import ChartEdge, Statechart, statechart
from sephb.model.interpretations import INTERPRETATIONS, Interpretation, get
from sephb.model.protocol import ENTRY, INITIAL, REST_STATES, STEP, Row, State

if TYPE_CHECKING:  # only an annotation: drawing a diff needs no graph library
    from sephb.model.diffing import Diff

#: Output formats :func:`render` accepts.
FORMATS: Final[tuple[str, ...]] = ("svg", "png", "dot", "mermaid")
#: File suffix written for each format.
SUFFIXES: Final[dict[str, str]] = {"svg": ".svg", "png": ".png", "dot": ".dot",
                                   "mermaid": ".mmd"}

#: The views :func:`render` draws: one edge per row, or superstates with shared exits.
VIEWS: Final[tuple[str, ...]] = ("full", "statechart")

#: An edge of a networkx graph from :mod:`sephb.model.graph`: (source, dest, row name).
HighlightEdge = tuple[str, str, str]

_FONT: Final = "Helvetica,Arial,sans-serif"
_INK: Final = "#37474f"
_PATH_INK: Final = "#c62828"
#: Rows and states a coverage overlay found never exercised. A brighter red than the
#: path's, and dashed: "missing", where a highlighted path says "taken".
UNCOVERED_INK: Final = "#e53935"

# Graphviz styles, in the shape GraphMachine.style_attributes has: "default" is the
# base of every node/edge, the others are applied by name on top of it.
_DOT_STYLES: Final[dict[str, dict[str, dict[str, str]]]] = {
    "node": {
        "default": {"shape": "box", "style": "rounded,filled", "fillcolor": "white",
                    "color": _INK, "fontcolor": "black", "fontname": _FONT,
                    "fontsize": "12", "margin": "0.15,0.07", "penwidth": "1.2"},
        "rest": {"fillcolor": "#e3ecf5"},
        "path": {"fillcolor": "#fde3df", "color": _PATH_INK, "penwidth": "2.5"},
        "uncovered": {"fillcolor": "#fff5f5", "color": UNCOVERED_INK,
                      "fontcolor": "#b71c1c", "style": "rounded,filled,dashed",
                      "penwidth": "1.6"},
    },
    "edge": {
        "default": {"color": _INK, "fontcolor": "#263238", "fontname": _FONT,
                    "fontsize": "11", "arrowsize": "0.7"},
        "path": {"color": _PATH_INK, "fontcolor": _PATH_INK, "penwidth": "2.5"},
        "uncovered": {"color": UNCOVERED_INK, "fontcolor": "#b71c1c", "style": "dashed",
                      "penwidth": "1.6"},
    },
    "graph": {
        "default": {"fontname": _FONT, "fontsize": "14", "labelloc": "t",
                    "labeljust": "l"},
        # A superstate's frame (statechart view): quieter than a state's box.
        "cluster": {"style": "rounded,filled", "fillcolor": "#f5f7fa", "color": "#90a4ae",
                    "fontsize": "12", "fontcolor": _INK, "penwidth": "1.2",
                    "margin": "14"},
    },
}
# Layout (top to bottom, set in _engines), per view. The full view is read at its
# natural size: generous separation keeps the labels of parallel edges and of the long
# edges back to IDLE apart. The statechart view is tight: the HTML report fits it
# into about 1,244 px, where its 11 pt labels must still be 10 px or more. Both hold
# in a browser: tests/test_legibility.py.
_DOT_LAYOUT: Final[dict[str, str]] = {
    "nodesep": "0.55",
    "ranksep": "0.9",
    "splines": "true",
    "pad": "0.3",
    "newrank": "true",
}
# Mermaid's classDef takes CSS; "default" must exist (every state gets a class).
_MERMAID_STYLES: Final[dict[str, dict[str, dict[str, str]]]] = {
    "node": {
        "default": {"fill": "white"},
        "rest": {"fill": "#e3ecf5"},
        "path": {"fill": "#fde3df", "stroke": _PATH_INK, "stroke-width": "3px"},
        "uncovered": {"fill": "#fff5f5", "stroke": UNCOVERED_INK,
                      "stroke-dasharray": "5"},
    },
    "edge": {},
    "graph": {},
}


def _mermaid_styles(*, coverage: bool) -> dict[str, dict[str, dict[str, str]]]:
    """Mermaid writes a classDef for every node style it is given; the coverage
    style only when drawing coverage, so that plain diagrams keep their bytes."""
    if coverage:
        return _MERMAID_STYLES
    nodes = {k: v for k, v in _MERMAID_STYLES["node"].items() if k != "uncovered"}
    return {**_MERMAID_STYLES, "node": nodes}


def edge_label(row: Row) -> str:
    """``EVENT [guard]`` over the requirement id (a newline between; each engine
    writes it in its own syntax)."""
    guard = f" [{row.guard.value}]" if row.guard else ""
    return f"{row.event.value}{guard}\n{row.requirement}"


def chart_edge_label(edge: ChartEdge) -> str:
    """A statechart edge's label: its events (any of them), guard and requirement."""
    guard = f" [{edge.guard.value}]" if edge.guard else ""
    return f"{' | '.join(e.value for e in edge.events)}{guard}\n{edge.requirement}"


def count_label(count: int) -> str:
    """The coverage line of an edge: how often a run exercised the row."""
    return f"{count:,}× exercised" if count else "0× NOT EXERCISED"


def node_label(state: State) -> str:
    """The state over the seed step it performs and its entry action."""
    return f"{state.value}\nstep {STEP[state]}: entry / {ENTRY[state].value}"


def filename(interpretation: str, fmt: str, view: str = "full") -> str:
    """The file :func:`write_all` writes for one interpretation, format and view."""
    _check_format(fmt)
    suffix = "" if view == "full" else f"-{view}"
    return f"heartbeat-{interpretation}{suffix}{SUFFIXES[fmt]}"


def render(
    interpretation: str = "seed",
    fmt: str = "svg",
    highlight: Sequence[HighlightEdge] | None = None,
    counts: Mapping[str, int] | None = None,
    *,
    view: str = "full",
    caption: str | None = None,
) -> bytes:
    """The state diagram of one interpretation in one of :data:`FORMATS`.

    ``view`` is one of :data:`VIEWS`: ``full`` draws one edge per row; ``statechart``
    boxes states that share exits into superstates (:mod:`sephb.model.hierarchy`) and
    draws each shared exit once, from the box. ``highlight`` is a check-in path (edges
    of the abstract or of a concrete graph); its edges and states are drawn in red and
    its edges numbered in path order, and ``caption`` (which path, of which
    configuration) goes in the title. ``counts`` (row name -> times exercised)
    overlays a test run's coverage: every edge gets its count, and rows never
    exercised are drawn red and dashed.
    """
    _check_format(fmt)
    if view not in VIEWS:
        raise UsageError(f"unknown diagram view {view!r}; expected one of: "
                         f"{', '.join(VIEWS)}")
    interp = get(interpretation)
    graph = _machine_graph(interp, "mermaid" if fmt == "mermaid" else "graphviz",
                           list(highlight or []), counts, view, caption)
    if fmt in ("dot", "mermaid"):
        return str(graph.source).encode()
    return _pipe(graph, fmt)


def write_all(outdir: Path) -> list[Path]:
    """Write every interpretation in every format into ``outdir``; return the paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, view, fmt, data in _renders():
        path = outdir / filename(name, fmt, view)
        path.write_bytes(data)
        paths.append(path)
    return paths


def is_stale(outdir: Path) -> list[str]:
    """Files of ``outdir`` (as :func:`write_all` names them) that are missing or no
    longer match a fresh render, in :func:`write_all`'s order.

    DOT and Mermaid are compared byte for byte: they depend on the table only. SVG and
    PNG also depend on the Graphviz that drew them; they are compared (SVG without its
    generator comment) when the committed SVG names the Graphviz installed here, and
    otherwise only checked to exist -- another Graphviz cannot reproduce them.
    """
    stale: list[str] = []
    fresh = _renders()
    same_renderer = {
        (name, view): _generator(outdir / filename(name, "svg", view)) == _generator(data)
        for name, view, fmt, data in fresh
        if fmt == "svg"
    }
    for name, view, fmt, data in fresh:
        path = outdir / filename(name, fmt, view)
        comparable = fmt in ("dot", "mermaid") or same_renderer[name, view]
        if not path.is_file() or (
            comparable and _normalise(fmt, path.read_bytes()) != _normalise(fmt, data)
        ):
            stale.append(path.name)
    return stale


# ---------------------------------------------------------------------------------


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown diagram format {fmt!r}; expected one of: "
                         f"{', '.join(FORMATS)}")


@functools.cache
def _renders() -> tuple[tuple[str, str, str, bytes], ...]:
    """Every plain diagram: (interpretation, view, format, bytes). Cached: the table
    cannot change within a process, and ``write_all`` followed by ``is_stale`` would
    otherwise run ``dot`` twice over."""
    return tuple(
        (name, view, fmt, render(name, fmt, view=view))
        for name in INTERPRETATIONS for view in VIEWS for fmt in FORMATS
    )


_GENERATOR = re.compile(rb"<!-- Generated by graphviz version [^>]*-->\n?")


def _generator(svg: Path | bytes) -> bytes | None:
    data = svg if isinstance(svg, bytes) else (svg.read_bytes() if svg.is_file() else b"")
    m = _GENERATOR.search(data)
    return m.group(0) if m else None


def _normalise(fmt: str, data: bytes) -> bytes:
    return _GENERATOR.sub(b"", data) if fmt == "svg" else data


def _path_steps(
    interp: Interpretation, highlight: Sequence[HighlightEdge]
) -> tuple[dict[str, list[int]], frozenset[str]]:
    """Row name -> positions on the path, and the states the path visits.

    Concrete nodes (``STATE@m<k>``) fold onto their state: the diagram has one node
    per state, so a failover path takes the CONNECTING self-loop once per manager.
    """
    rows = {r.name: r for r in interp.rows()}
    steps: dict[str, list[int]] = {}
    states: set[str] = set()
    for i, edge in enumerate(highlight, 1):
        try:
            source, dest, key = edge
        except (TypeError, ValueError):
            raise UsageError(f"highlight step {i}: expected (source, dest, row), "
                             f"got {edge!r}") from None
        row = rows.get(key)
        if row is None:
            raise UsageError(f"highlight step {i}: {key!r} is not a row of the "
                             f"{interp.name!r} interpretation")
        got = (source.split("@")[0], dest.split("@")[0])
        if got != (row.source.value, row.dest.value):
            raise UsageError(f"highlight step {i}: edge {source} -> {dest} does not "
                             f"match row {key}")
        steps.setdefault(key, []).append(i)
        states.update(got)
    return steps, frozenset(states)


def _coverage(
    interp: Interpretation, counts: Mapping[str, int] | None
) -> tuple[dict[str, int] | None, frozenset[str], frozenset[str]]:
    """Row name -> count (every row of the interpretation, absent ones as 0), the
    rows never exercised and the states no exercised row enters.

    The initial state counts as reached: a client starts there without a row.
    """
    if counts is None:
        return None, frozenset(), frozenset()
    rows = interp.rows()
    names = {r.name for r in rows}
    for key, n in counts.items():
        if key not in names:
            raise UsageError(f"coverage count for {key!r}: not a row of the "
                             f"{interp.name!r} interpretation")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise UsageError(f"coverage count for {key!r}: expected an integer >= 0, "
                             f"got {n!r}")
    full = {r.name: counts.get(r.name, 0) for r in rows}
    reached = {INITIAL.value} | {r.dest.value for r in rows if full[r.name]}
    return (full, frozenset(k for k, n in full.items() if not n),
            frozenset(s.value for s in State if s.value not in reached))


def _machine_graph(
    interp: Interpretation,
    engine: str,
    highlight: Sequence[HighlightEdge],
    counts: Mapping[str, int] | None = None,
    view: str = "full",
    caption: str | None = None,
) -> Any:
    """The engine's graph object (a ``graphviz.Digraph`` or Mermaid text holder)."""
    from . import _engines  # imports transitions (and graphviz): only when drawing

    steps, on_path = _path_steps(interp, highlight)
    full, uncovered, unreached = _coverage(interp, counts)
    rows = interp.rows()
    chart = statechart(interp) if view == "statechart" else None
    # What each drawn edge stands for: one row (full view) or the rows of a
    # statechart edge.
    drawn: list[tuple[str, str, str, str, str | None, tuple[str, ...]]] = (
        [(r.name, r.event.value, r.source.value, r.dest.value,
          r.guard.value if r.guard else None, (r.name,)) for r in rows]
        if chart is None else
        [(e.name, " | ".join(ev.value for ev in e.events), e.source, e.dest.value,
          e.guard.value if e.guard else None, e.rows) for e in chart.edges])
    node = _node_names(chart)
    labels = {r.name: edge_label(r) for r in rows}
    if chart is not None:
        labels = {e.name: chart_edge_label(e) for e in chart.edges}

    def count(names: tuple[str, ...]) -> str:
        assert full is not None
        if len(names) == 1 or all(full[n] for n in names):
            return count_label(sum(full[n] for n in names))
        missed = sum(1 for n in names if not full[n])
        return f"{missed} of {len(names)} transitions NOT EXERCISED"

    drawing = _engines.Drawing(
        title=_title(interp, chart, full, uncovered, caption, len(steps) and
                     sum(len(v) for v in steps.values())),
        legend=_legend(chart is not None, bool(steps), full is not None),
        node_labels={s.value: node_label(s) for s in State},
        path_steps=_merged_steps(steps, drawn),
        path_states=frozenset(node[s] for s in on_path),
        rest_states=frozenset(node[s.value] for s in REST_STATES),
        uncovered_rows=frozenset(name for name, *_, of in drawn
                                 if any(r in uncovered for r in of)),
        uncovered_states=frozenset(node[s] for s in unreached),
        dot_graph_attr=_DOT_LAYOUT if chart is None else {
            **_DOT_LAYOUT, "nodesep": "0.15", "ranksep": "0.8"},
        cluster_labels={} if chart is None else {
            s.name: s.text for s in chart.superstates},
    )
    machine_cls = _engines.TableMachine if chart is None else _engines.ChartMachine
    machine = machine_cls(
        states=_states(chart),
        initial=INITIAL.value,
        edges=[
            _engines.EdgeSpec(
                row=name,
                trigger=trigger,
                source=node[source],
                dest=node[dest],
                label=labels[name] if full is None else f"{labels[name]}\n{count(of)}",
                guard=guard,
            )
            for name, trigger, source, dest, guard, of in drawn
        ],
        drawing=drawing,
        engine=engine,
        style_attributes=(_mermaid_styles(coverage=full is not None)
                          if engine == "mermaid" else _DOT_STYLES),
    )
    if chart is None:
        graph_cls = _engines.MermaidGraph if engine == "mermaid" else _engines.DotGraph
    else:
        graph_cls = (_engines.NestedMermaidGraph if engine == "mermaid"
                     else _engines.NestedDotGraph)
    return graph_cls(machine).get_graph()


def _node_names(chart: Statechart | None) -> dict[str, str]:
    """State value (or superstate name) -> its node's name in the drawing: a state
    in a superstate is named after it too (``SESSION_PENDING__CONNECTING``)."""
    names = {s.value: s.value for s in State}
    if chart is not None:
        for s in State:
            parent = chart.parent(s)
            if parent is not None:
                names[s.value] = f"{parent.name}__{s.value}"
        names.update({s.name: s.name for s in chart.superstates})
    return names


def _states(chart: Statechart | None) -> list[str | dict[str, Any]]:
    """The machine's states in table order; a superstate where its first state is."""
    if chart is None:
        return [s.value for s in State]
    out: list[str | dict[str, Any]] = []
    for s in State:
        parent = chart.parent(s)
        if parent is None:
            out.append(s.value)
        elif s is parent.states[0]:
            out.append({"name": parent.name,
                        "children": [c.value for c in parent.states]})
    return out


def _merged_steps(steps: Mapping[str, list[int]],
                  drawn: Sequence[tuple[str, str, str, str, str | None, tuple[str, ...]]]
                  ) -> dict[str, list[int]]:
    """Path positions per drawn edge: the positions of the rows it stands for."""
    out: dict[str, list[int]] = {}
    for name, *_, of in drawn:
        taken = sorted(i for r in of for i in steps.get(r, ()))
        if taken:
            out[name] = taken
    return out


def _title(interp: Interpretation, chart: Statechart | None,
           full: Mapping[str, int] | None, uncovered: frozenset[str],
           caption: str | None, path_length: int) -> str:
    """What the picture shows, one line each: the reading, the view, and what is
    drawn on it (a path, a coverage)."""
    n = len(interp.rows())
    lines = [f"SEP client heartbeat, interpretation '{interp.name}'", interp.summary,
             (f"Full view: one arrow per transition ({n})" if chart is None else
              f"Statechart view: {len(chart.edges)} arrows for {n} transitions "
              f"({len(chart.superstates)} superstates)")]
    if path_length:
        lines.append(f"Highlighted: {caption or 'a check-in path'}, {path_length} steps")
    if full is not None:
        lines.append(f"Coverage: {n - len(uncovered)} of {n} transitions exercised")
    return "\n".join(lines)


def _legend(statechart_view: bool, path: bool, coverage: bool) -> list[str]:
    """The marks this picture uses, in words."""
    lines = ["Box: a state, the seed step it performs, its entry action; shaded: a rest "
             "state, where a check-in starts and ends.",
             "Arrow: EVENT [guard] over the requirement id that makes the move "
             "mandatory (docs/spec-review.md)."]
    if statechart_view:
        lines.append("Frame: a superstate. An arrow that starts with a small circle on "
                     "its border (or at the circle inside it) stands for one arrow from "
                     "each state in the frame; A | B: on event A or on event B.")
    if path:
        lines.append("Red, numbered (n): the highlighted path, in order.")
    if coverage:
        lines.append("N× exercised: how often the run took it; red, dashed: never "
                     "exercised (a state: never reached).")
    return lines


def _pipe(graph: Any, fmt: str) -> bytes:
    import graphviz

    try:
        data: bytes = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise UsageError(f"drawing {fmt} needs Graphviz's `dot` on PATH: install "
                         "graphviz (e.g. apt-get install graphviz)") from None
    return data


def diff_diagram(d: Diff, fmt: str) -> bytes:
    """The ``to`` interpretation of a :class:`~sephb.model.diffing.Diff` drawn with the
    rows it adds highlighted (``sephb diff --format``); the rows it lacks are listed in
    a Mermaid comment."""
    highlight = [(r.source.value, r.dest.value, r.name) for r in d.rows_only_b]
    data = render(d.b.name, fmt, highlight=highlight)
    if fmt == "mermaid" and d.rows_only_a:
        data += b"".join(
            f"%% only in {d.a.name} (not drawn): {r.name}\n".encode()
            for r in d.rows_only_a
        )
    return data
