"""The statechart view of the table: superstates derived from the rows, and the edges
that leave a superstate standing for one row per child.

Harel's statecharts draw "every state of this group does X on E" once, from a box
around the group. The table says the same thing row by row: under the seed's reading
CONNECTING and FETCHING_INDEX both go to IDLE on SESSION_TIMEOUT and on
CONNECT_FAILED (REQ-2-TIMEOUT-30000), and four post-session states go to IDLE on
REQUEST_FAILED (REQ-X-ABORT). Nothing here is drawn by hand:

* A *signature* is what a row does apart from where it starts: ``(event, guard,
  dest, requirement)``. The states that share a signature are a candidate group.
* Groups are kept greedily, the one that saves most edges first (ties: table order),
  as long as every kept group is nested in or disjoint from every other (a statechart
  is a tree). A group of one state saves nothing and is never kept.
* Each signature is then drawn from the largest kept groups inside its set of
  sources, and from the states left over one by one; edges between the same two
  ends with the same guard and requirement are one edge listing its events.

The only data is the words: each superstate is named after the smallest phase of
:data:`PHASES` that holds it (``steps a-b`` when none does). :func:`expand` turns the
view back into rows; a test proves it gives back the table exactly, which is what
"the statechart view has the same behaviour as the full one" means.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from .interpretations import Interpretation
from .protocol import SESSION_PENDING, STEP, Event, Guard, Row, State

__all__ = ["PHASES", "ChartEdge", "Statechart", "Superstate", "expand", "statechart"]

#: Phases of a check-in that name the superstates: name -> (states, words). A derived
#: superstate takes the name of the smallest phase holding all its states.
PHASES: Final[dict[str, tuple[frozenset[State], str]]] = {
    "SESSION_PENDING": (SESSION_PENDING, "session pending: the 30,000 ms limit runs"),
    "SESSION_UP": (frozenset({State.FETCHING_URLS, State.DOWNLOADING_MANAGER,
                              State.DOWNLOADING_GUP, State.UPLOADING_LOGS,
                              State.UPLOADING_SENSORS}),
                   "session up: a failed request ends the check-in"),
}

_Signature = tuple[Event, Guard | None, State, str]


@dataclass(frozen=True)
class Superstate:
    """A box around states that share some of their exits."""

    name: str
    #: What the box means, in words (drawn as its title).
    text: str
    #: Its states, in the order of :class:`~sephb.model.protocol.State`.
    states: tuple[State, ...]


@dataclass(frozen=True)
class ChartEdge:
    """One drawn edge: from a state or a superstate, on any of its events."""

    #: A state's value or a superstate's name.
    source: str
    events: tuple[Event, ...]
    guard: Guard | None
    dest: State
    requirement: str
    #: The rows it stands for (``Row.name``), in table order.
    rows: tuple[str, ...]

    @property
    def name(self) -> str:
        """Like ``Row.name`` (the same for an edge that is one row): the key of the
        edge in drawings and coverage."""
        g = f"[{self.guard.value}]" if self.guard else ""
        events = "|".join(e.value for e in self.events)
        return f"{self.source}--{events}{g}-->{self.dest.value}"


@dataclass(frozen=True)
class Statechart:
    """The view of one interpretation: its superstates (outermost first) and edges
    (in the order of their first row in the table)."""

    superstates: tuple[Superstate, ...]
    edges: tuple[ChartEdge, ...]

    def parent(self, state: State) -> Superstate | None:
        """The innermost superstate holding ``state``, if any."""
        holding = [s for s in self.superstates if state in s.states]
        return min(holding, key=lambda s: len(s.states)) if holding else None

    def members(self, source: str) -> tuple[State, ...]:
        """The states an edge's source stands for."""
        for s in self.superstates:
            if s.name == source:
                return s.states
        return (State(source),)


def _signature(r: Row) -> _Signature:
    return (r.event, r.guard, r.dest, r.requirement)


def _laminar(groups: dict[frozenset[State], list[_Signature]],
             order: dict[frozenset[State], int]) -> list[frozenset[State]]:
    """The groups kept: most edges saved first, each nested in or disjoint from those
    kept before it."""
    kept: list[frozenset[State]] = []
    ranked = sorted((g for g in groups if len(g) > 1),
                    key=lambda g: (-(len(g) - 1) * len(groups[g]), order[g]))
    for g in ranked:
        if all(g <= k or k <= g or not g & k for k in kept):
            kept.append(g)
    return kept


def _name(states: frozenset[State], taken: set[str]) -> tuple[str, str]:
    holding = sorted((len(s), name, text) for name, (s, text) in PHASES.items()
                     if states <= s)
    steps = sorted(STEP[s] for s in states)
    span = f"steps {steps[0]}-{steps[-1]}" if steps[0] != steps[-1] else f"step {steps[0]}"
    name, text = (holding[0][1], holding[0][2]) if holding else (
        "STEPS_" + span.split(" ", 1)[1].replace("-", "_"), span)
    base, n = name, 2
    while name in taken:  # two groups in one phase: SESSION_UP, SESSION_UP_2
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name, text


def statechart(interp: Interpretation) -> Statechart:
    """The statechart view of ``interp``'s rows (see the module's docstring)."""
    rows = interp.rows()
    by_sig: dict[_Signature, list[Row]] = {}
    for r in rows:
        by_sig.setdefault(_signature(r), []).append(r)
    groups: dict[frozenset[State], list[_Signature]] = {}
    order: dict[frozenset[State], int] = {}
    for i, (sig, rs) in enumerate(by_sig.items()):
        key = frozenset(r.source for r in rs)
        groups.setdefault(key, []).append(sig)
        order.setdefault(key, i)
    kept = _laminar(groups, order)
    taken: set[str] = set()
    supers: dict[frozenset[State], Superstate] = {}
    for g in sorted(kept, key=lambda g: (-len(g), order[g])):
        name, text = _name(g, taken)
        supers[g] = Superstate(name, text, tuple(s for s in State if s in g))

    # Each signature from the largest kept groups inside its sources, then from the
    # states left over; edges that differ only in their event become one.
    merged: dict[tuple[str, Guard | None, State, str], list[Row]] = {}
    for sig, rs in by_sig.items():
        left = {r.source for r in rs}
        for g in sorted(kept, key=len, reverse=True):
            if g <= left:
                left -= g
                merged.setdefault((supers[g].name, *sig[1:]), []).extend(
                    r for r in rs if r.source in g)
        for r in rs:
            if r.source in left:
                merged.setdefault((r.source.value, *sig[1:]), []).append(r)
    position = {r.name: i for i, r in enumerate(rows)}
    edges = []
    for (source, guard, dest, req), rs in merged.items():
        rs = sorted(rs, key=lambda r: position[r.name])
        events = tuple(dict.fromkeys(r.event for r in rs))
        edges.append(ChartEdge(source, events, guard, dest, req,
                               tuple(r.name for r in rs)))
    edges.sort(key=lambda e: position[e.rows[0]])
    return Statechart(tuple(supers[g] for g in supers), tuple(edges))


def expand(chart: Statechart, edges: Iterable[ChartEdge] | None = None
           ) -> Sequence[tuple[State, Event, Guard | None, State, str]]:
    """The rows a view stands for, as ``(source, event, guard, dest, requirement)``
    (every member of a superstate, on every event of its edge)."""
    return [(s, ev, e.guard, e.dest, e.requirement)
            for e in (chart.edges if edges is None else edges)
            for s in chart.members(e.source) for ev in e.events]
