"""networkx graphs of the model: the abstract one (a node per state) and the concrete
one a sylink configuration expands it into (a node per state and manager).

Theory of operation
-------------------
The abstract graph is the table drawn as a ``MultiDiGraph``: one edge per row, keyed
by :attr:`Row.name`, so parallel edges (two events between the same states) and
self-loops (failover from CONNECTING to CONNECTING) survive.

The concrete graph resolves the guards whose value the configuration fixes
(:class:`~sephb.model.protocol.Scope` ``CONFIG``: push or pull, which manager comes
next) and drops rows that cannot fire without a GUP. Every state but IDLE carries the
manager the client is talking to, so failover across managers shows as paths
``CONNECTING@m1 -> CONNECTING@m2 -> ...``. Runtime guards (index changed, policy
source) stay as branches.

A *check-in path* starts at a rest state (IDLE, PUSH_HELD), follows edges through
non-rest states and stops at the first rest state it reaches. Non-rest states form a
DAG in every concrete graph (failover only moves forward in the manager order), so the
paths are finite and the covering problems below are flow problems on a DAG, solved
exactly with networkx's network simplex.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx

from .errors import UsageError
from .interpretations import Interpretation, Selection
from .protocol import (
    GUARDS,
    INITIAL,
    REST_STATES,
    Guard,
    Mode,
    Row,
    Scope,
    State,
)

#: An edge of a graph as networkx names it: (source node, dest node, key).
Edge = tuple[str, str, str]
Path = list[Edge]


@dataclass(frozen=True)
class Topology:
    """A concrete sylink configuration: N managers over P priority levels."""

    managers: int = 1
    priorities: int = 1
    gup: bool = False
    mode: Mode = Mode.PULL

    def __post_init__(self) -> None:
        if self.managers < 1:
            raise UsageError(f"--managers must be at least 1, got {self.managers}")
        if not 1 <= self.priorities <= self.managers:
            raise UsageError(
                f"--priorities must be between 1 and --managers ({self.managers}), "
                f"got {self.priorities}"
            )

    def priority(self, manager: int) -> int:
        """Priority (1 = highest) of the 0-based manager, blocks of near-equal size."""
        return manager * self.priorities // self.managers + 1

    def first_choices(self, selection: Selection) -> list[int]:
        """Managers a heartbeat may start with."""
        if selection is Selection.FIRST:
            return [0]
        return [m for m in range(self.managers) if self.priority(m) == 1]


def node(state: State, manager: int | None) -> str:
    """The concrete node name: ``IDLE`` or ``STATE@m<k>`` (1-based manager)."""
    return state.value if manager is None else f"{state.value}@m{manager + 1}"


def abstract_graph(rows: Iterable[Row]) -> nx.MultiDiGraph:
    """The table as a graph: a node per state, an edge per row."""
    g = nx.MultiDiGraph()
    for s in State:
        g.add_node(s.value, state=s, manager=None)
    for r in rows:
        g.add_edge(r.source.value, r.dest.value, key=r.name, row=r)
    return g


def _config_guard_holds(guard: Guard | None, topo: Topology, manager: int) -> bool:
    """Resolve a CONFIG-scoped guard for one manager; runtime guards stay open."""
    if guard is None or GUARDS[guard].scope is Scope.RUNTIME:
        return not (guard is Guard.SOURCE_GUP and not topo.gup)
    return {
        Guard.PULL_MODE: topo.mode is Mode.PULL,
        Guard.PUSH_MODE: topo.mode is Mode.PUSH,
        Guard.NEXT_MANAGER: manager + 1 < topo.managers,
        Guard.LAST_MANAGER: manager + 1 >= topo.managers,
    }[guard]


def concrete_graph(
    interp: Interpretation, topo: Topology, rows: Iterable[Row] | None = None
) -> nx.MultiDiGraph:
    """Expand the table for one configuration, keeping what IDLE can reach."""
    table = tuple(interp.rows() if rows is None else rows)
    by_source: dict[State, list[Row]] = {}
    for r in table:
        by_source.setdefault(r.source, []).append(r)
    g = nx.MultiDiGraph()
    start = node(INITIAL, None)
    g.add_node(start, state=INITIAL, manager=None)
    todo: list[tuple[State, int | None]] = [(INITIAL, None)]
    seen = {start}
    while todo:
        state, m = todo.pop()
        for r in by_source.get(state, []):
            nexts: list[int | None]
            if m is None:  # leaving IDLE: step 1 chooses the manager
                nexts = (
                    [None] if r.dest is State.IDLE
                    else list(topo.first_choices(interp.selection))
                )
            elif not _config_guard_holds(r.guard, topo, m):
                continue
            elif r.dest is State.IDLE:
                nexts = [None]
            else:
                nexts = [m + 1 if r.guard is Guard.NEXT_MANAGER else m]
            for nxt in nexts:
                v = node(r.dest, nxt)
                g.add_edge(node(state, m), v, key=r.name, row=r)
                if v not in seen:
                    seen.add(v)
                    g.nodes[v].update(state=r.dest, manager=nxt)
                    todo.append((r.dest, nxt))
    return g


def is_rest(g: nx.MultiDiGraph, n: str) -> bool:
    return g.nodes[n]["state"] in REST_STATES


def checkin_paths(g: nx.MultiDiGraph) -> Iterator[Path]:
    """Every check-in path of a concrete graph, depth first, in a stable order."""
    for start in sorted(n for n in g if is_rest(g, n)):
        stack: list[tuple[str, Path]] = [(start, [])]
        while stack:
            n, path = stack.pop()
            if path and is_rest(g, n):
                yield path
                continue
            out = sorted(g.out_edges(n, keys=True), reverse=True)
            for e in out:
                if any(e == p for p in path):  # defensive: a cycle is a model bug
                    raise ValueError(f"check-in cycle through {e}")
                stack.append((e[1], [*path, e]))


def _min_flow_paths(
    dag: nx.DiGraph, source: Any, sink: Any, must: set[tuple[Any, Any]]
) -> list[list[Any]]:
    """Fewest source->sink paths of a DAG that together use every edge in ``must``.

    Minimum flow with lower bounds, as a min-cost circulation: each edge in ``must``
    gets lower bound 1 (moved into node demands), a return edge sink->source costs 1
    per unit, so the optimum counts paths. The flow is then split into paths.
    """
    net = nx.DiGraph()
    for u, v in dag.edges():
        net.add_edge(u, v, weight=0)
    for n in net.nodes:
        net.nodes[n]["demand"] = 0
    for u, v in must:
        net.nodes[u]["demand"] += 1
        net.nodes[v]["demand"] -= 1
    net.add_edge(sink, source, weight=1)
    _, flow = nx.network_simplex(net)
    residual = {
        u: {v: f + (1 if (u, v) in must else 0) for v, f in d.items()}
        for u, d in flow.items()
    }
    paths: list[list[Any]] = []
    while True:
        nxt = {v: f for v, f in residual[source].items() if f > 0 and v != sink}
        if not nxt:
            break
        p, n = [source], source
        while n != sink:
            v = min((v for v, f in residual[n].items() if f > 0), key=str)
            residual[n][v] -= 1
            p.append(v)
            n = v
        paths.append(p)
    return paths


_SRC, _SNK = ("__source__",), ("__sink__",)


def cover_transitions(g: nx.MultiDiGraph) -> list[Path]:
    """A smallest set of check-in paths that together take every edge of ``g``."""
    dag = nx.DiGraph()
    must: set[tuple[Any, Any]] = set()
    for u, v, k in g.edges(keys=True):
        a = ("out", u) if is_rest(g, u) else ("mid", u)
        b = ("in", v) if is_rest(g, v) else ("mid", v)
        # An edge of the multigraph becomes a node pair so parallel edges stay apart.
        e = ("edge", u, v, k)
        dag.add_edge(a, e)
        dag.add_edge(e, b)
        must.add((a, e))
    for n in g:
        if is_rest(g, n):
            dag.add_edge(_SRC, ("out", n))
            dag.add_edge(("in", n), _SNK)
    return [
        [(x[1], x[2], x[3]) for x in p if x[0] == "edge"]
        for p in _min_flow_paths(dag, _SRC, _SNK, must)
    ]


def cover_edge_pairs(g: nx.MultiDiGraph) -> list[Path]:
    """A smallest set of check-in paths that take every pair of consecutive edges
    (through a non-rest state) and every edge.

    Pairs through a rest state are not obligations: any check-in may follow any other
    that ends in the same rest state, so they hold by composition.
    """
    dag = nx.DiGraph()
    must: set[tuple[Any, Any]] = set()
    for u, v, k in g.edges(keys=True):
        e = ("edge", u, v, k)
        dag.add_node(e)
        if is_rest(g, u):
            dag.add_edge(_SRC, e)
            must.add((_SRC, e))
        if is_rest(g, v):
            dag.add_edge(e, _SNK)
            must.add((e, _SNK))
        else:
            for _, w, k2 in g.out_edges(v, keys=True):
                f = ("edge", v, w, k2)
                dag.add_edge(e, f)
                must.add((e, f))
    return [
        [(x[1], x[2], x[3]) for x in p if x[0] == "edge"]
        for p in _min_flow_paths(dag, _SRC, _SNK, must)
    ]


def edge_pairs(paths: Iterable[Path], g: nx.MultiDiGraph) -> set[tuple[Edge, Edge]]:
    """The consecutive edge pairs (through non-rest states) that ``paths`` take."""
    return {
        (a, b) for p in paths for a, b in zip(p, p[1:], strict=False) if not is_rest(g, a[1])
    }


def all_edge_pairs(g: nx.MultiDiGraph) -> set[tuple[Edge, Edge]]:
    return {
        ((u, v, k), (v, w, k2))
        for u, v, k in g.edges(keys=True)
        if not is_rest(g, v)
        for _, w, k2 in g.out_edges(v, keys=True)
    }


def row_of(g: nx.MultiDiGraph, e: Edge) -> Row:
    row: Row = g.edges[e]["row"]
    return row


def edge_json(g: nx.MultiDiGraph, e: Edge) -> dict[str, str | None]:
    r = row_of(g, e)
    return {
        "source": e[0],
        "event": r.event.value,
        "dest": e[1],
        "guard": r.guard.value if r.guard else None,
        "requirement": r.requirement,
    }
