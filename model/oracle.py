"""The reference trace checker: the ``transitions`` machine decides every move.

Theory of operation
-------------------
This is the slow, obviously-right counterpart of :mod:`sephb.model.checker`, with the
same API and the same verdicts; the tests compare the two on generated traces, and
the conformance suite may use either. Nothing here is compiled or encoded: a branch
of the run is a state and the rows that led to it, and every move is found by firing
the event on a machine built by :func:`sephb.model.machine.build` -- set to the
branch's state, given one :class:`~sephb.model.protocol.Context` at a time -- and
reading the row its recorder appended. Each context consistent with the observation's
fields and the configured mode is tried (what is unknown takes every value), so a
guard "may hold" exactly when the machine fires under some consistent context.

An Action observation keeps the branches whose state's entry action it is. Hidden
events (what the recorder cannot see) are fired on every branch, level by level,
before each observation. Which of several branches reaching the same state is kept,
and so which requirement and path a violation names, follows the rules spelled out
in :mod:`sephb.model.checker` (first row in table order; breadth first for hidden
events).

It costs a few machine triggers per context per branch per observation: fine for a
test or a short trace, and the baseline the compiled checker is measured against
(``tests/benchmarks/bench_checker.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Final

from .checker import INITIAL_REQUIREMENT, StreamRecord, Violation, sort_allowed
from .errors import ProtocolError
from .interpretations import Interpretation, get
from .machine import HeartbeatModel, build
from .protocol import ENTRY, INITIAL, Action, Context, Event, Mode, Row, Source, State

__all__ = ["Checker", "check_stream"]

_ACTIONS: Final = {a.value: a for a in Action}
_EVENTS: Final = {e.value: e for e in Event}

#: A branch's run, newest row first, sharing prefixes with its siblings.
_Run = tuple[Row, "_Run"] | None


class Checker:
    """Checks one client's trace by running the ``transitions`` machine on every
    consistent branch. Same API and verdicts as :class:`sephb.model.checker.Checker`.
    """

    def __init__(
        self,
        interp: Interpretation | str = "seed",
        *,
        mode: Mode | None = None,
        hidden: frozenset[Event] = frozenset(),
    ) -> None:
        self.interpretation = get(interp) if isinstance(interp, str) else interp
        self.mode = mode
        self.hidden = frozenset(hidden)
        self._order = {r: i for i, r in enumerate(self.interpretation.rows())}
        # One machine does the firing for every branch: it is set to the branch's
        # state before each trigger, so it never carries anything between them.
        self._machine: HeartbeatModel = build(self.interpretation)
        # What the machine can trigger from each state (asked once, of the machine):
        # a trigger it lacks cannot fire in any context, so it is not tried 24 times.
        machine = self._machine.machine  # type: ignore[attr-defined]
        self._triggers = {s: frozenset(machine.get_triggers(s.value)) for s in State}
        self.reset()

    def reset(self) -> None:
        """Back to the initial state, forgetting the trace (and any violation)."""
        #: The consistent branches: state -> its run.
        self._branches: dict[State, _Run] = {INITIAL: None}
        #: The states the last observation named (before the hidden closure).
        self._entered: frozenset[State] = frozenset({INITIAL})
        self._count = 0
        self._violation: Violation | None = None
        self._close()

    @property
    def states(self) -> frozenset[State]:
        """The states consistent with the trace so far; empty after a violation."""
        return frozenset(self._branches)

    @property
    def violation(self) -> Violation | None:
        return self._violation

    @property
    def count(self) -> int:
        """Observations accepted so far."""
        return self._count

    def feed(
        self,
        name: str,
        t: int,
        changed: bool | None = None,
        source: str | Source | None = None,
    ) -> Violation | None:
        """Check the next observation; the violation it causes (or the earlier one)."""
        if self._violation is not None:
            return self._violation
        if name not in _ACTIONS and name not in _EVENTS:
            raise ValueError(f"unknown observation {name!r}: expected a model Action "
                             f"or Event name")
        contexts = self._contexts(changed, _source(source))
        if name in _ACTIONS:
            action = _ACTIONS[name]
            branches = {s: r for s, r in self._branches.items() if ENTRY[s] is action}
        else:
            branches = self._fire_all(self._branches, [_EVENTS[name]], contexts,
                                      keep_known=False)
        if not branches:
            self._violation = self._explain(name, t)
            self._branches, self._entered = {}, frozenset()
            return self._violation
        self._branches, self._entered = branches, frozenset(branches)
        self._count += 1
        self._close()
        return None

    # --- internals ---------------------------------------------------------------

    def _contexts(self, changed: bool | None, source: Source | None) -> list[Context]:
        if changed not in (None, False, True):
            raise ValueError(f"bad changed={changed!r}")
        return [
            Context(index_changed=c, source=s, mode=m, has_next_manager=n)
            for c, s, m, n in itertools.product(
                (False, True) if changed is None else (changed,),
                list(Source) if source is None else [source],
                list(Mode) if self.mode is None else [self.mode],
                (False, True),
            )
        ]

    def _fire(self, state: State, event: Event, ctx: Context) -> Row | None:
        """The row the machine takes from ``state`` on ``event`` in ``ctx``, if any."""
        if event.value not in self._triggers[state]:
            return None
        m = self._machine
        m.machine.set_state(state.value)  # type: ignore[attr-defined]
        m.path.clear()
        m.ctx = ctx
        try:
            m.fire(event)
        except ProtocolError:
            return None
        return m.path[-1]

    def _fire_all(
        self,
        sources: Mapping[State, _Run],
        events: Iterable[Event],
        contexts: list[Context],
        *,
        keep_known: bool,
    ) -> dict[State, _Run]:
        """Branches reached by one of ``events`` from ``sources``; for each state the
        first row in table order. ``keep_known``: skip states already branched."""
        best: dict[State, Row] = {}
        for state in sources:
            for event in events:
                for ctx in contexts:
                    row = self._fire(state, event, ctx)
                    if row is None or (keep_known and row.dest in self._branches):
                        continue
                    old = best.get(row.dest)
                    if old is None or self._order[row] < self._order[old]:
                        best[row.dest] = row
        return {d: (row, sources[row.source]) for d, row in best.items()}

    def _close(self) -> None:
        """Add the branches reachable by hidden events, breadth first."""
        if not self.hidden:
            return
        config_only = self._contexts(None, None)
        hidden = [e for e in Event if e in self.hidden]
        level = dict(self._branches)
        while level:
            level = self._fire_all(level, hidden, config_only, keep_known=True)
            self._branches.update(level)

    def _explain(self, name: str, t: int) -> Violation:
        def entry(state: State) -> int:
            run = self._branches[state]
            return -1 if run is None else self._order[run[0]]

        first = min(self._entered, key=entry)
        run = self._branches[first]
        requirement = INITIAL_REQUIREMENT if run is None else run[0].requirement
        path: list[str] = []
        while run is not None:
            path.append(run[0].name)
            run = run[1]
        return Violation.make(
            requirement, self._count, t, name, self._allowed(), tuple(reversed(path)),
            self.states,
        )

    def _allowed(self) -> tuple[str, ...]:
        names = {ENTRY[s].value for s in self._branches}
        anything = self._contexts(None, None)
        for event in Event:
            if event not in self.hidden and any(
                self._fire(s, event, ctx) for s in self._branches for ctx in anything
            ):
                names.add(event.value)
        return sort_allowed(names)


def _source(source: str | Source | None) -> Source | None:
    if source is None or isinstance(source, Source):
        return source
    try:
        return Source(source)
    except ValueError:
        raise ValueError(f"bad source={source!r}") from None


def check_stream(
    records: Iterable[StreamRecord],
    interp: Interpretation | str = "seed",
    *,
    mode: Mode | None = None,
    modes: Mapping[str, Mode | None] | None = None,
    hidden: frozenset[Event] = frozenset(),
) -> dict[str, Violation | None]:
    """Each client's first violation (or None), one :class:`Checker` per client."""
    checkers: dict[str, Checker] = {}
    for client, name, t, changed, source in records:
        c = checkers.get(client)
        if c is None:
            m = (modes or {}).get(client, mode)
            c = checkers[client] = Checker(interp, mode=m, hidden=hidden)
        c.feed(name, t, changed, source)
    return {client: c.violation for client, c in checkers.items()}
