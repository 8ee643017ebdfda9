"""Offline trace validation: ``sephb validate FILE...``.

Theory of operation
-------------------
A trace file (NDJSON, plain or gzip, or a HAR capture, :mod:`sephb.conformance.traces.har`)
holds the records of many clients, interleaved. Each client's records are run through
the trace checker compiled from the transition table
(:func:`sephb.model.checker.tables_for`): a client's whole state is one *node* of the
compiled automaton, and a record moves it by one list index. Which events count as
hidden depends on who observed the record, decided **per record** by its ``by``
field: ``"server"`` records are checked with the events a server cannot see hidden
(:data:`sephb.conformance.traces.properties.HIDDEN`); ``"client"`` records (and records
without ``by``) with nothing hidden. A file that holds both views of one client
(``sephb manager`` and ``sephb client`` sharing a trace) checks them as two separate
streams, "c1 (server)" and "c1 (client)". A GUP's own ``CONNECT``/``DISCONNECT``
(``role: "gup"``) are transport records, not model steps, and are skipped.

The hot path is built for >= 1,000,000 events/s on one core:

* the file is read in 1 MiB blocks into one reused buffer, cut at the last newline;
  numpy finds the block's newlines (their count numbers the lines) and checks that
  every line boundary is ``}\\n{`` (:class:`_Scanner`: then no JSON value can span
  lines or share one);
* such a block is decoded in one C call, ``Decoder(_Line).decode_lines``, into a
  small Struct holding only the fields the checker reads (``t``, ``client``,
  ``event``, ``by``, ``role``, ``changed``, ``source``), with the event name typed as
  a Literal of the model's names so that msgspec validates it; the block is taken
  only if the decoder yields one record per line;
* each record costs a dict lookup for its client, a time-order check, a dict lookup
  for its column and ``node = node[col]`` (:meth:`_Run.fast`).

Anything unusual (a blank line, a syntax error, an unknown name, time going back)
makes that block fall back to line-by-line decoding; a line that still fails is
decoded once more by the careful reader's typed decoder
(:data:`sephb.conformance.traces.trace.Record` and
:func:`~sephb.conformance.traces.trace.problem`)
for the precise message. The bad line is reported with file and line and skipped;
the run goes on. Lines are capped at :data:`MAX_LINE` bytes: a longer line is
reported and skipped without being held in memory. Both paths give the same results
on every input (``test_fast_path_equals_careful_path``); :data:`FAST_PATH` turns the
fast one off.

Memory is per client and bounded: the node, the last time, and the accepted columns
(one byte each) that :meth:`~sephb.model.checker.Tables.explain` re-runs to explain a
violation. Every :data:`FOLD_EVERY` blocks a history longer than twice
:data:`WINDOW` is cut back to its last WINDOW columns: its *checkpoint* node moves
forward by stepping the compiled automaton over the columns cut (a C-level
``functools.reduce``, some 20 ns a column), and the window is kept long enough to
hold an event. Re-run from the checkpoint, the explanation is the same as from the
start (:meth:`Tables.explain` says why): same requirement, allowed names, index and
events before; the path is the suffix after the checkpoint, of which the last
:data:`KEEP_PATH` rows are shown either way.

The timing rules of ``--data`` allow ``tolerance_ms`` of recording jitter. Unless it
is given, it follows the time scale the trace was recorded at, read from the header
line its writer put first (:func:`sephb.conformance.traces.trace.header_of`): the jitter
budget of :func:`sephb.conformance.traces.clock.tolerance_for` (0.1 s of wall time) in
model time, and never less than :data:`DEFAULT_TOLERANCE_MS`. Header lines are
neither records nor bad lines. A timing finding carries its :class:`Margin` (how
late or early, and the tolerance that would accept it).

Files are independent (a client id in two files is two clients), so ``--jobs N``
validates files in a process pool and ``--engine dask`` on a Dask cluster, each with
the same :func:`validate_file`; results come back in file order either way.
"""

from __future__ import annotations

import argparse
import functools
import gc
import gzip
import itertools
import json
import operator
import sys
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Annotated, Any, Final, Literal, cast

import msgspec
import numpy as np

from sephb.conformance._argtypes import (
    interpretation_option,
    non_negative,
    positive,
    time_scale,
)
from sephb.conformance.traces.clock import JITTER_BUDGET_S, tolerance_for
from sephb.conformance.traces.properties import (
    ACTS_ON,
    HIDDEN,
    ClientConfig,
    TraceProperties,
)
from sephb.conformance.traces.trace import (
    ACTIONS,
    TRANSPORT,
    Record,
    TraceHeader,
    header_of,
    is_transport,
    problem,
)
from sephb.conformance.traces.wire import Role
from sephb.model.checker import (
    NAMES,
    Node,
    Tables,
    case_of,
    tables_for,
)
from sephb.model.interpretations import DEFAULT, get
from sephb.model.protocol import SESSION_LIMIT_MS, Action, Event, Mode

__all__ = [
    "DEFAULT_TOLERANCE_MS",
    "MAX_LINE",
    "ClientVerdict",
    "FileResult",
    "Margin",
    "Problem",
    "add_parser",
    "default_tolerance",
    "run",
    "validate_file",
    "validate_files",
]

#: Longest line read (bytes, newline excluded); also the read block size, so that a
#: line can only overrun it where it crosses a block boundary.
MAX_LINE: Final = 1 << 20
#: Accepted columns a client keeps to explain a violation: a fold cuts its history
#: back to (about) this many.
WINDOW: Final = 512
#: Rows of a violation's path shown.
KEEP_PATH: Final = 64
#: Fold every this many blocks (of MAX_LINE bytes).
FOLD_EVERY: Final = 64
#: Take the fast path where a block allows it. The tests turn it off to prove that
#: both paths give the same results on every input.
FAST_PATH = True
#: Events shown before a violation.
BEFORE: Final = 5
#: Model ms of recording jitter the timing rules allow by default, and at least when
#: the tolerance follows a recorded time scale.
DEFAULT_TOLERANCE_MS: Final = 1000
#: How a writer's header line begins (``trace.header_record`` encoded): a block that
#: begins so has its first line read carefully and the rest on the fast path.
_HEADER_START: Final = b'{"sephb"'


def default_tolerance(time_scale: float | None) -> int:
    """The tolerance (model ms) for a trace recorded at ``time_scale`` (None:
    unknown): :data:`~sephb.conformance.traces.clock.JITTER_BUDGET_S` of wall time in model
    time, as the conformance suite over the wire allows, and never less than
    :data:`DEFAULT_TOLERANCE_MS`."""
    if time_scale is None:
        return DEFAULT_TOLERANCE_MS
    return max(DEFAULT_TOLERANCE_MS, tolerance_for(time_scale))

_Name = Literal[NAMES]  # type: ignore[valid-type]


# gc=False: strings only, no cycles; untracked structs keep the collector quiet.
class _Line(msgspec.Struct, gc=False):
    """The fields of a trace line the checker reads; the rest are skipped."""

    t: Annotated[int, msgspec.Meta(ge=0)]
    client: Annotated[str, msgspec.Meta(min_length=1)]
    event: _Name
    by: Literal["server", "client"] | None = None
    role: Literal["manager", "gup"] | None = None
    changed: bool | None = None
    source: Literal["manager", "gup", "none"] | None = None


class _DataLine(_Line, gc=False):
    """With ``--data``: the fields the data properties read too."""

    addr: str | None = None
    port: int | None = None
    ids: list[str] | None = None
    duplicates: list[str] | None = None


_FAST: Final = msgspec.json.Decoder(_Line)
_DATA_FAST: Final = msgspec.json.Decoder(_DataLine)
_CAREFUL: Final = msgspec.json.Decoder(Record)
_GUP: Final = Role.GUP.value

#: Which view a record is: its ``by`` value (None reads as the client's own view).
Side = Literal["server", "client", "har"]
#: A HAR shows requests and answers, not connects and closes: the reader places them
#: where connections change, so their times say nothing of when the client acted.
_HAR_UNSEEN: Final = frozenset({Action.CONNECT.value, Action.DISCONNECT.value})
_HIDDEN_OF: Final[dict[str, frozenset[Event]]] = {
    "server": HIDDEN, "client": frozenset(), "har": HIDDEN,
}


# --- results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Input that cannot be read: where and what."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else \
            f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Margin:
    """How far a timing finding missed its bound, in model ms: what decides whether
    another ``--tolerance`` would accept it. A record ``late`` is broken when it
    comes more than the tolerance after its due time; one ``early`` when it comes
    more than the tolerance before the earliest time allowed."""

    #: The rule: ``session`` (the session limit, both ways), a deadline of
    #: :mod:`sephb.model.deadlines` (``act-at-once``, ``request``,
    #: ``next-heartbeat``), ``interval`` (a heartbeat before the configured
    #: interval) or ``push-hold`` (a held push connection closed before it).
    rule: str
    way: Literal["late", "early"]
    #: Model time of the bound: the due time (late) or the earliest allowed (early).
    bound: int
    #: Model ms past (late) or before (early) the bound.
    by_ms: int
    #: The tolerance in use.
    tolerance_ms: int
    #: Whether the end of the trace broke it (the client was silent past its due
    #: time), not a record.
    at_end: bool = False
    #: Model ms beyond the tolerance.
    beyond_tolerance_ms: int = field(init=False)
    #: The least ``--tolerance`` that accepts it (broken means more than the
    #: tolerance past, or before, the bound): ``by_ms``.
    accepting_tolerance_ms: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "beyond_tolerance_ms", self.by_ms - self.tolerance_ms)
        object.__setattr__(self, "accepting_tolerance_ms", self.by_ms)

    def describe(self) -> str:
        past = "past the due time" if self.way == "late" else "before the earliest time"
        then = "leave it pending" if self.at_end else "accept it"
        return (f"{self.way} by {self.beyond_tolerance_ms:,} ms beyond the tolerance of "
                f"{self.tolerance_ms:,} ms ({self.by_ms:,} ms {past}, t={self.bound}); "
                f"--tolerance {self.accepting_tolerance_ms} would {then}")


@dataclass
class ClientVerdict:
    """One client's verdict in one file (and one view of it)."""

    path: str
    client: str
    side: str
    #: Records of this client checked (up to and including a violation).
    events: int
    conformant: bool = True
    line: int | None = None
    t: int | None = None
    requirement: str | None = None
    seen: str | None = None
    allowed: list[str] = field(default_factory=list)
    #: Names of the events accepted just before the violation, oldest first.
    before: list[str] = field(default_factory=list)
    #: Row names of one run up to the violation (the last :data:`KEEP_PATH`).
    path_rows: list[str] = field(default_factory=list)
    message: str | None = None
    #: With ``--data``: deadlines still open when the file ended (neither met nor
    #: broken: a finite trace's presumptive verdict), one line each.
    pending: list[str] = field(default_factory=list)
    #: Why: the message without its "event N (t=T ms)" (the text output's too).
    reason: str | None = None
    #: A timing finding's margin: how late or early, and the tolerance that would
    #: accept it.
    margin: Margin | None = None


@dataclass
class FileResult:
    path: str
    format: str
    events: int = 0
    clients: list[ClientVerdict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: The tolerance of the timing rules (with ``--data``), model ms.
    tolerance_ms: int = DEFAULT_TOLERANCE_MS
    #: Why that tolerance: "tolerance 100,000 model ms: 0.1 s of wall time at the
    #: recorded time scale 0.001".
    tolerance: str = ""
    #: The time scale the tolerance follows (the header's or ``--time-scale``), if
    #: any.
    time_scale: float | None = None
    #: The header that set it: its line, time scale and writer (None: none read).
    header: dict[str, Any] | None = None


# --- margins of timing findings --------------------------------------------------

_feed: Final = TraceProperties.feed

#: The requirements of the configured-interval rule (a heartbeat too soon).
_INTERVAL_RULES: Final = frozenset({"REQ-7-PULL", "REQ-2-TIMEOUT-30000"})


@dataclass
class _Measured(TraceProperties):
    """:class:`TraceProperties` that also measure a timing finding: :attr:`margin`
    says how far past (or before) its bound the record came. The deadlines say which
    one broke (``Deadlines.broken``); the session limit, the configured interval and
    the push hold keep their times in the properties' own state, read here before a
    record is fed (the order of the checks is :meth:`TraceProperties.feed`'s)."""

    #: The margin of the finding :meth:`feed` or :meth:`finish` returned last.
    margin: Margin | None = field(default=None, init=False)
    #: The margin of a held push connection closed early: reported at the next
    #: record, measured at the close.
    _closed_early: Margin | None = field(default=None, init=False)

    def feed(self, name: str, t: int, port: int | None = None,
             ids: list[str] | None = None, duplicates: list[str] | None = None,
             addr: str | None = None) -> tuple[str, str] | None:
        # Every record of --data comes here: reads only, and the base's feed called
        # directly (super() costs a lookup a record).
        since, last, broken = self._session.since, self._last_heartbeat, \
            self._push_broken
        push = self._push
        held = None if push is None else push._held_at
        found = _feed(self, name, t, port, ids, duplicates, addr)
        if found is None:
            if broken is None and self._push_broken is not None:
                self._closed_early = self._early_close(held, t)
            return None
        self.margin = self._measure(found, t, since, last, broken)
        return found

    def finish(self, end: int) -> tuple[str, str] | None:
        since = self._session.since
        found = super().finish(end)
        if found is not None:
            self.margin = self._measure(found, end, since, None, None, at_end=True)
        return found

    def _measure(self, found: tuple[str, str], t: int, since: int | None,
                 last: int | None, broken: str | None, *, at_end: bool = False
                 ) -> Margin | None:
        tol = self.tolerance_ms
        requirement, message = found
        if since is not None and t > since + SESSION_LIMIT_MS + tol:
            return Margin("session", "late", since + SESSION_LIMIT_MS,
                          t - since - SESSION_LIMIT_MS, tol, at_end)
        late = self.deadlines.broken
        if late is not None:  # a finding ends a client's checks: this is it
            return Margin(late.deadline, "late", late.due, t - late.due, tol, at_end)
        if since is not None and message is self._session.early:
            bound = since + SESSION_LIMIT_MS
            return Margin("session", "early", bound, bound - t, tol)
        if broken is not None and requirement == "REQ-7-PUSH":
            return self._closed_early
        config = self.config
        if config is not None and last is not None and requirement in _INTERVAL_RULES \
                and self._last_heartbeat == t \
                and t < last + config.interval_ms - tol:
            bound = last + config.interval_ms
            return Margin("interval", "early", bound, bound - t, tol)
        return None

    def _early_close(self, held: int | None, t: int) -> Margin | None:
        """The margin of a close that broke the push hold, when it broke it by
        coming before the interval (not right after the check-in)."""
        interval = None if self._push is None else self._push.interval_ms
        tol = self.tolerance_ms
        if held is None or interval is None or not t < held + interval - tol:
            return None
        return Margin("push-hold", "early", held + interval, held + interval - t, tol)


# --- per-client state ------------------------------------------------------------

# A client's state is a list, indexed by these, for speed on the hot path. _BY is the
# ``by`` value (the decoder's own string object, or None) of the records that
# ``_Run.by_client`` sends to it; _COLS the name -> column map its next record takes
# (with --data: whether the data properties need to see every record of it now).
_NODE, _HIST, _LAST, _SIDE, _START, _OFFSET, _VERDICT, _BY, _PROPS, _COLS = range(10)
# _Run.fast spells these as literals
assert (_NODE, _HIST, _LAST, _BY, _COLS) == (0, 1, 2, 7, 9)


def _side(by: str | None) -> str:
    return "server" if by == "server" else "client"


def _index(recs: list[Any], r: object, start: int) -> int:
    """The position of record ``r`` (this object, not an equal one) in ``recs``."""
    return next(i for i in range(start, len(recs)) if recs[i] is r)

#: The history of a client after its violation: keeps nothing.
_SINK: Final[deque[int]] = deque(maxlen=0)

# What ``_Run.col_of`` holds for names the fast path cannot place with the name alone.
#: The name's column depends on ``changed``/``source`` (a guard's inputs).
_BY_FIELDS: Final = -(1 << 20)
#: With ``--data``: the record goes by the data properties first.
_DATA: Final = -(1 << 21)
# CONNECT/DISCONNECT hold ``~column``: a GUP's own are transport records, skipped.


def col_of_fields(cols: tuple[int, ...]) -> bool:
    """Whether a name's column depends on its ``changed``/``source`` fields."""
    return len(set(cols)) > 1


class _Run:
    """The checker state of every client of one file."""

    def __init__(self, path: str, interpretation: str, mode: Mode | None = None,
                 data: bool = False, tolerance_ms: int | None = None,
                 config: ClientConfig | None = None,
                 time_scale: float | None = None) -> None:
        self.path = path
        self.timing = get(interpretation).timing
        # A configuration's properties run with the data properties.
        data = data or config is not None
        self.data, self.config = data, config
        #: The tolerance: given (fixed), else the default for ``time_scale`` (the
        #: --time-scale option) until a header before the first record says the
        #: scale of the recording.
        self.given_tolerance = tolerance_ms
        self.option_scale = time_scale
        self.header: TraceHeader | None = None
        self.header_line: int | None = None
        #: A header that could not be read, before the first record: its line.
        self.unread_header: int | None = None
        self.tolerance_ms = tolerance_ms if tolerance_ms is not None \
            else default_tolerance(time_scale)
        if config is not None and mode is None:
            mode = config.mode
        self.mode = mode
        self.decoder: msgspec.json.Decoder[Any] = _DATA_FAST if data else _FAST
        self.tables = {s: tables_for(interpretation, h) for s, h in _HIDDEN_OF.items()}
        #: Each view's initial node under the configured mode (None: unknown, so
        #: either mode's rows are allowed, observation by observation).
        self.start = {s: t.start_for(mode) for s, t in self.tables.items()}
        cols = self.tables["client"].cols
        # Columns are numbered by (name, rows admitted), before any closure: the same
        # for every set of hidden events, so one map serves every view.
        assert all(t.cols == cols for t in self.tables.values())
        self.cols = cols
        self.col_of: dict[str, int] = {
            n: (_BY_FIELDS if col_of_fields(c) else ~c[0] if n in TRANSPORT else c[0])
            for n, c in cols.items()
        }
        #: name -> its column, for the names whose column the fields do not decide.
        self.plain = {n: c[0] for n, c in cols.items() if not col_of_fields(c)}
        #: With --data, the maps of a client whose properties read every record now
        #: (a session pending, the configuration's or the push rules) and of one whose
        #: properties need only the names they act on (most records skip them).
        self.col_every = self.col_quiet = self.col_of
        if data:
            self.col_every = dict.fromkeys(cols, _DATA)
            self.col_quiet = self.col_every if config is not None or mode is Mode.PUSH \
                else {n: _DATA if n in ACTS_ON else c for n, c in self.col_of.items()}
        #: (name, changed, source) -> column, for the names whose column they decide
        #: (the values _Line's types admit: every case).
        self.by_fields: dict[tuple[str, bool | None, str | None], int] = {
            (n, ch, src): c[case_of(ch, src)]
            for n, c in cols.items() if col_of_fields(c)
            for ch in (None, False, True) for src in (None, "manager", "gup", "none")
        }
        # After a violation a client's node is DEAD: every column leads back to it, so
        # the hot path needs no None test; its history becomes a sink.
        self.dead: Node = [None] * (len(self.tables["client"].col_name) + 1)
        self.dead[:-1] = [self.dead] * (len(self.dead) - 1)
        #: [column] -> whether it observes an event (not an action).
        self.is_event = tuple(n not in ACTIONS for n in self.tables["client"].col_name)
        self.states: dict[str, dict[str, list[Any]]] = {s: {} for s in _HIDDEN_OF}
        #: The fast path's index: client id -> the state of the first view seen.
        self.by_client: dict[str, list[Any]] = {}
        self.result = FileResult(path, "ndjson")
        self.events = 0

    def header_at(self, raw: bytes, line: int) -> bool:
        """Whether a line that is not a record is a header (taken, or reported when
        it cannot be read); False: it is a bad line for the caller to report."""
        try:
            header = header_of(raw)
        except ValueError as exc:
            self.bad(line, str(exc))
            if not self.events and self.header is None:
                self.unread_header = line
            return True
        if header is None:
            return False
        if not self.events and self.header is None:
            # The first header before any record: the recording's time scale.
            self.header, self.header_line = header, line
            if self.given_tolerance is None:
                self.tolerance_ms = default_tolerance(header.time_scale)
            return True
        wanted = default_tolerance(header.time_scale)
        if self.given_tolerance is None and wanted != self.tolerance_ms:
            # A second recording (a trace appended to, or two writers sharing a
            # file) at another scale: the tolerance cannot follow both.
            since = f"the header at line {self.header_line}" if self.header_line \
                else "the start (no header before the first record)"
            self.bad(line, f"this trace header records time scale "
                           f"{header.time_scale:g} (writer {header.writer!r}), which "
                           f"calls for a tolerance of {wanted:,} model ms, but "
                           f"{self.tolerance_ms:,} is in use since {since}: the file "
                           f"mixes recordings at different time scales; give "
                           f"--tolerance MS to judge it at one")
        return True

    def tolerance_reason(self) -> str:
        """Which tolerance the timing rules use, and why, in one sentence."""
        ms = self.tolerance_ms
        head = f"tolerance {ms:,} model ms: "
        if self.given_tolerance is not None:
            return head + "given by --tolerance"
        scale, said = None, ""
        if self.header is not None:
            scale = self.header.time_scale
            said = f"the recorded time scale {scale:g}"
            opt = self.option_scale
            if opt is not None and opt != scale:
                said += f" (--time-scale {opt:g} is for traces without a header)"
        elif self.option_scale is not None:
            scale = self.option_scale
            said = f"--time-scale {scale:g}"
        if scale is None:
            if self.result.format == "har":
                why = "a HAR's times are wall-clock times, read at time scale 1; " \
                      "--time-scale S for a capture of a run at scale S"
            elif self.unread_header is not None:
                why = f"the header at line {self.unread_header} could not be read"
            else:
                why = "the trace records no time scale; --time-scale S says it"
            return head + f"the default ({why})"
        jitter = tolerance_for(scale)
        if jitter < DEFAULT_TOLERANCE_MS:
            text = f"the default, at least ({JITTER_BUDGET_S:g} s of wall time at " \
                   f"{said} is {jitter:,} model ms)"
        else:
            text = f"{JITTER_BUDGET_S:g} s of wall time at {said}"
        if ms > SESSION_LIMIT_MS // 2:
            text += f"; more than half the {SESSION_LIMIT_MS:,} ms session limit, so " \
                    f"at this scale the timing rules catch only gross delays"
        return head + text

    def new(self, side: str, client: str) -> list[Any]:
        st = [self.start[side], bytearray(), -1, side, None, 0, None, side, None,
              self.col_quiet]
        self.states[side][client] = st
        return st

    def first(self, r: _Line) -> list[Any]:
        """The state of a client id not seen by the fast path yet: its view is that
        of this record (``by_client`` keeps one view per id)."""
        st = self.states[_side(r.by)].get(r.client) or self.new(_side(r.by), r.client)
        st[_BY] = r.by
        self.by_client[r.client] = st
        return st

    def other(self, r: _Line) -> list[Any]:
        """The state of a record whose ``by`` differs from the one ``by_client`` keeps
        for its id: the other view (or ``"client"`` spelled as no ``by``)."""
        side = _side(r.by)
        return self.states[side].get(r.client) or self.new(side, r.client)

    def bad(self, line: int | None, message: str) -> None:
        self.result.problems.append(Problem(self.path, line, message))

    # The hot path: records of a block that decoded cleanly.
    def fast(self, recs: list[_Line], first: int, start: int) -> int:
        """Feed decoded records ``start:`` of a block from line ``first``; the index
        of a record the fast path cannot take (time going back: the caller reports
        it carefully), or len(recs).

        Every line of this loop is paid a million times a second: it reads each
        field once, indexes lists rather than calling, and leaves new clients, the
        guard fields and GUP transport to rare branches. The state's slots are
        literal indexes here (0 node, 1 history, 2 last t, 7 by): a named constant
        is a global lookup, 3% of the loop."""
        by_client, by_fields = self.by_client, self.by_fields
        for r in itertools.islice(recs, start, None) if start else recs:
            try:
                st = by_client[r.client]
            except KeyError:
                st = self.first(r)
            if st[7] is not r.by:  # the other view of this client id
                st = self.other(r)
            t = r.t
            if t < st[2]:
                return _index(recs, r, start)
            st[2] = t
            col = st[9][r.event]
            if col < 0:
                if col == _BY_FIELDS:
                    col = by_fields[r.event, r.changed, r.source]
                elif col == _DATA:
                    col = self.props(st, r, t, first, recs, start)
                    if col < 0:
                        continue
                elif r.role == _GUP:  # a GUP connection's own: transport
                    continue
                else:
                    col = ~col
            nxt = st[0][col]
            if nxt is None:
                self.violate(st, r.client, r.event, t, first + _index(recs, r, start))
            else:  # a dead client's history is a sink: no test needed here
                st[0] = nxt
                st[1].append(col)
        return len(recs)

    def props(self, st: list[Any], r: Any, t: int, first: int, recs: list[Any],
              start: int) -> int:
        """With ``--data``: run record ``r`` (of ``recs``, a block from line
        ``first``) by its client's data properties; its column, or -1 when the
        record is done with (a GUP's transport record, a client already in
        violation, a data violation found now)."""
        name = r.event
        # trace.is_transport, inline: a call per record is a fifth of --data's cost
        if (r.role == _GUP and name in TRANSPORT) or st[_NODE] is self.dead:
            return -1
        props = st[_PROPS]
        if props is None:
            props = st[_PROPS] = _Measured(
                self.tolerance_ms, self.config, st[_SIDE] != "client", self.mode,
                self.timing, _HAR_UNSEEN if st[_SIDE] == "har" else frozenset())
        found = props.feed(name, t, r.port, r.ids, r.duplicates, r.addr)
        st[_COLS] = self.col_every if props.watching else self.col_quiet
        if found is not None:
            self.violate(st, r.client, name, t, first + _index(recs, r, start), found,
                         props.margin)
            return -1
        col = self.plain.get(name)
        return col if col is not None else self.by_fields[name, r.changed, r.source]

    def slow(self, side: str, client: str, name: str, t: int, changed: bool | None,
             source: str | None, role: str | None, line: int, rec: Any = None) -> None:
        """One record, any client: new clients, time order, every check spelled out.
        ``rec``: the decoded line, for the data properties (None: no fields)."""
        st = self.states[side].get(client)
        if st is None:
            st = self.new(side, client)
        if t < st[_LAST]:
            self.bad(line, f"time goes backwards for client {client!r}: t={t} after "
                           f"t={st[_LAST]}")
            return
        st[_LAST] = t
        if self.data and isinstance(rec, _DataLine):
            col = self.props(st, rec, t, line, [rec], 0)
            if col < 0:
                return
        elif is_transport(name, role) or st[_NODE] is self.dead:
            return
        else:
            col = self.cols[name][case_of(changed, source)]
        node = st[_NODE]
        nxt = node[col]
        if nxt is not None:
            st[_NODE] = nxt
            st[_HIST].append(col)
        else:
            self.violate(st, client, name, t, line)

    def violate(self, st: list[Any], client: str, name: str, t: int, line: int | None,
                found: tuple[str, str] | None = None, margin: Margin | None = None
                ) -> None:
        """Record a client's first violation: of the table (explained by a re-run),
        or ``found`` by a data property (requirement, message; ``margin``: how far a
        timing finding missed its bound)."""
        tables: Tables = self.tables[st[_SIDE]]
        before = [tables.col_name[c] for c in st[_HIST][-BEFORE:]]
        index = st[_OFFSET] + len(st[_HIST])
        if found is not None:
            requirement, message = found
            st[_VERDICT] = ClientVerdict(
                self.path, client, st[_SIDE], index + 1, False, line, t, requirement,
                name, [], before, [], f"event {index} (t={t} ms) {message}",
                reason=message, margin=margin)
        else:
            v = tables.explain(st[_NODE], bytes(st[_HIST]), name, index, t,
                               start=st[_START])
            st[_VERDICT] = ClientVerdict(
                self.path, client, st[_SIDE], v.index + 1, False, line, t,
                v.requirement, name, list(v.allowed), before,
                list(v.path[-KEEP_PATH:]), v.message,
                reason=v.reason)
        st[_NODE] = self.dead
        st[_HIST] = _SINK

    def fold(self) -> None:
        """Cut long histories back to their last WINDOW columns (flat memory per
        client): the checkpoint moves forward by stepping the compiled automaton over
        the columns cut (one C-level reduce), and the window is made to hold an
        event, so that :meth:`Tables.explain` from the checkpoint stays exact."""
        for states in self.states.values():
            for st in states.values():
                hist = st[_HIST]
                keep = max(WINDOW, BEFORE)  # the events shown before a violation too
                if st[_NODE] is self.dead or len(hist) <= 2 * keep:
                    continue
                is_event = self.is_event
                cut = len(hist) - keep
                while cut > 0 and not any(is_event[c] for c in hist[cut:]):
                    cut -= keep  # only actions lately: keep back to an event
                if cut <= 0:
                    continue
                start = st[_START] or self.start[st[_SIDE]]
                st[_START] = functools.reduce(operator.getitem, hist[:cut], start)
                del hist[:cut]
                st[_OFFSET] += cut

    def finish(self) -> FileResult:
        res = self.result
        res.events = self.events
        res.tolerance_ms, res.tolerance = self.tolerance_ms, self.tolerance_reason()
        head = self.header
        res.time_scale = head.time_scale if head is not None else self.option_scale
        res.header = None if head is None else {
            "line": self.header_line, "time_scale": head.time_scale,
            "writer": head.writer, "version": head.version}
        # The recording went on to its last record, whoever's: a deadline of a
        # client due before then was broken (it was silent past it); one due later
        # is pending.
        end = max((st[_LAST] for states in self.states.values()
                   for st in states.values()), default=0)
        for side in ("server", "client", "har"):
            for client, st in self.states[side].items():
                props = st[_PROPS]
                if st[_VERDICT] is None and props is not None:
                    found = props.finish(end)
                    if found is not None:
                        self.violate(st, client, "(end of trace)", end, None, found,
                                     props.margin)
                v = st[_VERDICT]
                res.clients.append(v if v is not None else ClientVerdict(
                    self.path, client, side, st[_OFFSET] + len(st[_HIST]),
                    pending=[o.describe() for o in props.pending()] if props else []))
        return res


# --- NDJSON ----------------------------------------------------------------------


def _open(path: str) -> tuple[IO[bytes], list[IO[bytes]]]:
    if path == "-":
        return sys.stdin.buffer, []
    raw = open(path, "rb")  # noqa: SIM115 -- closed by the caller
    if raw.peek(2)[:2] == b"\x1f\x8b":  # sniff the gzip magic, not the suffix
        gz: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        return gz, [gz, raw]
    return raw, [raw]


#: A block of whole lines: (first line number, buffer, start, end, number of lines,
#: last block). The lines are ``buffer[start:end]``; the last block may end without a
#: newline. The buffer is reused: a block is valid until the next one is read.
#: A block of whole lines: (first line number, buffer, start, end, number of lines,
#: last block, lines of one object each). The lines are ``buffer[start:end]``; the
#: last block may end without a newline. The buffer is reused: a block is valid
#: until the next one is read.
_Block = tuple[int, bytearray, int, int, int, bool, bool]

_LF, _CR, _OPEN, _CLOSE = b"\n\r{}"


class _Scanner:
    """Finds a block's newlines with numpy (one vector compare and one nonzero over
    the buffer, some 30 ns a line; CPython's ``bytes.count`` of a newline and of
    ``}\\n{`` took 130) and says whether the block is *whole*: lines of one object
    each, ``{...}``, with every newline between ``}`` and ``{``. Then no JSON value
    can span or share a line (a raw newline cannot be inside a JSON string, and ``}``
    whitespace ``{`` cannot occur inside a valid object), so the decoder's
    one-record-per-value equals one-record-per-line exactly when it yields as many
    records as there are lines. CRLF files are checked with ``}\\r\\n{``; a block
    mixing both endings takes the careful path."""

    def __init__(self, buf: bytearray) -> None:
        self.bytes = np.frombuffer(buf, dtype=np.uint8)
        self.mask = np.empty(len(buf), dtype=np.bool_)

    def __call__(self, start: int, end: int, last: bool) -> tuple[int, bool]:
        """(number of lines, whole) of ``buf[start:end]``."""
        a = self.bytes[start:end]
        mask = self.mask[:end - start]
        np.equal(a, _LF, out=mask)
        nl = np.flatnonzero(mask)
        n = len(nl) + (1 if last and a[-1] != _LF else 0)
        if a[0] != _OPEN:
            return n, False
        before = a[nl - 1]
        lf = bool((before == _CLOSE).all())
        if not lf and not ((before == _CR).all() and (a[nl - 2] == _CLOSE).all()):
            return n, False  # neither "}\n" everywhere nor "}\r\n" everywhere
        ends = a[-1] == _LF or (last and a[-1] == _CLOSE)
        return n, bool(ends and (a[nl[:-1] + 1] == _OPEN).all())


def _blocks(stream: IO[bytes], run: _Run) -> Iterator[_Block]:
    """The blocks of whole lines of a stream, read into one reused buffer (a fresh
    megabyte per read costs more in page faults than the copy itself). Reports
    over-long lines and skips them without holding more than MAX_LINE of them."""
    size = MAX_LINE
    buf = bytearray(2 * size)
    view = memoryview(buf)
    scan = _Scanner(buf)
    have = 0  # an unfinished line (at most MAX_LINE bytes) at buf[:have]
    line = 1
    skipping = False  # inside a line already reported as too long
    while True:
        try:
            got = stream.readinto(view[have:have + size])  # type: ignore[attr-defined]
        except (OSError, EOFError, zlib.error) as exc:
            run.bad(line, f"cannot read (corrupt or truncated gzip?): {exc}")
            got = 0
        if not got:
            if have and not skipping:  # a last line without newline
                yield line, buf, 0, have, 1, True, scan(0, have, True)[1]
            return
        end, start = have + got, 0
        if skipping or have:
            nl = buf.find(b"\n", have, end)
            if skipping or (nl if nl >= 0 else end) > size:
                if not skipping:
                    run.bad(line, f"line longer than {size} bytes: skipped")
                if nl < 0:
                    skipping, have = True, 0
                    continue
                skipping, start, line = False, nl + 1, line + 1
        cut = buf.rfind(b"\n", start, end) + 1
        if cut == 0:  # no newline yet: keep the unfinished line
            if end - start > size:
                run.bad(line, f"line longer than {size} bytes: skipped")
                skipping, have = True, 0
            else:
                view[:end - start] = view[start:end]
                have = end - start
            continue
        n, whole = scan(start, cut, False)
        yield line, buf, start, cut, n, False, whole
        line += n
        view[:end - cut] = view[cut:end]
        have = end - cut


def _ndjson(stream: IO[bytes], run: _Run) -> None:
    for count, (first, buf, start, end, n, last, whole) in enumerate(
            _blocks(stream, run), 1):
        recs: list[_Line] | None = None
        if FAST_PATH and whole and buf.startswith(_HEADER_START, start):
            # A writer's header opens the trace (or what a writer appended): that
            # line carefully, the rest of the block on the fast path.
            nl = buf.find(b"\n", start, end)
            if nl < 0:
                whole = False
            else:
                _careful(run, bytes(buf[start:nl]), first, False)
                start, first, n = nl + 1, first + 1, n - 1
        if FAST_PATH and whole:
            try:  # a view, not a copy, of the whole lines
                with memoryview(buf) as view:
                    recs = run.decoder.decode_lines(view[start:end])
            except (msgspec.DecodeError, msgspec.ValidationError):
                recs = None
            if recs is not None and len(recs) != n:
                recs = None
        if recs is not None:
            done = 0
            lines: list[bytes] | None = None
            while done < n:
                stop = run.fast(recs, first, done)
                run.events += stop - done
                done = stop
                if done < n:  # time went back: the careful path says so
                    lines = lines or bytes(buf[start:end]).split(b"\n")
                    _careful(run, lines[done], first + done, False)
                    done += 1
        else:
            lines = bytes(buf[start:end]).split(b"\n")
            for i in range(n):
                _careful(run, lines[i], first + i, last and i == n - 1)
        if count % FOLD_EVERY == 0:  # every 64 MiB: cheap next to reading them
            run.fold()


def _careful(run: _Run, raw: bytes, line: int, last: bool) -> None:
    """One line the fast path did not take: decode it slowly, report what is wrong."""
    if not raw.strip():
        return
    try:
        rec = run.decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        rec = None
    if rec is None:
        try:
            full = _CAREFUL.decode(raw)
        except msgspec.ValidationError as exc:
            if not run.header_at(raw, line):  # a header is no record, nor a bad line
                run.bad(line, f"bad record: {exc}")
            return
        except msgspec.DecodeError as exc:
            hint = " (truncated last line?)" if last else ""
            run.bad(line, f"bad JSON: {exc}{hint}")
            return
        run.bad(line, problem(full) or "bad record")
        return
    run.events += 1
    run.slow(_side(rec.by), rec.client, rec.event, rec.t,
             rec.changed, rec.source, rec.role, line, rec)


def _har(path: str, run: _Run) -> None:
    from sephb.conformance.traces.har import HarError, har_events

    run.result.format = "har"
    try:
        for ev in har_events(path, time_scale=run.option_scale or 1.0):
            run.events += 1
            # With --data, the fields the properties read, as a trace line has them.
            # (har_events gives only the sources _DataLine admits, or None.)
            rec = _DataLine(ev.t, ev.client, ev.event, "server", None, ev.changed,
                            cast(Any, ev.source), ev.addr, ev.port, ev.ids
                            ) if run.data else None
            run.slow("har", ev.client, ev.event, ev.t, ev.changed, ev.source, None,
                     ev.line, rec)
    except HarError as exc:
        run.bad(exc.line, exc.what)


def _sniff(path: str) -> str:
    if path.endswith((".har", ".har.gz")):
        return "har"
    return "ndjson"


def validate_file(path: str, fmt: str = "auto", interpretation: str = DEFAULT,
                  mode: str | None = None, data: bool = False,
                  tolerance_ms: int | None = None, sylink: str | None = None,
                  time_scale: float | None = None) -> FileResult:
    """Validate one file (``-``: stdin); never raises for bad input (see
    :attr:`FileResult.problems`). ``mode`` is the clients' configured communication
    mode ("pull" or "push"; None: unknown, either allowed). ``data`` checks the data
    properties a trace shows too (:class:`~.properties.TraceProperties`), with
    ``tolerance_ms`` of recording jitter on the timing rules (None: the
    :func:`default_tolerance` of the time scale the trace's header records, else of
    ``time_scale``). ``time_scale``: the scale of a trace without a header; a HAR's
    wall-clock times are divided by it. ``sylink``: the clients' sylink.xml, for the
    rules of their configuration (priority, interval, mode); it implies ``data``. A
    sylink.xml that cannot be read raises
    :class:`~sephb.conformance.traces.sylink.ConfigError` (the command checks it first)."""
    if time_scale is not None:
        tolerance_for(time_scale)  # a scale that is not a number > 0: ValueError now
    config = None
    if sylink is not None:
        from sephb.conformance.traces.sylink import load

        config = ClientConfig.of(get(interpretation), load(sylink))
    run = _Run(path if path != "-" else "<stdin>", interpretation,
               Mode(mode) if mode else None, data, tolerance_ms, config, time_scale)
    fmt = _sniff(path) if fmt == "auto" else fmt
    # The records are short-lived and acyclic: collections in the middle of a block
    # cost a third of the time and free nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if fmt == "har":
            _har(path, run)
        else:
            stream, owned = _open(path)
            try:
                _ndjson(stream, run)
            finally:
                for f in owned:
                    f.close()
    except OSError as exc:
        run.bad(None, f"cannot open: {exc.strerror or exc}")
    finally:
        if collecting:
            gc.enable()
    res = run.finish()
    if not res.problems and not res.events:
        only = " (a header only: its writer recorded nothing)" if run.header else ""
        res.problems.append(Problem(res.path, None, f"empty trace: no records{only}"))
    return res


# --- many files ------------------------------------------------------------------


#: What one file's validation needs: path, format, interpretation, mode, data,
#: tolerance, sylink, time scale.
_Task = tuple[str, str, str, "str | None", bool, "int | None", "str | None",
              "float | None"]


def _one(task: _Task) -> FileResult:
    return validate_file(*task)


def validate_files(paths: Sequence[str], fmt: str = "auto",
                   interpretation: str = DEFAULT, *, mode: str | None = None,
                   data: bool = False, tolerance_ms: int | None = None,
                   sylink: str | None = None, jobs: int = 1, engine: str = "local",
                   scheduler: str | None = None, time_scale: float | None = None
                   ) -> list[FileResult]:
    """Validate files, in file order; ``jobs`` processes, or on a Dask cluster.
    The options are :func:`validate_file`'s."""
    tasks: list[_Task] = [(p, fmt, interpretation, mode, data, tolerance_ms, sylink,
                           time_scale) for p in paths]
    if engine == "dask":
        return _dask(tasks, jobs, scheduler)
    if jobs <= 1 or len(tasks) <= 1 or "-" in paths:
        return [_one(t) for t in tasks]
    import multiprocessing

    # One file per task: files are independent and a big file dominates anyway.
    import threading

    # Fork where there is one and no other thread could hold a lock across it: the
    # workers start with the modules imported (a spawned worker re-imports numpy
    # and msgspec, half a second of a two-second file).
    fork = "fork" in multiprocessing.get_all_start_methods() \
        and threading.active_count() == 1
    method = "fork" if fork else "spawn"
    with multiprocessing.get_context(method).Pool(min(jobs, len(tasks))) as pool:
        return pool.map(_one, tasks, chunksize=1)


DASK_MISSING: Final = ("--engine dask needs Dask: pip install 'sephb[dask]' "
                       "(or: pip install 'dask[distributed]')")


def _dask(tasks: list[_Task], jobs: int, scheduler: str | None
          ) -> list[FileResult]:
    from sephb.model.errors import UsageError

    try:
        from distributed import Client, LocalCluster  # untyped: hence the ignores
    except ImportError:
        raise UsageError(DASK_MISSING) from None
    if scheduler is not None:
        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            return list(client.gather(client.map(_one, tasks, pure=False)))
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=max(1, jobs), threads_per_worker=1, processes=True,
        dashboard_address=None)
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        return list(client.gather(client.map(_one, tasks, pure=False)))


# --- the command -----------------------------------------------------------------

DESCRIPTION = """\
Check recorded heartbeat traces against the model, offline. Each client of each
file gets a verdict: conformant, or its first violation with file and line, the
requirement it broke, the event seen, what the model allowed and the events before.

Records with "by": "server" are checked with the events a server cannot see hidden
(the client's timers, refused connects); "by": "client" (or no "by") with nothing
hidden; a GUP's own CONNECT/DISCONNECT ("role": "gup") are skipped. A HAR capture is
mapped to events by the wire profile (docs/wire-profile.md) and checked like a
server-side view. The order of the records is always checked; --mode, --data and
--sylink add what a trace cannot say by itself (the mode, the data rules the records
prove, the client's configuration). The timing rules allow --tolerance of recording
jitter: by default 0.1 s of wall time at the time scale the trace's header records
(at least 1,000 model ms). Exit 0 all conformant, 1 some violation, 2 input that could
not be read (the other lines, clients and files are still checked)."""

EPILOG = """\
examples:
  sephb validate run.ndjson                        one trace, a table of verdicts
  sephb validate traces/*.ndjson.gz --jobs 4       files in parallel
  zcat run.ndjson.gz | sephb validate -            from stdin
  sephb validate capture.har --format har --json   a browser/mitmproxy capture
  sephb validate client.ndjson --mode push         hold push clients to step 7
  sephb validate manager.ndjson --data             ports, logs, session limit too
  sephb validate client.ndjson --data --tolerance 5000   timing slack: not the header's
  sephb validate capture.har --data --time-scale 0.01    a HAR of a run at scale 0.01
  sephb validate big/*.gz --engine dask --scheduler tcp://10.0.0.5:8786

See docs/validate.md."""


_jobs = positive


def add_parser(sub: Any) -> None:
    """Add ``validate`` to an argparse subparsers object (the CLI's ``sub``)."""
    p = sub.add_parser("validate", help="check recorded traces (NDJSON, HAR) offline",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="NDJSON traces (plain or gzip), HAR files, or - for stdin")
    p.add_argument("--format", choices=("auto", "ndjson", "har"), default="auto",
                   help="input format (default: auto, .har files are HAR)")
    interpretation_option(p)
    p.add_argument("--mode", choices=[m.value for m in Mode],
                   help="the clients' configured communication mode (sylink.xml's "
                        "CommunicationMode): a pull client must not hold its "
                        "connection, a push client must (default: unknown, either)")
    p.add_argument("--data", action="store_true",
                   help="check the data properties a trace shows too: the 30,000 ms "
                        "session limit, content ports, logs lost or uploaded twice, "
                        "and with --mode push the held connection (slower; see "
                        "docs/validate.md)")
    p.add_argument("--sylink", metavar="FILE",
                   help="the clients' sylink.xml: also check the heartbeat's first "
                        "manager (priority), the interval and the mode (implies "
                        "--data and its --mode)")
    p.add_argument("--tolerance", type=non_negative, metavar="MS",
                   help="with --data: model ms of recording jitter allowed on the "
                        "timing rules (default: 0.1 s of wall time at the time scale "
                        "the trace's header records, at least 1000; 1000 without a "
                        "header or --time-scale)")
    p.add_argument("--time-scale", type=time_scale, metavar="S",
                   help="the time scale (wall seconds per model second) of traces "
                        "without a header, such as a HAR or an old trace: sets the "
                        "default --tolerance, and a HAR's wall-clock times are "
                        "divided by it (default: a header's scale; a HAR's is 1)")
    p.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="N",
                   help="validate N files at a time (processes; default: 1)")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local processes (default) or a Dask cluster (pip install "
                        "'sephb[dask]')")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="with --engine dask: an existing scheduler (tcp://host:8786); "
                        "default: a LocalCluster of --jobs workers")
    p.add_argument("--json", action="store_true",
                   help="machine-readable verdicts of every client, every problem")
    p.add_argument("--clients", action="store_true",
                   help="a table row per client (default: a row per file)")
    p.add_argument("--limit", type=non_negative, default=20, metavar="N",
                   help="show the first N input problems and violations of each file "
                        "(default: 20; 0: all)")
    p.set_defaults(run=run)


def exit_code(results: Iterable[FileResult]) -> int:
    results = list(results)
    if any(r.problems for r in results):
        return 2
    return 1 if any(not c.conformant for r in results for c in r.clients) else 0


def to_json(results: Sequence[FileResult]) -> dict[str, Any]:
    return {
        "files": [asdict(r) for r in results],
        "events": sum(r.events for r in results),
        "clients": sum(len(r.clients) for r in results),
        "violations": sum(not c.conformant for r in results for c in r.clients),
        "problems": sum(len(r.problems) for r in results),
        "exit": exit_code(results),
    }


def run(args: argparse.Namespace) -> int:
    """The ``validate`` command."""
    from sephb.model.errors import UsageError

    if args.scheduler and args.engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    if args.files.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    if args.sylink is not None:
        from sephb.conformance.traces.sylink import load

        configured = load(args.sylink).mode.value  # a bad file: one clear message
        if args.mode is not None and args.mode != configured:
            raise UsageError(f"--mode {args.mode} contradicts {args.sylink}, which "
                             f"says {configured}")
    results = validate_files(args.files, args.format, args.interpretation,
                             mode=args.mode, data=args.data,
                             tolerance_ms=args.tolerance, sylink=args.sylink,
                             jobs=args.jobs,
                             engine=args.engine,
                             scheduler=args.scheduler,
                             time_scale=args.time_scale)
    if args.json:
        json.dump(to_json(results), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(results, sys.stdout, limit=args.limit, every_client=args.clients,
               timing=args.data or args.sylink is not None)
    return exit_code(results)


def render(results: Sequence[FileResult], out: IO[str], *, limit: int = 20,
           every_client: bool = False, timing: bool = False) -> None:
    """Input problems and violations in detail (the first ``limit`` of each per file;
    0: all), a summary table per file (per client with ``every_client``), totals.
    ``timing``: the timing rules ran (``--data``), so say which tolerance they used.

    A fleet trace holds a hundred thousand clients: a row each would take minutes
    to draw and nobody would read it, so by default the table has a row per file and
    the detail goes to what needs a look. ``--json`` always has everything."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # A terminal gets its own width; a log or a pipe gets room for long file paths
    # rather than columns folded a few letters wide.
    wide = None if out.isatty() else 160
    console = Console(file=out, highlight=False, soft_wrap=True, width=wide)

    def capped(items: Sequence[Any], what: str, path: str) -> Sequence[Any]:
        if limit and len(items) > limit:
            console.print(f"({len(items) - limit:,} more {what} in {path} not shown: "
                          f"--limit 0 shows all, --json lists them)", markup=False)
            return items[:limit]
        return items

    if timing:  # one line per tolerance, not per file: a fleet has thousands
        files: dict[str, list[str]] = {}
        for r in results:
            files.setdefault(r.tolerance, []).append(r.path)
        for why, paths in files.items():
            which = paths[0] if len(paths) == 1 else _count(len(paths), "file")
            console.print(f"{why} ({which})", markup=False)
    for r in results:
        for p in capped(r.problems, "input problems", r.path):
            console.print(f"[bold red]input[/] {p}", markup=True)
    for r in results:
        open_ = [c for c in r.clients if c.conformant and c.pending]
        for c in capped(open_, "clients with pending deadlines", r.path):
            console.print(f"[yellow]pending[/] {c.path}: client {c.client!r} "
                          f"({c.side} view): {'; '.join(c.pending)} (the trace ends "
                          f"first: neither met nor broken)", markup=True)
    for r in results:
        violating = [c for c in r.clients if not c.conformant]
        for c in capped(violating, "violating clients", r.path):
            where = f"{c.path}:{c.line}" if c.line else f"{c.path} (at its end)"
            # The reason --json gives: the table's (what the model allowed, in which
            # state) or the data or deadline rule's.
            console.print("[bold red]violation[/] " + escape(
                f"{where}: client {c.client!r} ({c.side} view) broke {c.requirement}: "
                f"{c.seen} at t={c.t} ms; {c.reason or c.message}"), markup=True)
            if c.margin is not None:
                console.print(f"  timing: {c.margin.describe()}", markup=False)
            console.print(f"  before: {' '.join(c.before) or '(start of trace)'}",
                          markup=False)
    table = Table(title="sephb validate")
    if every_client:
        for col in ("file", "client", "view", "events", "verdict"):
            table.add_column(col, justify="right" if col == "events" else "left",
                             overflow="fold")
        for r in results:
            if not r.clients:
                table.add_row(r.path, "-", "-", "0",
                              "unreadable" if r.problems else "empty")
            for c in r.clients:
                verdict = "conformant" if c.conformant else \
                    f"{c.requirement} at line {c.line}"
                table.add_row(c.path, c.client, c.side, f"{c.events:,}", verdict)
    else:
        for col in ("file", "format", "events", "clients", "conformant", "violating",
                    "problems"):
            table.add_column(col, justify="left" if col in ("file", "format") else
                             "right", overflow="fold", no_wrap=col != "file")
        for r in results:
            nbad = sum(not c.conformant for c in r.clients)
            table.add_row(r.path, r.format, f"{r.events:,}", f"{len(r.clients):,}",
                          f"{len(r.clients) - nbad:,}", f"{nbad:,}",
                          f"{len(r.problems):,}")
    console.print(table)
    n = sum(len(r.clients) for r in results)
    bad = sum(not c.conformant for r in results for c in r.clients)
    probs = sum(len(r.problems) for r in results)
    events = sum(r.events for r in results)
    console.print(f"{_count(events, 'event')}, {_count(n, 'client')}, {bad:,} violating, "
                  f"{_count(probs, 'input problem')}", markup=False)


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _main() -> None:  # pragma: no cover - `python -m sephb.conformance.traces.validate`
    parser = argparse.ArgumentParser(prog="sephb")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["validate", *sys.argv[1:]])
    sys.exit(run(args))


if __name__ == "__main__":  # pragma: no cover
    _main()
