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
paths are finite and the covering problems below are minimum-flow problems on a DAG,
solved exactly (see ``_min_flow_arcs``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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


def _min_flow_paths_simplex(
    dag: nx.DiGraph, source: Any, sink: Any, must: set[tuple[Any, Any]]
) -> list[list[Any]]:
    """Reference for :func:`_min_flow_paths`: the same problem by network simplex.

    Minimum flow with lower bounds, as a min-cost circulation: each edge in ``must``
    gets lower bound 1 (moved into node demands), a return edge sink->source costs 1
    per unit, so the optimum counts paths. Exact but super-linear; tests check the fast
    solver against it.
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


def _min_flow_paths(
    dag: nx.DiGraph, source: Any, sink: Any, must: set[tuple[Any, Any]]
) -> list[list[Any]]:
    """Fewest source->sink paths of a DAG that together use every edge in ``must``.

    Each path is its list of nodes. At each branch the walk takes the successor that
    sorts first by ``str``, so the answer is stable. Raises :class:`ValueError` when a
    required edge lies on no source->sink path.
    """
    nodes = list(dag)
    index = {n: i for i, n in enumerate(nodes)}
    arcs = sorted(dag.edges(), key=lambda e: (str(e[0]), str(e[1])))
    tails = [index[u] for u, _ in arcs]
    heads = [index[v] for _, v in arcs]
    lower = [1 if e in must else 0 for e in arcs]
    s, t = index[source], index[sink]
    flow = _min_flow_arcs(len(nodes), tails, heads, lower, s, t)
    return [
        [source, *(nodes[heads[i]] for i in p)]
        for p in _decompose(len(nodes), tails, heads, flow, s)
    ]


def _min_flow_arcs(
    n: int, tails: list[int], heads: list[int], lower: list[int], s: int, t: int
) -> list[int]:
    """A minimum s-t flow of a DAG with lower bounds and unbounded capacities.

    Nodes are ``0..n-1``; arc ``i`` runs ``tails[i] -> heads[i]`` and must carry at least
    ``lower[i]``. Parallel arcs are fine. Returns the flow of every arc.

    Theory: a flow of value F decomposes into F source->sink paths (the network is
    acyclic) and F paths make a flow, so the fewest covering paths is the value of a
    minimum feasible flow. Minimum flow is maximum flow run backwards (Ahuja, Magnanti
    & Orlin, *Network Flows*, flows with lower bounds; Ciurea & Ciupală, minimum
    flows): take any feasible flow f and, in its residual network -- arc u->v may be
    lowered by f - lower (a move v->u) and raised without limit (u->v) -- send as much
    as possible from t to s. Each unit sent keeps every bound and lowers the value by
    one. When no t->s path is left, f is minimum: a cheaper feasible flow f' would
    make f - f' a t->s flow of positive value in that residual network. So the answer
    is exact; the choices below only change which minimum flow comes out.

    Cost: the feasible start comes from two linear topological passes; the push back is
    Dinic's algorithm (BFS levels, blocking flow with current-arc pointers), iterative
    because check-in paths are longer than Python's recursion limit allows.
    """
    m = len(tails)
    out_arcs: list[list[int]] = [[] for _ in range(n)]
    in_arcs: list[list[int]] = [[] for _ in range(n)]
    for i in range(m):
        out_arcs[tails[i]].append(i)
        in_arcs[heads[i]].append(i)
    order = _topological_order(n, out_arcs, heads)

    # Only arcs on some s->t path can carry flow; a required arc elsewhere is a model
    # bug (a check-in that cannot end, or a state nothing reaches). Hop counts from s
    # and to t also steer the feasible start onto short detours.
    far = n + 1
    from_s, to_t = [far] * n, [far] * n
    from_s[s] = to_t[t] = 0
    for v in order:
        if from_s[v] < far:
            for i in out_arcs[v]:
                from_s[heads[i]] = min(from_s[heads[i]], from_s[v] + 1)
    for v in reversed(order):
        for i in out_arcs[v]:
            to_t[v] = min(to_t[v], to_t[heads[i]] + 1)
    useful = [from_s[tails[i]] < far and to_t[heads[i]] < far for i in range(m)]
    for i in range(m):
        if lower[i] > 0 and not useful[i]:
            raise ValueError(f"required arc {tails[i]}->{heads[i]} is on no s-t path")

    # Feasible start. Pass 1, sinks first: a node that sends more than it receives
    # draws the difference through the in-arc nearest to s (whose tail comes later in
    # this pass). Pass 2, sources first: a node that now receives more than it sends
    # pushes the surplus down the out-arc nearest to t. Then every inner node balances.
    flow = list(lower)
    inflow, outflow = [0] * n, [0] * n
    for i in range(m):
        outflow[tails[i]] += lower[i]
        inflow[heads[i]] += lower[i]
    for v in reversed(order):
        d = outflow[v] - inflow[v]
        if d > 0 and v != s:
            i = min(in_arcs[v], key=lambda i: from_s[tails[i]])
            flow[i] += d
            inflow[v] += d
            outflow[tails[i]] += d
    for v in order:
        d = inflow[v] - outflow[v]
        if d > 0 and v != t:
            i = min(out_arcs[v], key=lambda i: to_t[heads[i]])
            flow[i] += d
            outflow[v] += d
            inflow[heads[i]] += d

    # Residual moves out of each node: ``i`` raises arc i (forward, unbounded),
    # ``~i`` lowers arc i (backward, while flow[i] > lower[i]).
    moves: list[list[int]] = [
        [i for i in out_arcs[v] if useful[i]] + [~i for i in in_arcs[v] if useful[i]]
        for v in range(n)
    ]
    while True:
        level = _residual_levels(n, moves, tails, heads, flow, lower, s, t)
        if level[s] < 0:
            return flow
        _blocking_flow(n, moves, tails, heads, flow, lower, level, s, t)


def _topological_order(n: int, out_arcs: list[list[int]], heads: list[int]) -> list[int]:
    indeg = [0] * n
    for v in range(n):
        for i in out_arcs[v]:
            indeg[heads[i]] += 1
    order = [v for v in range(n) if indeg[v] == 0]
    for v in order:  # the list grows while we walk it: Kahn's queue
        for i in out_arcs[v]:
            w = heads[i]
            indeg[w] -= 1
            if indeg[w] == 0:
                order.append(w)
    if len(order) < n:
        raise ValueError("the flow network has a cycle")
    return order


def _residual_levels(
    n: int,
    moves: list[list[int]],
    tails: list[int],
    heads: list[int],
    flow: list[int],
    lower: list[int],
    s: int,
    t: int,
) -> list[int]:
    """BFS distances from t in the residual network (-1: unreached), up to s."""
    level = [-1] * n
    level[t] = 0
    queue = [t]
    for x in queue:
        if x == s:
            break  # deeper nodes cannot lie on a shortest t->s path
        lx = level[x] + 1
        for a in moves[x]:
            if a >= 0:
                y = heads[a]
            elif flow[~a] > lower[~a]:
                y = tails[~a]
            else:
                continue
            if level[y] < 0:
                level[y] = lx
                queue.append(y)
    return level


def _blocking_flow(
    n: int,
    moves: list[list[int]],
    tails: list[int],
    heads: list[int],
    flow: list[int],
    lower: list[int],
    level: list[int],
    s: int,
    t: int,
) -> None:
    """Augment t->s along level-increasing moves until none is left (Dinic)."""
    ptr = [0] * n
    path: list[int] = []  # moves taken from t
    at = [t]  # nodes visited, at[k] is where path[k] starts
    x = t
    while True:
        if x == s:
            # Raising an arc is unbounded, and every t->s walk lowers at least one
            # arc (the DAG runs s->t), so the bottleneck is finite.
            b = min(flow[~a] - lower[~a] for a in path if a < 0)
            for a in path:
                if a >= 0:
                    flow[a] += b
                else:
                    flow[~a] -= b
            # Resume from the first move the augmentation used up.
            k = next(k for k, a in enumerate(path) if a < 0 and flow[~a] == lower[~a])
            del path[k:]
            del at[k + 1 :]
            x = at[-1]
            continue
        adj, p, want = moves[x], ptr[x], level[x] + 1
        while p < len(adj):
            a = adj[p]
            if a >= 0:
                y = heads[a]
            elif flow[~a] > lower[~a]:
                y = tails[~a]
            else:
                p += 1
                continue
            if level[y] == want:
                break
            p += 1
        ptr[x] = p
        if p < len(adj):
            path.append(adj[p])
            at.append(y)
            x = y
        elif x == t:
            return
        else:
            level[x] = -1  # dead end for the rest of this phase
            path.pop()
            at.pop()
            x = at[-1]
            ptr[x] += 1


def _decompose(
    n: int, tails: list[int], heads: list[int], flow: list[int], s: int
) -> list[list[int]]:
    """Split a DAG flow from s into paths, each a list of arc indices.

    Every node holds a stack with one entry per unit of flow it sends, lowest arc
    index on top; a walk pops its way from s until it reaches a node that sends
    nothing (by conservation, the sink). Each step is O(1), so the split costs the
    total length of the paths, and the same flow always gives the same paths.
    """
    units: list[list[int]] = [[] for _ in range(n)]
    for i in range(len(flow) - 1, -1, -1):
        if flow[i] > 0:
            units[tails[i]].extend([i] * flow[i])
    paths: list[list[int]] = []
    start = units[s]
    while start:
        i = start.pop()
        path = [i]
        step = units[heads[i]]
        while step:
            i = step.pop()
            path.append(i)
            step = units[heads[i]]
        paths.append(path)
    return paths


@dataclass
class _Network:
    """A covering problem as a flow network: arcs with lower bounds between a source
    (0) and a sink (1), each arc standing for the edge of ``g`` a path takes when it
    uses that arc (None for the arcs into the sink and the source's own)."""

    n: int = 2
    tails: list[int] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)
    lower: list[int] = field(default_factory=list)
    edge: list[Edge | None] = field(default_factory=list)
    s: int = 0
    t: int = 1

    def node(self) -> int:
        self.n += 1
        return self.n - 1

    def arc(self, tail: int, head: int, lower: int, edge: Edge | None = None) -> None:
        self.tails.append(tail)
        self.heads.append(head)
        self.lower.append(lower)
        self.edge.append(edge)

    def cover(self) -> list[Path]:
        """The fewest source-sink paths that meet every lower bound, as edges of g."""
        flow = _min_flow_arcs(self.n, self.tails, self.heads, self.lower, self.s, self.t)
        return [[e for a in p if (e := self.edge[a]) is not None]
                for p in _decompose(self.n, self.tails, self.heads, flow, self.s)]


def cover_transitions(g: nx.MultiDiGraph) -> list[Path]:
    """A smallest set of check-in paths that together take every edge of ``g``.

    The flow network is ``g`` with each rest state split in two (``out``: where
    check-ins start, ``in``: where they end) between a source and a sink; every edge
    of ``g`` is an arc with lower bound 1.
    """
    net = _Network()
    out_of: dict[str, int] = {}
    into: dict[str, int] = {}
    for v in sorted(g):
        out_of[v] = net.node()
        if is_rest(g, v):
            into[v] = net.node()
            net.arc(net.s, out_of[v], 0)
            net.arc(into[v], net.t, 0)
        else:
            into[v] = out_of[v]
    for e in sorted(g.edges(keys=True)):
        net.arc(out_of[e[0]], into[e[1]], 1, e)
    return net.cover()


def cover_edge_pairs(g: nx.MultiDiGraph) -> list[Path]:
    """A smallest set of check-in paths that take every pair of consecutive edges
    (through a non-rest state) and every edge.

    Pairs through a rest state are not obligations: any check-in may follow any other
    that ends in the same rest state, so they hold by composition.

    The flow network has a node per edge of ``g`` and an arc, lower bound 1, for every
    obligation: source->e for e leaving a rest state, e->sink for e entering one, e->f
    for every pair. Every edge has such an arc, so covering arcs covers edges too. An
    arc into e stands for taking e.
    """
    edges: list[Edge] = sorted(g.edges(keys=True))
    # Edge j is node j, then the source and the sink.
    net = _Network(n=len(edges) + 2, s=len(edges), t=len(edges) + 1)
    node = {e: j for j, e in enumerate(edges)}
    leaving: dict[str, list[Edge]] = {}
    for e in edges:
        leaving.setdefault(e[0], []).append(e)
    for e in edges:
        u, v, _ = e
        if is_rest(g, u):
            net.arc(net.s, node[e], 1, e)
        if is_rest(g, v):
            net.arc(node[e], net.t, 1)
        else:
            for f in leaving.get(v, []):
                net.arc(node[e], node[f], 1, f)
    return net.cover()


def edge_pairs(paths: Iterable[Path], g: nx.MultiDiGraph) -> set[tuple[Edge, Edge]]:
    """The consecutive edge pairs (through non-rest states) that ``paths`` take."""
    return {
        (a, b) for p in paths for a, b in itertools.pairwise(p) if not is_rest(g, a[1])
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
