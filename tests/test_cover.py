"""Covering paths: the fast minimum-flow solver against the network-simplex reference,
on random DAGs and on the real concrete graphs of both interpretations."""

from __future__ import annotations

import itertools
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sephb.model import graph as G
from sephb.model.interpretations import INTERPRETATIONS, get
from sephb.model.protocol import Mode

Problem = tuple[nx.DiGraph, int, int, set[tuple[Any, Any]]]


@st.composite
def flow_problems(draw: st.DrawFn) -> Problem:
    """A random DAG on 0..n+1 (arcs only go up, so no cycle), source 0, sink n+1,
    and a random set of required arcs among those on some source->sink path."""
    n = draw(st.integers(0, 9))
    s, t = 0, n + 1
    # No direct source->sink arc: the reference drops such paths when it splits flow.
    candidates = [
        (i, j) for i, j in itertools.combinations(range(n + 2), 2) if (i, j) != (s, t)
    ]
    arcs = draw(st.lists(st.sampled_from(candidates), unique=True)) if candidates else []
    dag = nx.DiGraph()
    dag.add_nodes_from(range(n + 2))
    dag.add_edges_from(arcs)
    on_path = sorted(
        (u, v) for u, v in arcs if nx.has_path(dag, s, u) and nx.has_path(dag, v, t)
    )
    must = draw(st.sets(st.sampled_from(on_path))) if on_path else set()
    return dag, s, t, must


@settings(max_examples=300, deadline=None)
@given(flow_problems())
def test_fast_min_flow_matches_network_simplex(problem: Problem) -> None:
    dag, s, t, must = problem
    paths = G._min_flow_paths(dag, s, t, must)
    assert len(paths) == len(G._min_flow_paths_simplex(dag, s, t, must))
    taken = set()
    for p in paths:
        assert p[0] == s and p[-1] == t
        for u, v in itertools.pairwise(p):
            assert dag.has_edge(u, v)
            taken.add((u, v))
    assert must <= taken
    assert G._min_flow_paths(dag, s, t, must) == paths  # deterministic


def test_min_flow_rejects_a_required_arc_on_no_path() -> None:
    dag = nx.DiGraph([("s", "a"), ("a", "t"), ("b", "a")])
    with pytest.raises(ValueError, match="no s-t path"):
        G._min_flow_paths(dag, "s", "t", {("b", "a")})


def test_min_flow_rejects_a_cycle() -> None:
    dag = nx.DiGraph([("s", "a"), ("a", "b"), ("b", "a"), ("b", "t")])
    with pytest.raises(ValueError, match="cycle"):
        G._min_flow_paths(dag, "s", "t", {("a", "b")})


def test_min_flow_long_chain_needs_no_recursion() -> None:
    # Check-in paths of big topologies are thousands of steps long.
    n = 5000
    dag = nx.DiGraph(itertools.pairwise(range(n)))
    dag.add_edges_from((i, n - 1) for i in range(0, n - 1, 7))
    paths = G._min_flow_paths(dag, 0, n - 1, set(dag.edges()))
    assert len(paths) == len(range(0, n - 1, 7))


# The reference networks are the formulation the covering functions used before the
# fast solver (and that network simplex solved), kept here verbatim as the oracle.
_SRC, _SNK = ("__source__",), ("__sink__",)


def _reference_transitions(g: nx.MultiDiGraph) -> int:
    dag = nx.DiGraph()
    must: set[tuple[Any, Any]] = set()
    for u, v, k in g.edges(keys=True):
        a = ("out", u) if G.is_rest(g, u) else ("mid", u)
        b = ("in", v) if G.is_rest(g, v) else ("mid", v)
        e = ("edge", u, v, k)
        dag.add_edge(a, e)
        dag.add_edge(e, b)
        must.add((a, e))
    for n in g:
        if G.is_rest(g, n):
            dag.add_edge(_SRC, ("out", n))
            dag.add_edge(("in", n), _SNK)
    return len(G._min_flow_paths_simplex(dag, _SRC, _SNK, must))


def _reference_edge_pairs(g: nx.MultiDiGraph) -> int:
    dag = nx.DiGraph()
    must: set[tuple[Any, Any]] = set()
    for u, v, k in g.edges(keys=True):
        e = ("edge", u, v, k)
        dag.add_node(e)
        if G.is_rest(g, u):
            dag.add_edge(_SRC, e)
            must.add((_SRC, e))
        if G.is_rest(g, v):
            dag.add_edge(e, _SNK)
            must.add((e, _SNK))
        else:
            for _, w, k2 in g.out_edges(v, keys=True):
                f = ("edge", v, w, k2)
                dag.add_edge(e, f)
                must.add((e, f))
    return len(G._min_flow_paths_simplex(dag, _SRC, _SNK, must))


def _assert_checkin_path(g: nx.MultiDiGraph, p: G.Path) -> None:
    """Starts at a rest state, chains real edges, stops at the first rest state."""
    assert p, "empty path"
    assert G.is_rest(g, p[0][0])
    for e in p:
        assert g.has_edge(*e), e
    for a, b in itertools.pairwise(p):
        assert a[1] == b[0]
        assert not G.is_rest(g, a[1]), f"path goes on past rest state {a[1]}"
    assert G.is_rest(g, p[-1][1])


TOPOLOGIES = [
    G.Topology(managers=m, priorities=p, gup=gup, mode=mode)
    for m in range(1, 5)
    for p in range(1, m + 1)
    for gup in (False, True)
    for mode in Mode
] + [G.Topology(managers=12, priorities=3, gup=True, mode=Mode.PUSH)]


def _label(topo: G.Topology) -> str:
    gup = "gup" if topo.gup else "no-gup"
    return f"{topo.managers}m/{topo.priorities}p/{gup}/{topo.mode.value}"


@pytest.mark.parametrize("interp", sorted(INTERPRETATIONS))
@pytest.mark.parametrize("topo", TOPOLOGIES, ids=_label)
def test_cover_transitions_on_concrete_graphs(interp: str, topo: G.Topology) -> None:
    g = G.concrete_graph(get(interp), topo)
    paths = G.cover_transitions(g)
    for p in paths:
        _assert_checkin_path(g, p)
    assert {e for p in paths for e in p} == set(g.edges(keys=True))
    assert len(paths) == _reference_transitions(g)
    assert G.cover_transitions(g) == paths


@pytest.mark.parametrize("interp", sorted(INTERPRETATIONS))
@pytest.mark.parametrize("topo", TOPOLOGIES, ids=_label)
def test_cover_edge_pairs_on_concrete_graphs(interp: str, topo: G.Topology) -> None:
    g = G.concrete_graph(get(interp), topo)
    paths = G.cover_edge_pairs(g)
    for p in paths:
        _assert_checkin_path(g, p)
    assert G.edge_pairs(paths, g) == G.all_edge_pairs(g)
    assert {e for p in paths for e in p} == set(g.edges(keys=True))
    assert len(paths) == _reference_edge_pairs(g)
    assert G.cover_edge_pairs(g) == paths
