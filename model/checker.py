"""The trace checker, compiled from the transition table into lookup tables.

Theory of operation
-------------------
A trace of one client is a sequence of observations ``(name, t, fields)``. An
*Event* name says something happened to the client: the table moves it. An *Action*
name says the client did something: it must be in a state whose entry action
(:data:`~sephb.model.protocol.ENTRY`) is that action; nothing moves. The model is
nondeterministic wherever the trace does not say enough (a guard whose inputs are not
recorded, a mode that is not configured, an event the recorder cannot see), so the
checker tracks the *set* of states consistent with the trace so far, the way a
regular-expression engine runs an NFA by the subset construction. An empty set is a
violation.

Nine states make a set fit in a 9-bit int, and there are only 512 such sets. So
everything that does not depend on the trace is computed once, per table and per set
of hidden events (:func:`compile_tables`; :func:`tables_for` caches it by
interpretation):

* Observations are integer *columns*. The fields that may resolve a guard
  (``changed`` in {unknown, false, true} x ``source`` in {unknown, manager, gup,
  none}) make 12 *cases* per name; (name, case) pairs that admit the same rows from
  every state, under every mode, share one column (27 columns for either
  interpretation: one per name, three for INDEX_RECEIVED, four for URLS_RECEIVED).
  Each column's rows are found by evaluating :data:`~sephb.model.protocol.GUARDS`
  over every :class:`~sephb.model.protocol.Context` consistent with the case and the
  configured mode (``has_next_manager`` is never recorded, so always unknown): a
  guard may hold when some consistent context makes it hold. No guard is re-read by
  hand. An unconfigured mode is unknown per observation, not per client, so both
  endings of step 7 pass in different check-ins (a policy may change the mode).
* The transition function ``next[mode][set][column]`` is computed for every one of
  the 3 mode configurations (unknown, pull, push) x 512 sets x every column, already
  closed under the hidden events (what a server-side recorder cannot see: an epsilon
  closure with runtime guards unknown and config guards from the mode). Both the
  step and the closure distribute over union, so the work is 9 single-state rows per
  column and one OR per (set, column): about 40,000 entries in some 50 ms.
* It is stored as a graph of *nodes*: node ``mode * 512 + set`` is a list whose
  entry ``column`` is the next node itself (None for the empty set) and whose last
  entry is its own number. A client's whole state is one node, and feeding an
  observation is a dict lookup for the name's columns and one list indexing, with no
  arithmetic and no allocation: ``node = node[col]``.

A violation is rare, so the explanation (which requirement, which path) is not kept
on the fast path: the checker keeps the columns it accepted (one byte each) and
re-runs them with a per-state record of the row by which each state was entered
(:meth:`Tables.explain`). The rules that make the explanation well defined, shared
with the reference :mod:`sephb.model.oracle`:

* after an event, each new state keeps the first row in table order that reaches it;
* the hidden closure adds states level by level (breadth first); a state reached
  first at one level keeps the first row in table order from that level's states;
* an action keeps the states whose entry action it is, with their rows;
* the requirement of a violation is that of the first row in table order among the
  rows by which the states named by the last observation (before the closure) were
  entered: what the client should have been doing. The initial state counts as
  entered by :data:`INITIAL_REQUIREMENT`. The path is that state's run.

After a violation a :class:`Checker` is sticky, like h11's ``ERROR`` state: every
later :meth:`Checker.feed` returns the same :class:`Violation` without work until
:meth:`Checker.reset`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from .interpretations import Interpretation, get
from .protocol import (
    ENTRY,
    GUARDS,
    INITIAL,
    Action,
    Context,
    Event,
    Mode,
    Row,
    Source,
    State,
)

__all__ = [
    "INITIAL_REQUIREMENT",
    "NAMES",
    "Checker",
    "Tables",
    "Violation",
    "case_of",
    "check_stream",
    "compile_tables",
    "sort_allowed",
    "tables_for",
]

#: The requirement a client in its initial state is held to (the seed's step 1).
INITIAL_REQUIREMENT: Final = "REQ-1-PRIORITY"

#: Every observation name: Actions first, then Events, in declaration order. A name's
#: position is its observation code (:meth:`Checker.code`).
NAMES: Final[tuple[str, ...]] = (
    *(a.value for a in Action),
    *(e.value for e in Event),
)
_ACTIONS: Final = frozenset(a.value for a in Action)

STATES: Final[tuple[State, ...]] = tuple(State)
_BIT: Final[dict[State, int]] = {s: 1 << i for i, s in enumerate(STATES)}
_NMASKS: Final = 1 << len(STATES)

#: Mode configurations, by index: unknown, pull, push.
_MODES: Final[tuple[Mode | None, ...]] = (None, *Mode)
_MODE_INDEX: Final[dict[Mode | None, int]] = {m: i for i, m in enumerate(_MODES)}

# The field cases: case = changed * 4 + source (0 = unknown in both). These dicts are
# the fast path's decoders, premultiplied so that the case is one addition.
_CHANGED_VALUES: Final[tuple[bool | None, ...]] = (None, False, True)
_SOURCE_VALUES: Final[tuple[Source | None, ...]] = (None, *Source)
NCASE: Final = len(_CHANGED_VALUES) * len(_SOURCE_VALUES)
_CHANGED: Final[dict[bool | None, int]] = {
    v: i * len(_SOURCE_VALUES) for i, v in enumerate(_CHANGED_VALUES)
}
_SOURCE: Final[dict[str | Source | None, int]] = {
    **{s: i for i, s in enumerate(_SOURCE_VALUES)},
    **{s.value: i + 1 for i, s in enumerate(Source)},
}


def case_of(changed: bool | None, source: str | Source | None) -> int:
    """The field case of an observation's ``changed`` and ``source`` (0: both unknown).

    Raises :class:`ValueError` for a value that is neither unknown nor a valid one.
    """
    try:
        return _CHANGED[changed] + _SOURCE[source]
    except (KeyError, TypeError):
        raise ValueError(_bad_fields(changed, source)) from None


def _bad_fields(changed: object, source: object) -> str:
    if changed not in _CHANGED_VALUES:
        return f"bad changed={changed!r}: expected true, false or unknown (None)"
    sources = ", ".join(s.value for s in Source)
    return f"bad source={source!r}: expected one of {sources}, or unknown (None)"


def _bad_name(name: object) -> str:
    return (f"unknown observation {name!r}: expected a model Action or Event name "
            f"({', '.join(sorted(NAMES))})")


def sort_allowed(names: Iterable[str]) -> tuple[str, ...]:
    """Allowed names as reports list them: actions (what the client should do) first,
    then events, each alphabetically."""
    return tuple(sorted(names, key=lambda n: (n not in _ACTIONS, n)))


@dataclass(frozen=True)
class Violation:
    """The first observation of a client's trace that no consistent run allows."""

    #: The requirement the client broke: of the row by which it entered its state.
    requirement: str
    #: The observation's 0-based position among this client's observations.
    index: int
    #: Its model time in ms.
    t: int
    #: Its name (an Action or Event name).
    name: str
    #: The observable names the model allowed instead (see :func:`sort_allowed`).
    allowed: tuple[str, ...]
    #: Row names of one consistent run up to the violation (``Row.name``).
    path: tuple[str, ...]
    #: The states consistent with the trace before the observation.
    states: frozenset[State]
    #: One line for people.
    message: str

    @classmethod
    def make(
        cls,
        requirement: str,
        index: int,
        t: int,
        name: str,
        allowed: tuple[str, ...],
        path: tuple[str, ...],
        states: frozenset[State],
    ) -> Violation:
        """A violation with its message, e.g. ``event 7 (t=30012 ms) UPLOAD_SENSORS:
        the model allowed UPLOAD_LOGS, LOGS_ACKED, REQUEST_FAILED (REQ-5-LOGS) in
        UPLOADING_LOGS``."""
        where = "|".join(s.value for s in STATES if s in states)
        reason = (f"{name}: the model allowed {', '.join(allowed) or 'nothing'} "
                  f"({requirement}) in {where}")
        return cls(requirement, index, t, name, allowed, path, states,
                   f"event {index} (t={t} ms) {reason}")

    @property
    def reason(self) -> str:
        """The message without where it happened: ``UPLOAD_SENSORS: the model
        allowed ...``."""
        return self.message.split(" ms) ", 1)[1]

    def at(self, where: str) -> str:
        """The message with another name for the observation than the checker's
        own count, e.g. ``record 8 (t=30012 ms) UPLOAD_SENSORS: ...`` for a record's
        number in a trace that holds more than the checker was fed."""
        return f"{where} (t={self.t} ms) {self.reason}"


# --- compilation -------------------------------------------------------------------


def _contexts(mode: Mode | None, case: int) -> tuple[Context, ...]:
    """Every context consistent with a field case and a mode configuration; what is
    unknown (and ``has_next_manager``, never recorded) takes every value."""
    changed = _CHANGED_VALUES[case // len(_SOURCE_VALUES)]
    source = _SOURCE_VALUES[case % len(_SOURCE_VALUES)]
    return tuple(
        Context(index_changed=c, source=s, mode=m, has_next_manager=n)
        for c, s, m, n in itertools.product(
            (False, True) if changed is None else (changed,),
            tuple(Source) if source is None else (source,),
            tuple(Mode) if mode is None else (mode,),
            (False, True),
        )
    )


#: The entry row of a state at a checkpoint, before the re-run chooses one: larger
#: than any row index, so that a known row is always preferred.
_UNKNOWN: Final = 1 << 30

#: A path as a linked list of rows, newest first: sharing prefixes keeps a re-run
#: linear in the trace.
_Cons = tuple[Row, "_Cons"] | None
#: A node of the compiled automaton: ``ncol`` next nodes (None: empty set), then its
#: own number. A plain list, because indexing a list is the fastest step CPython has.
Node = list[Any]
#: A state's record during a re-run: (index of the row it was entered by, or -1 for
#: the initial state; its run).
_Rec = tuple[int, _Cons]


@dataclass(frozen=True, eq=False)
class Tables:
    """The checker compiled from one table and one set of hidden events."""

    rows: tuple[Row, ...]
    hidden: frozenset[Event]
    #: Number of distinct observation columns.
    ncol: int
    #: name -> its column for each of the :data:`NCASE` field cases.
    cols: dict[str, tuple[int, ...]]
    #: column -> observation name.
    col_name: tuple[str, ...]
    #: [mode][column][state index] -> indexes of the rows it admits (events only).
    col_rows: tuple[tuple[tuple[tuple[int, ...], ...], ...], ...]
    #: [mode][state index] -> indexes of hidden rows from it (config guards resolved).
    hidden_rows: tuple[tuple[tuple[int, ...], ...], ...]
    #: [observation code] -> its column for each field case (the fast path's input).
    by_code: tuple[tuple[int, ...], ...]
    #: The automaton: node ``mode * 512 + set``; see the module docstring.
    nodes: list[Node]
    #: [mode] -> the node of the initial (closed) set.
    start: tuple[Node, ...]

    def start_for(self, mode: Mode | None) -> Node:
        """The node of the initial (closed) set under a mode (None: unknown)."""
        return self.start[_MODE_INDEX[mode]]

    @staticmethod
    def decode(node: Node) -> tuple[int, int]:
        """(mode index, state mask) of a node."""
        number: int = node[-1]
        return divmod(number, _NMASKS)

    def allowed(self, node: Node) -> tuple[str, ...]:
        """Observable names some consistent state accepts, with any field values
        (case 0 is the union of the other cases)."""
        hidden = {e.value for e in self.hidden}
        return sort_allowed(
            n for n, cols in self.cols.items()
            if n not in hidden and node[cols[0]] is not None
        )

    def explain(
        self,
        node: Node,
        history: bytes,
        name: str,
        index: int,
        t: int,
        start: Node | None = None,
    ) -> Violation:
        """The violation of observation ``name`` in ``node``, reached by the accepted
        columns ``history``: re-run them with per-state entry records.

        ``history`` runs from the initial state, or from the checkpoint node
        ``start`` (a long trace keeps only its last columns). From a checkpoint the
        states' entry rows are unknown, but the first event observed after it
        chooses every row afresh (a row has one source and one destination, so the
        choice never depends on earlier rows or runs): when ``history`` holds an
        event, the requirement is exact and the path is the exact suffix of the
        whole run after the checkpoint.
        """
        mode, mask = self.decode(node)
        rows = self.rows
        if start is None:
            entered: dict[int, _Rec] = {STATES.index(INITIAL): (-1, None)}
        else:
            _, begin = self.decode(start)
            entered = {s: (_UNKNOWN, None) for s in range(len(STATES)) if begin >> s & 1}
        recs = self._close(mode, entered)
        for col in history:
            entered = self._observe(mode, recs, col)
            recs = self._close(mode, entered)
        # The re-run is a second derivation of the same sets: a mismatch is a bug here.
        assert sum(1 << s for s in recs) == mask, (recs, mask)
        first = min(entered, key=lambda s: entered[s][0])
        row_index, cons = entered[first]
        assert row_index != _UNKNOWN, "a checkpoint's history must hold an event"
        requirement = rows[row_index].requirement if row_index >= 0 else INITIAL_REQUIREMENT
        path: list[str] = []
        while cons is not None:
            path.append(cons[0].name)
            cons = cons[1]
        return Violation.make(
            requirement, index, t, name, self.allowed(node), tuple(reversed(path)),
            frozenset(STATES[s] for s in recs),
        )

    def run_of(self, node: Node, history: bytes) -> list[str]:
        """Row names of the run that reaches the first state of ``node`` by the
        accepted columns ``history`` (the re-run of :meth:`explain`)."""
        mode, _ = self.decode(node)
        recs = self._close(mode, {STATES.index(INITIAL): (-1, None)})
        for col in history:
            recs = self._close(mode, self._observe(mode, recs, col))
        _, cons = recs[min(recs)]
        path: list[str] = []
        while cons is not None:
            path.append(cons[0].name)
            cons = cons[1]
        return path[::-1]

    def _observe(self, mode: int, recs: dict[int, _Rec], col: int) -> dict[int, _Rec]:
        name = self.col_name[col]
        if name in _ACTIONS:
            return {s: r for s, r in recs.items() if ENTRY[STATES[s]].value == name}
        best: dict[int, tuple[int, int]] = {}  # dest -> (row index, source)
        per_state = self.col_rows[mode][col]
        for s in recs:
            for i in per_state[s]:
                d = STATES.index(self.rows[i].dest)
                if d not in best or i < best[d][0]:
                    best[d] = (i, s)
        return {d: (i, (self.rows[i], recs[s][1])) for d, (i, s) in best.items()}

    def _close(self, mode: int, entered: dict[int, _Rec]) -> dict[int, _Rec]:
        recs = dict(entered)
        level = list(entered)
        hidden_rows = self.hidden_rows[mode]
        while level:
            best: dict[int, tuple[int, int]] = {}
            for s in level:
                for i in hidden_rows[s]:
                    d = STATES.index(self.rows[i].dest)
                    if d not in recs and (d not in best or i < best[d][0]):
                        best[d] = (i, s)
            for d, (i, s) in best.items():
                recs[d] = (i, (self.rows[i], recs[s][1]))
            level = list(best)
        return recs


@cache
def compile_tables(rows: tuple[Row, ...], hidden: frozenset[Event] = frozenset()) -> Tables:
    """Compile ``rows`` (an interpretation's table) for traces that cannot see
    ``hidden``. Cached: every checker of the same table shares one compilation."""
    contexts = {(m, c): _contexts(m, c) for m in _MODES for c in range(NCASE)}
    holds: dict[tuple[Row, Mode | None, int], bool] = {}

    def admits(row: Row, mode: Mode | None, case: int) -> bool:
        g = row.guard
        if g is None:
            return True
        key = (row, mode, case)
        if key not in holds:
            holds[key] = any(GUARDS[g].holds(g, ctx) for ctx in contexts[mode, case])
        return holds[key]

    # Columns: (name, case) pairs that admit the same rows everywhere share one.
    by_key: dict[object, int] = {}
    col_name: list[str] = []
    col_rows: list[list[tuple[tuple[int, ...], ...]]] = [[] for _ in _MODES]
    cols: dict[str, tuple[int, ...]] = {}
    for name in NAMES:
        mine: list[int] = []
        for case in range(NCASE):
            per_mode = tuple(
                tuple(
                    tuple(
                        i for i, r in enumerate(rows)
                        if r.source is s and r.event.value == name and admits(r, m, case)
                    )
                    for s in STATES
                )
                for m in _MODES
            )
            key = (name, per_mode)
            if key not in by_key:
                by_key[key] = len(col_name)
                col_name.append(name)
                for mi, per_state in enumerate(per_mode):
                    col_rows[mi].append(per_state)
            mine.append(by_key[key])
        cols[name] = tuple(mine)
    ncol = len(col_name)
    # The explanation's history stores one column a byte.
    assert ncol <= 256, f"{ncol} observation columns do not fit a byte"

    # Next node numbers first; the nodes are linked to each other at the end.
    step = [0] * (len(_MODES) * _NMASKS * ncol)
    hidden_rows: list[tuple[tuple[int, ...], ...]] = []
    start: list[int] = []
    for mi, mode in enumerate(_MODES):
        # Hidden rows: runtime guards unknown (case 0), config guards from the mode.
        hid = tuple(
            tuple(i for i, r in enumerate(rows)
                  if r.source is s and r.event in hidden and admits(r, mode, 0))
            for s in STATES
        )
        hidden_rows.append(hid)
        succ = [sum({_BIT[rows[i].dest] for i in hid[k]}) for k in range(len(STATES))]
        closure = [0] * _NMASKS
        for mask in range(_NMASKS):
            c, grown = mask, True
            while grown:
                more = c
                for k in range(len(STATES)):
                    if c >> k & 1:
                        more |= succ[k]
                grown, c = more != c, more
            closure[mask] = c
        # One state's successors per column; a set's are their union, closed. Both
        # the step and the closure distribute over union, so 9 x ncol entries and a
        # walk over the masks by their lowest bit fill the whole table.
        single = [
            [
                sum({_BIT[rows[i].dest] for i in col_rows[mi][col][k]})
                if col_name[col] not in _ACTIONS
                else (_BIT[s] if ENTRY[s].value == col_name[col] else 0)
                for col in range(ncol)
            ]
            for k, s in enumerate(STATES)
        ]
        union = [[0] * ncol for _ in range(_NMASKS)]
        for mask in range(1, _NMASKS):
            low = (mask & -mask).bit_length() - 1
            rest, one = union[mask & (mask - 1)], single[low]
            union[mask] = [a | b for a, b in zip(rest, one, strict=True)]
        offset = mi * _NMASKS
        for mask in range(_NMASKS):
            at = (offset + mask) * ncol
            for col, out in enumerate(union[mask]):
                out = closure[out]
                step[at + col] = offset + out if out else -1
        start.append(offset + closure[_BIT[INITIAL]])

    nodes: list[Node] = [[None] * ncol + [n] for n in range(len(_MODES) * _NMASKS)]
    for n, node in enumerate(nodes):
        for col in range(ncol):
            nxt = step[n * ncol + col]
            node[col] = nodes[nxt] if nxt >= 0 else None

    return Tables(
        rows=rows,
        hidden=hidden,
        ncol=ncol,
        cols=cols,
        col_name=tuple(col_name),
        col_rows=tuple(tuple(c) for c in col_rows),
        hidden_rows=tuple(hidden_rows),
        by_code=tuple(cols[n] for n in NAMES),
        nodes=nodes,
        start=tuple(nodes[n] for n in start),
    )


_BY_SWITCHES: dict[tuple[object, ...], Tables] = {}


def tables_for(
    interp: Interpretation | str, hidden: frozenset[Event] = frozenset()
) -> Tables:
    """The compiled tables of an interpretation (by name or value).

    An interpretation's rows are a function of its switches, so the switches are the
    cache key: hashing them is cheap, hashing 30 rows (as :func:`compile_tables`'
    cache does) is not, and checkers are made once per client.
    """
    interp = get(interp) if isinstance(interp, str) else interp
    key = (*sorted((s.value, v) for s, v in interp.switches.items()), hidden)
    tables = _BY_SWITCHES.get(key)
    if tables is None:
        tables = _BY_SWITCHES[key] = compile_tables(interp.rows(), frozenset(hidden))
    return tables


# --- the checker -------------------------------------------------------------------


class Checker:
    """Checks one client's trace, observation by observation, against the table.

    >>> c = Checker("seed")
    >>> c.feed("HEARTBEAT_DUE", 0) is None and c.feed("CONNECT", 0) is None
    True
    >>> v = c.feed("GET_URLS", 5)
    >>> v.requirement, v.allowed[0], v.index
    ('REQ-1-PRIORITY', 'CONNECT', 2)
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
        self.tables = tables_for(self.interpretation, self.hidden)
        self.reset()

    def reset(self) -> None:
        """Back to the initial state, forgetting the trace (and any violation)."""
        self._node: Node | None = self.tables.start_for(self.mode)
        self._history = bytearray()
        self._violation: Violation | None = None

    @property
    def states(self) -> frozenset[State]:
        """The states consistent with the trace so far (closed under hidden events);
        empty after a violation."""
        if self._node is None:
            return frozenset()
        _, mask = self.tables.decode(self._node)
        return frozenset(s for s in STATES if mask & _BIT[s])

    @property
    def violation(self) -> Violation | None:
        return self._violation

    @property
    def count(self) -> int:
        """Observations accepted so far."""
        return len(self._history)

    def feed(
        self,
        name: str,
        t: int,
        changed: bool | None = None,
        source: str | Source | None = None,
    ) -> Violation | None:
        """Check the next observation; the violation it causes (or the earlier one)."""
        node = self._node
        if node is None:
            return self._violation
        try:
            col = self.tables.cols[name][_CHANGED[changed] + _SOURCE[source]]
        except KeyError:
            raise ValueError(
                _bad_name(name) if name not in self.tables.cols
                else _bad_fields(changed, source)
            ) from None
        except TypeError:  # an unhashable field value
            raise ValueError(_bad_fields(changed, source)) from None
        nxt = node[col]
        if nxt is not None:
            self._node = nxt
            self._history.append(col)
            return None
        return self._fail(node, name, t)

    @staticmethod
    def code(name: str) -> int:
        """The observation code of ``name``, for :meth:`feed_code`."""
        try:
            return NAMES.index(name)
        except ValueError:
            raise ValueError(_bad_name(name)) from None

    case = staticmethod(case_of)

    def feed_code(self, code: int, case: int = 0, t: int = 0) -> bool:
        """The fast path: feed observation ``code`` (:meth:`code`) with field ``case``
        (:func:`case_of`); True while the trace conforms. Codes are not checked: a
        bad one is an IndexError."""
        node = self._node
        if node is None:
            return False
        col = self.tables.by_code[code][case]
        nxt = node[col]
        if nxt is not None:
            self._node = nxt
            self._history.append(col)
            return True
        self._fail(node, NAMES[code], t)
        return False

    def run(self) -> list[str]:
        """Row names of one run of the model that explains the trace so far (the
        first state, in :data:`STATES` order, of the current set): what the
        conformance suite counts as covered. Empty after a violation."""
        if self._node is None:
            return []
        return self.tables.run_of(self._node, bytes(self._history))

    def _fail(self, node: Node, name: str, t: int) -> Violation:
        self._violation = self.tables.explain(
            node, bytes(self._history), name, len(self._history), t
        )
        self._node = None
        return self._violation


#: One record of an interleaved trace: (client, name, t, changed, source).
StreamRecord = tuple[str, str, int, "bool | None", "str | Source | None"]


def check_stream(
    records: Iterable[StreamRecord],
    interp: Interpretation | str = "seed",
    *,
    mode: Mode | None = None,
    modes: Mapping[str, Mode | None] | None = None,
    hidden: frozenset[Event] = frozenset(),
) -> dict[str, Violation | None]:
    """Check an interleaved multi-client trace in one pass: each client's first
    violation, or None. ``modes`` gives some clients their own mode (default
    ``mode``).

    Each client costs one list ``[node, history]``: its state and the columns it
    accepted, one byte each, kept only to explain a violation. A client in error has
    node None and its later records cost one lookup.
    """
    tables = tables_for(interp, frozenset(hidden))
    cols, start, explain = tables.cols, tables.start, tables.explain
    # Most records carry neither field: their column needs one lookup, not three.
    plain = {n: c[0] for n, c in cols.items()}
    changed_code, source_code = _CHANGED, _SOURCE
    per_client = modes or {}
    clients: dict[str, list[Any]] = {}
    found: dict[str, Violation | None] = {}
    for client, name, t, changed, source in records:
        st = clients.get(client)
        if st is None:
            st = clients[client] = [start[_MODE_INDEX[per_client.get(client, mode)]],
                                    bytearray()]
            found[client] = None
        try:
            if changed is None and source is None:
                col = plain[name]
            else:
                col = cols[name][changed_code[changed] + source_code[source]]
        except (KeyError, TypeError):
            raise ValueError(
                f"client {client!r} at t={t}: "
                + (_bad_name(name) if name not in cols else _bad_fields(changed, source))
            ) from None
        node = st[0]
        if node is None:
            continue  # in error: only the first violation is reported
        nxt = node[col]
        if nxt is not None:
            st[0] = nxt
            st[1].append(col)
        else:
            found[client] = explain(node, bytes(st[1]), name, len(st[1]), t)
            st[0] = None
    return found
