"""Static analyses of the model: structure, guard partitions, and the seed's rules
checked over every check-in path.

Theory of operation
-------------------
The table is data, so it can be checked before anything runs. Three kinds of checks:

* structure (abstract graph): every state reachable, no dead end, no row that can
  never fire, every check-in can end (a rest state is reachable from everywhere);
* guards: for every ``(state, event)`` the guards of its rows partition the contexts
  -- exactly one row fires in every situation, so the model is deterministic given
  the environment;
* the seed's rules over EVERY check-in path of a concrete configuration. The rules
  are stated here as properties of a path, independently of how the table is written:
  they are the second opinion that catches a wrong row. They read rows only through
  their requirement ids, states and entry actions.

Every function returns a list of human-readable problems; empty means clean.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import networkx as nx

from .graph import Path, Topology, abstract_graph, checkin_paths, concrete_graph, row_of
from .interpretations import Interpretation
from .protocol import (
    ENTRY,
    INITIAL,
    REST_STATES,
    SESSION_PENDING,
    STEP,
    Action,
    Context,
    Event,
    Guard,
    Mode,
    Row,
    Source,
    State,
)

#: Events by which a session is given up (REQ-2): nothing may follow them on the
#: same manager within the check-in.
SESSION_FAILURES = frozenset({Event.SESSION_TIMEOUT, Event.CONNECT_FAILED})


def all_contexts() -> list[Context]:
    """Every combination of the data a guard may read."""
    return [
        Context(index_changed=c, source=s, mode=m, has_next_manager=n)
        for c, s, m, n in itertools.product(
            (False, True), Source, Mode, (False, True)
        )
    ]


def check_guard_partition(rows: Iterable[Row]) -> list[str]:
    """For each (state, event), exactly one row fires in every context."""
    groups: dict[tuple[State, Event], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.source, r.event), []).append(r)
    problems = []
    for (s, e), group in groups.items():
        for ctx in all_contexts():
            firing = [
                r for r in group if r.guard is None or _holds(r.guard, ctx)
            ]
            if len(firing) != 1:
                names = ", ".join(r.name for r in firing) or "none"
                problems.append(
                    f"{s.value} + {e.value}: {len(firing)} rows fire in {ctx} ({names})"
                )
                break
    return problems


def _holds(guard: Guard, ctx: Context) -> bool:
    from .protocol import GUARDS

    return GUARDS[guard].holds(guard, ctx)


@dataclass
class Structure:
    """What the structural analysis found on the abstract graph."""

    reachable: list[str]
    unreachable_states: list[str]
    dead_ends: list[str]
    unreachable_rows: list[str]
    no_way_back: list[str]
    problems: list[str] = field(default_factory=list)


def structure(rows: Sequence[Row]) -> Structure:
    """Reachability, dead ends and rows that can never fire."""
    g = abstract_graph(rows)
    reach = nx.descendants(g, INITIAL.value) | {INITIAL.value}
    unreachable = sorted(set(g) - reach)
    dead = sorted(n for n in reach if g.out_degree(n) == 0)
    rows_dead = sorted(r.name for r in rows if r.source.value not in reach)
    rest = {s.value for s in REST_STATES}
    no_way_back = sorted(
        n for n in reach if n not in rest and not (nx.descendants(g, n) & rest)
    )
    st = Structure(sorted(reach), unreachable, dead, rows_dead, no_way_back)
    st.problems = (
        [f"state {s} is unreachable from {INITIAL.value}" for s in unreachable]
        + [f"state {s} is a dead end (no way out)" for s in dead]
        + [f"row {r} can never fire (source unreachable)" for r in rows_dead]
        + [f"from {s} no check-in can end (no rest state reachable)" for s in no_way_back]
    )
    return st


# --- the seed's rules as properties of one check-in path -------------------------


def _states(g: nx.MultiDiGraph, path: Path) -> list[State]:
    return [g.nodes[path[0][0]]["state"], *(g.nodes[e[1]]["state"] for e in path)]


def rule_step_order(g: nx.MultiDiGraph, path: Path, topo: Topology) -> str | None:
    """Steps 2-7 happen in the seed's order; only failover starts step 2 again."""
    last = 0
    for e in path:
        r = row_of(g, e)
        step = STEP[r.dest]
        if r.dest in REST_STATES:
            continue
        if step < last and r.requirement != "REQ-2-FAILOVER":
            return f"step {step} ({r.dest.value}) after step {last} via {r.name}"
        last = step
    return None


def rule_nothing_after_session_failure(
    g: nx.MultiDiGraph, path: Path, topo: Topology
) -> str | None:
    """REQ-2-TIMEOUT-30000: after a failed session, no request to that manager in the
    same check-in (the check-in ends, or fails over to ANOTHER manager)."""
    failed: set[int] = set()
    for e in path:
        r = row_of(g, e)
        manager = g.nodes[e[0]]["manager"]
        if manager in failed:
            return f"{r.name} on manager m{manager + 1} after its session failed"
        if r.event in SESSION_FAILURES and r.source in SESSION_PENDING:
            failed.add(manager)
    return None


def rule_urls_after_allowed_change(
    g: nx.MultiDiGraph, path: Path, topo: Topology
) -> str | None:
    """REQ-3/REQ-4: URLs are requested only after a changed index the policy allows,
    and content is downloaded only after the URLs were received."""
    allowed = got_urls = False
    for e in path:
        r = row_of(g, e)
        action = ENTRY[r.dest]
        if r.source is State.FETCHING_INDEX and r.event is Event.INDEX_RECEIVED:
            allowed = r.guard is Guard.DOWNLOAD_ALLOWED
        if action is Action.GET_URLS and not allowed:
            return f"{r.name} requests URLs without an allowed index change"
        if r.event is Event.URLS_RECEIVED:
            got_urls = True
        if action in (Action.DOWNLOAD_MANAGER, Action.DOWNLOAD_GUP) and not got_urls:
            return f"{r.name} downloads before the URLs were received"
    return None


def rule_download_port(g: nx.MultiDiGraph, path: Path, topo: Topology) -> str | None:
    """REQ-4-PORT-8014/2967: a GUP download only when the policy names the GUP; a
    manager download only when it names the manager, or as documented GUP fallback."""
    source: Guard | None = None
    for e in path:
        r = row_of(g, e)
        if r.guard in (Guard.SOURCE_MANAGER, Guard.SOURCE_GUP):
            source = r.guard
        action = ENTRY[r.dest]
        if action is Action.DOWNLOAD_GUP and source is not Guard.SOURCE_GUP:
            return f"{r.name} downloads from the GUP (2967) but the source is {source}"
        if (
            action is Action.DOWNLOAD_MANAGER
            and source is not Guard.SOURCE_MANAGER
            and r.requirement != "REQ-4-GUP-FALLBACK"
        ):
            return f"{r.name} downloads from the manager (8014) but the source is {source}"
    return None


def rule_logs_before_sensors(
    g: nx.MultiDiGraph, path: Path, topo: Topology
) -> str | None:
    """REQ-5/REQ-6: LAN sensors and learned applications only after the logs."""
    logs_done = False
    for e in path:
        r = row_of(g, e)
        if r.source is State.UPLOADING_LOGS and r.event is Event.LOGS_ACKED:
            logs_done = True
        if ENTRY[r.dest] is Action.UPLOAD_SENSORS and not logs_done:
            return f"{r.name} uploads sensors before the logs were acknowledged"
    return None


def rule_mode_ending(g: nx.MultiDiGraph, path: Path, topo: Topology) -> str | None:
    """REQ-7: a completed check-in ends disconnected in pull mode, held in push mode."""
    last = row_of(g, path[-1])
    if last.event is not Event.SENSORS_ACKED:
        return None
    want = State.PUSH_HELD if topo.mode is Mode.PUSH else State.IDLE
    if last.dest is not want:
        return f"{topo.mode.value} check-in ends in {last.dest.value}, not {want.value}"
    return None


RULES = (
    rule_step_order,
    rule_nothing_after_session_failure,
    rule_urls_after_allowed_change,
    rule_download_port,
    rule_logs_before_sensors,
    rule_mode_ending,
)


def check_paths(
    interp: Interpretation, topo: Topology, rows: Sequence[Row] | None = None
) -> tuple[int, list[str]]:
    """Check every rule on every check-in path; return (paths checked, problems)."""
    g = concrete_graph(interp, topo, rows)
    inner = g.subgraph(n for n in g if g.nodes[n]["state"] not in REST_STATES)
    if not nx.is_directed_acyclic_graph(inner):
        # A cycle through non-rest states is a check-in that need never end; the
        # path rules are meaningless then (and the paths infinite).
        cycle = " -> ".join(u for u, *_ in nx.find_cycle(inner))
        return 0, [f"rule_checkin_ends: check-in can loop forever: {cycle}"]
    problems: list[str] = []
    n = 0
    for path in checkin_paths(g):
        n += 1
        for rule in RULES:
            msg = rule(g, path, topo)
            if msg:
                problems.append(f"{rule.__name__}: {msg}")
    return n, problems


def check_all(interp: Interpretation, rows: Sequence[Row] | None = None) -> list[str]:
    """Every analysis on the table and on a set of small configurations."""
    table = tuple(interp.rows() if rows is None else rows)
    problems = check_guard_partition(table) + structure(table).problems
    for topo in small_topologies():
        _, found = check_paths(interp, topo, table)
        problems += [f"{topo_label(topo)}: {p}" for p in found]
    return problems


def small_topologies() -> list[Topology]:
    """The configurations the analyses and pinned counts use."""
    return [
        Topology(managers=n, priorities=p, gup=gup, mode=mode)
        for n, p in ((1, 1), (2, 1), (3, 2))
        for gup in (False, True)
        for mode in Mode
    ]


def topo_label(topo: Topology) -> str:
    gup = "gup" if topo.gup else "no-gup"
    return f"{topo.managers}m/{topo.priorities}p/{gup}/{topo.mode.value}"
