"""The validation engine: records decoded in blocks, each client run through the
compiled checker (and with ``--data`` the rules of :mod:`.properties`), in bounded
memory. :mod:`.validate` is its public face; its theory of operation is there.

Why this module is long: the hot path, its per-client state and the compact store
that state is parked in are one design (each slot of a state is read by the hot
loop by number, and parked and revived field by field); split, the numbering would
be restated in two modules.

Memory for many clients
-----------------------
A client *stream* (a client id in one view) that is *hot* has its state in a list
(:meth:`_Run.fast` indexes it). A fleet trace holds millions of streams, most of
them idle for long stretches: a list, a bytearray, dict entries and at the end a
verdict object each came to a kilobyte a stream. So every stream has a row in
:class:`_Streams`, numbered as first seen: flat columns (its id's UTF-8 in one byte
string, its node's number, last time, event count, history) with no Python object
per row, some 80 bytes a stream with a short history. When more hot streams than
the run's hot limit (:data:`HOT_LIMIT` to begin with) are hot, and half as many
more than the last pass left, a pass after a block *parks* those that have accepted
no event since the pass before: their state is written to their row and their list
dropped. A parked stream's next record revives it from its row (a few microseconds,
park and revival together); both are exact (a parked history is first cut back
like a fold's, which changes no verdict), so parking never shows in the results
(``test_parking_changes_no_verdict``). When revivals come at more than one record
in :data:`REVIVALS`, the streams in use at once do not fit the limit and parking
them costs more than it saves: the pass doubles the limit. At the end every stream
is parked and the result's :class:`~._verdicts.ClientTable` is made from the rows,
with a verdict object only for a client that violated something or has deadlines
pending.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import operator
import sys
import zlib
from array import array
from collections import deque
from collections.abc import Iterator
from typing import IO, Annotated, Any, Final, Literal, cast

import msgspec
import numpy as np

from sephb.conformance.traces._verdicts import (
    DEFAULT_TOLERANCE_MS,
    SIDES,
    ClientTable,
    ClientVerdict,
    FileResult,
    Margin,
    Problem,
    _Measured,
)
from sephb.conformance.traces.clock import JITTER_BUDGET_S, tolerance_for
from sephb.conformance.traces.properties import (
    ACTS_ON,
    HIDDEN,
    ClientConfig,
)
from sephb.conformance.traces.trace import (
    ACTIONS,
    NESTED,
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
from sephb.model.interpretations import get
from sephb.model.protocol import SESSION_LIMIT_MS, Action, Event, Mode

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
#: Streams kept hot (as lists) before a pass parks the idle ones in their rows
#: (see "Memory for many clients" above); when a pass leaves more, the next one
#: waits for half as many again, so that a fleet whose clients are all busy pays
#: for a few passes only.
HOT_LIMIT = 1 << 16
#: A pass doubles the run's hot limit when more than one record in this many
#: since the last pass revived a parked stream: the streams in use at once are
#: more than the limit holds, and parking them costs more than their memory (a
#: fleet interleaved record by record would revive a stream at every record). A
#: fleet whose clients check in now and then revives one per check-in (a dozen
#: records or more) and stays compact.
REVIVALS: Final = 8
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
    #: Why a request failed (a client that gave up says so: REQ-X-ABORT).
    error: str | None = None


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


# --- per-client state ------------------------------------------------------------

# A hot client's state is a list, indexed by these, for speed on the hot path. _BY
# is the ``by`` value (the decoder's own string object, or None) of the records that
# ``_Run.by_client`` sends to it; _COLS the name -> column map its next record takes
# (with --data: whether the data properties need to see every record of it now);
# _ROW its row in _Streams; _MARK its event count at the last parking pass.
_NODE, _HIST, _LAST, _SIDE, _START, _OFFSET, _ROW, _BY, _PROPS, _COLS, _MARK = range(11)
# _Run.fast spells these as literals
assert (_NODE, _HIST, _LAST, _BY, _COLS) == (0, 1, 2, 7, 9)

#: A view's number in a parked row (the order of the report).
_SIDE_CODE: Final = {s: i for i, s in enumerate(SIDES)}
#: The ``by`` values a state keeps, by their number in a parked row. The strings are
#: the decoder's own (msgspec yields a Literal's value, this very object), so that
#: the hot path's ``is`` test holds for a revived state too.
_BYS: Final = (None, "client", "server", "har")
_BY_CODE: Final = {b: i for i, b in enumerate(_BYS)}
#: Node numbers of a parked row that stand for the dead node (after a violation)
#: and for no checkpoint (history from the start of the trace).
_DEAD_NODE: Final = 0xFFFF
_NO_NODE: Final = 0xFFFE
#: The last time a row's unsigned 64-bit column holds (as t + 1); a later ``t`` (JSON
#: integers have no bound) is kept beside the rows.
_MAX_ROW_T: Final = (1 << 64) - 2


def _side(by: str | None) -> str:
    return "server" if by == "server" else "client"


class _Streams:
    """A row per client stream (a client id in one view) of a file, numbered as
    first seen: the state of a parked stream, and an index from (view, id) to row.

    The columns are ``array``s and ``bytearray``s: no Python object per row. The
    index is open addressing with linear probing over an ``array('i')`` of rows,
    at most half full, keyed by the id's UTF-8 bytes and the view. A hot stream's
    row is stale (its list is the truth) until it is parked again. A history is
    stored in :attr:`hist` at :attr:`hist_at`, in room for :attr:`hist_cap` bytes
    that at least doubles when it must move, so that the room left behind stays
    less than the room in use."""

    def __init__(self) -> None:
        self.names = bytearray()
        self.name_at = array("Q", [0])
        #: the view's number | the ``by`` value's number << 2
        self.code = bytearray()
        self.node = array("H")
        self.start = array("H")
        #: t + 1 of the last record (0: none yet)
        self.last = array("Q")
        self.offset = array("Q")
        self.hist_at = array("Q")
        self.hist_len = array("I")
        self.hist_cap = array("I")
        self.hist = bytearray()
        self.slots = array("i", [-1]) * 1024

    def __len__(self) -> int:
        return len(self.code)

    def name(self, row: int) -> str:
        return self.names[self.name_at[row]:self.name_at[row + 1]].decode(
            "utf-8", "surrogatepass")

    def find(self, side: int, client: str) -> tuple[int, bool]:
        """(row, whether the stream had one): a new stream gets the next row."""
        key = client.encode("utf-8", "surrogatepass")
        slots, names, at, code = self.slots, self.names, self.name_at, self.code
        mask = len(slots) - 1
        i = (hash(key) + side) & mask
        while (row := slots[i]) >= 0:
            if code[row] & 3 == side and names[at[row]:at[row + 1]] == key:
                return row, True
            i = (i + 1) & mask
        row = len(code)
        names += key
        at.append(len(names))
        code.append(side)
        self.node.append(_NO_NODE)
        self.start.append(_NO_NODE)
        for column in (self.last, self.offset, self.hist_at, self.hist_len,
                       self.hist_cap):
            column.append(0)
        if 2 * len(code) > len(slots):
            self._grow()
        else:
            slots[i] = row
        return row, False

    def _grow(self) -> None:
        """Twice the slots, every row placed again (a Python loop; it runs
        log2(streams) times in all)."""
        slots = self.slots = array("i", [-1]) * (2 * len(self.slots))
        mask = len(slots) - 1
        names, at, code = self.names, self.name_at, self.code
        for row in range(len(code)):
            i = (hash(bytes(names[at[row]:at[row + 1]])) + (code[row] & 3)) & mask
            while slots[i] >= 0:
                i = (i + 1) & mask
            slots[i] = row

    def put(self, row: int, node: int, start: int, by: int, last: int, offset: int,
            hist: bytearray | deque[int]) -> None:
        """Park a stream's state in its row."""
        self.code[row] = (self.code[row] & 3) | by << 2
        self.node[row], self.start[row] = node, start
        self.last[row], self.offset[row] = last + 1, offset
        n = len(hist)
        if n > self.hist_cap[row]:
            cap = max(n, 2 * self.hist_cap[row])
            self.hist_at[row], self.hist_cap[row] = len(self.hist), cap
            self.hist += bytes(cap)
        at = self.hist_at[row]
        self.hist[at:at + n] = bytes(hist) if isinstance(hist, deque) else hist
        self.hist_len[row] = n

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
        assert all(len(t.nodes) < _NO_NODE for t in self.tables.values())
        #: The hot streams: view -> client id -> state.
        self.states: dict[str, dict[str, list[Any]]] = {s: {} for s in _HIDDEN_OF}
        #: The fast path's index: client id -> the hot state of the first view seen.
        self.by_client: dict[str, list[Any]] = {}
        #: Every stream's row; the parked ones' state.
        self.streams = _Streams()
        #: row -> a stream's verdict, once it has violated something.
        self.verdicts: dict[int, ClientVerdict] = {}
        #: row -> a stream's data properties (--data), hot or parked.
        self.props_of: dict[int, _Measured] = {}
        #: row -> the last time of a parked stream, when its row cannot hold it.
        self.late: dict[int, int] = {}
        #: Hot streams above which a parking pass comes (doubled on churn), and
        #: above which the next one does.
        self.hot_limit = self.next_pass = HOT_LIMIT
        #: Streams revived, and records read, since the last pass.
        self.revived = self.events_at_pass = 0
        self.result = FileResult(path, "ndjson")
        self.events = 0
        #: The block whose record positions :meth:`at` has mapped, and the map.
        self._mapped: list[Any] | None = None
        self._positions: dict[int, int] = {}

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

    def lookup(self, side: str, client: str) -> list[Any]:
        """The hot state of a stream: as it is, revived from its row, or new."""
        st = self.states[side].get(client)
        if st is None:
            row, known = self.streams.find(_SIDE_CODE[side], client)
            if known:
                st = self.unpark(row)
                self.revived += 1
            else:
                st = [self.start[side], bytearray(), -1, side, None, 0, row, side,
                      None, self.col_quiet, -1]
            self.states[side][client] = st
        return st

    def first(self, r: _Line) -> list[Any]:
        """The state of a client id not seen by the fast path yet (or parked since):
        its view is that of this record (``by_client`` keeps one view per id)."""
        st = self.lookup(_side(r.by), r.client)
        st[_BY] = r.by
        self.by_client[r.client] = st
        return st

    def other(self, r: _Line) -> list[Any]:
        """The state of a record whose ``by`` differs from the one ``by_client`` keeps
        for its id: the other view (or ``"client"`` spelled as no ``by``)."""
        return self.lookup(_side(r.by), r.client)

    def unpark(self, row: int) -> list[Any]:
        """A parked stream's state, as it was when it was parked."""
        s = self.streams
        code = s.code[row]
        side = SIDES[code & 3]
        nodes = self.tables[side].nodes
        number = s.node[row]
        node = self.dead if number == _DEAD_NODE else nodes[number]
        start = None if s.start[row] == _NO_NODE else nodes[s.start[row]]
        at = s.hist_at[row]
        hist: bytearray | deque[int] = _SINK if node is self.dead else \
            s.hist[at:at + s.hist_len[row]]
        props = self.props_of.get(row)
        cols = self.col_every if props is not None and props.watching \
            else self.col_quiet
        last = self.late.pop(row, None)
        return [node, hist, s.last[row] - 1 if last is None else last, side, start,
                s.offset[row], row, _BYS[code >> 2], props, cols, -1]

    def park(self, st: list[Any]) -> None:
        """Write a stream's state to its row (its history cut back first, as a
        fold would); the caller drops the list."""
        self.trim(st)
        node, start, last = st[_NODE], st[_START], st[_LAST]
        if last > _MAX_ROW_T:
            self.late[st[_ROW]] = last
            last = _MAX_ROW_T
        self.streams.put(st[_ROW], _DEAD_NODE if node is self.dead else node[-1],
                         _NO_NODE if start is None else start[-1], _BY_CODE[st[_BY]],
                         last, st[_OFFSET], st[_HIST])

    def peek(self, row: int) -> tuple[str, str, int, int]:
        """(client id, view, last time, events accepted) of a stream, hot or parked,
        read without changing anything (for a live monitor's report). A stream that
        violated something has the events before its violation."""
        s = self.streams
        client, side = s.name(row), SIDES[s.code[row] & 3]
        st = self.states[side].get(client)
        if st is not None:
            return client, side, st[_LAST], st[_OFFSET] + len(st[_HIST])
        last = self.late.get(row)
        return (client, side, s.last[row] - 1 if last is None else last,
                s.offset[row] + s.hist_len[row])

    def hot(self) -> int:
        """How many streams are hot."""
        return sum(len(states) for states in self.states.values())

    def park_idle(self) -> None:
        """Park the hot streams that accepted no event since the last pass."""
        left = 0
        by_client = self.by_client
        for states in self.states.values():
            idle = []
            for client, st in states.items():
                count = st[_OFFSET] + len(st[_HIST])
                if count == st[_MARK]:
                    idle.append(client)
                else:
                    st[_MARK] = count
            for client in idle:
                st = states.pop(client)
                self.park(st)
                if by_client.get(client) is st:
                    del by_client[client]
            left += len(states)
        if self.revived * REVIVALS > self.events - self.events_at_pass:
            self.hot_limit *= 2  # churn: the streams in use do not fit
        self.revived, self.events_at_pass = 0, self.events
        # Most left idle: the next pass at the limit again. Most busy (a fleet
        # whose clients all check in): half as many more first, so that passes
        # over busy streams stay few and the hot set holds them all.
        self.next_pass = max(self.hot_limit, left + left // 2)

    def bad(self, line: int | None, message: str) -> None:
        self.result.problem(Problem(self.path, line, message))

    def at(self, recs: list[Any], r: object) -> int:
        """The position of record ``r`` (this object, not an equal one) in the block
        ``recs``: a map of the block made once, at its first violation (a scan for
        each one made 100,000 violating clients cost minutes)."""
        if self._mapped is not recs:
            self._mapped = recs
            self._positions = {id(x): i for i, x in enumerate(recs)}
        return self._positions[id(r)]

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
                return self.at(recs, r)
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
                self.violate(st, r.client, r.event, t, first + self.at(recs, r))
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
            props = st[_PROPS] = self.props_of[st[_ROW]] = _Measured(
                self.tolerance_ms, self.config, st[_SIDE] != "client", self.mode,
                self.timing, _HAR_UNSEEN if st[_SIDE] == "har" else frozenset())
        found = props.feed(name, t, r.port, r.ids, r.duplicates, r.addr, r.error)
        st[_COLS] = self.col_every if props.watching else self.col_quiet
        if found is not None:
            self.violate(st, r.client, name, t, first + self.at(recs, r), found,
                         props.margin)
            return -1
        col = self.plain.get(name)
        return col if col is not None else self.by_fields[name, r.changed, r.source]

    def slow(self, side: str, client: str, name: str, t: int, changed: bool | None,
             source: str | None, role: str | None, line: int, rec: Any = None) -> None:
        """One record, any client: new clients, time order, every check spelled out.
        ``rec``: the decoded line, for the data properties (None: no fields)."""
        st = self.lookup(side, client)
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
            self.verdicts[st[_ROW]] = ClientVerdict(
                self.path, client, st[_SIDE], index + 1, False, line, t, requirement,
                name, [], before, [], f"event {index} (t={t} ms) {message}",
                reason=message, margin=margin)
        else:
            v = tables.explain(st[_NODE], bytes(st[_HIST]), name, index, t,
                               start=st[_START])
            self.verdicts[st[_ROW]] = ClientVerdict(
                self.path, client, st[_SIDE], v.index + 1, False, line, t,
                v.requirement, name, list(v.allowed), before,
                list(v.path[-KEEP_PATH:]), v.message,
                reason=v.reason)
        st[_NODE] = self.dead
        st[_HIST] = _SINK

    def fold(self) -> None:
        """Cut the hot streams' long histories back (:meth:`trim`)."""
        for states in self.states.values():
            for st in states.values():
                self.trim(st)

    def trim(self, st: list[Any]) -> None:
        """Cut a long history back to its last WINDOW columns (flat memory per
        client): the checkpoint moves forward by stepping the compiled automaton over
        the columns cut (one C-level reduce), and the window is made to hold an
        event, so that :meth:`Tables.explain` from the checkpoint stays exact."""
        hist = st[_HIST]
        keep = max(WINDOW, BEFORE)  # the events shown before a violation too
        if st[_NODE] is self.dead or len(hist) <= 2 * keep:
            return
        is_event = self.is_event
        cut = len(hist) - keep
        while cut > 0 and not any(is_event[c] for c in hist[cut:]):
            cut -= keep  # only actions lately: keep back to an event
        if cut <= 0:
            return
        start = st[_START] or self.start[st[_SIDE]]
        st[_START] = functools.reduce(operator.getitem, hist[:cut], start)
        del hist[:cut]
        st[_OFFSET] += cut

    def finish(self, end: int | None = None) -> FileResult:
        """The file's result (the run is over: every stream is parked and the
        deadlines still open are judged). ``end``: the model time the recording went
        on to, when it is later than its last record (a live monitor's clock); None:
        the last record, whoever's."""
        res = self.result
        res.events = self.events
        res.tolerance_ms, res.tolerance = self.tolerance_ms, self.tolerance_reason()
        head = self.header
        res.time_scale = head.time_scale if head is not None else self.option_scale
        res.header = None if head is None else {
            "line": self.header_line, "time_scale": head.time_scale,
            "writer": head.writer, "version": head.version}
        # Every stream parked: the rows hold every state.
        for states in self.states.values():
            for st in states.values():
                self.park(st)
            states.clear()
        self.by_client.clear()
        s = self.streams
        n = len(s)
        # The recording went on to its last record, whoever's: a deadline of a
        # client due before then was broken (it was silent past it); one due later
        # is pending.
        last = np.frombuffer(s.last, dtype=np.uint64)
        end = max(int(last.max()) - 1 if n else 0, *self.late.values(), 0,
                  -1 if end is None else end)
        for row, props in self.props_of.items():
            if row in self.verdicts:
                continue
            found = props.finish(end)
            if found is not None:
                self.violate(self.unpark(row), s.name(row), "(end of trace)", end, None,
                             found, props.margin)
                continue
            pending = [o.describe() for o in props.pending()]
            if pending:
                self.verdicts[row] = ClientVerdict(
                    self.path, s.name(row), SIDES[s.code[row] & 3],
                    s.offset[row] + s.hist_len[row], pending=pending)
        # Each stream's events, in place of its offset (no longer needed): no copy
        # of a column two million rows long.
        events = np.frombuffer(s.offset, dtype=np.uint64)
        events += np.frombuffer(s.hist_len, dtype=np.uint32)
        del events
        sides = np.frombuffer(s.code, dtype=np.uint8) & 3
        # Report order: by view, each in the order first seen (the rows' order).
        order = None
        flagged = self.verdicts
        if n and bool((sides[1:] < sides[:-1]).any()):
            perm = np.argsort(sides, kind="stable")
            order = array("q", perm.astype(np.int64).tobytes())
            position = np.empty(n, dtype=np.int64)
            position[perm] = np.arange(n)
            flagged = {int(position[row]): v for row, v in self.verdicts.items()}
        res.clients = ClientTable(self.path, s.names, s.name_at, sides.tobytes(),
                                  s.offset, order, flagged)
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
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                recs = None  # a deeply nested line: the careful path names it
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
        if run.hot() > run.next_pass:
            run.park_idle()


def _careful(run: _Run, raw: bytes, line: int, last: bool) -> _Line | None:
    """One line the fast path did not take: decode it slowly, report what is wrong.
    The record it fed to the run (None: a blank line, a header, a bad line)."""
    if not raw.strip():
        return None
    try:
        rec: _Line | None = run.decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        rec = None
    if rec is None:
        try:
            full = _CAREFUL.decode(raw)
        except msgspec.ValidationError as exc:
            if not run.header_at(raw, line):  # a header is no record, nor a bad line
                run.bad(line, f"bad record: {exc}")
            return None
        except msgspec.DecodeError as exc:
            hint = " (truncated last line?)" if last else ""
            run.bad(line, f"bad JSON: {exc}{hint}")
            return None
        except RecursionError:
            # msgspec's decoder recurses per level of nesting: a line of brackets
            # under the length cap would otherwise end the whole run.
            run.bad(line, f"bad JSON: {NESTED}")
            return None
        run.bad(line, problem(full) or "bad record")
        return None
    run.events += 1
    run.slow(_side(rec.by), rec.client, rec.event, rec.t,
             rec.changed, rec.source, rec.role, line, rec)
    return rec


def _har(path: str, run: _Run) -> None:
    from sephb.conformance.traces.har import HarError, har_events

    run.result.format = "har"
    try:
        for ev in har_events(path, time_scale=run.option_scale or 1.0,
                             warn=run.result.warnings.append):
            run.events += 1
            # With --data, the fields the properties read, as a trace line has them.
            # (har_events gives only the sources _DataLine admits, or None.)
            rec = _DataLine(ev.t, ev.client, ev.event, "server", None, ev.changed,
                            cast(Any, ev.source), ev.addr, ev.port, ev.ids,
                            None, ev.error) if run.data else None
            run.slow("har", ev.client, ev.event, ev.t, ev.changed, ev.source, None,
                     ev.line, rec)
    except HarError as exc:
        run.bad(exc.line, exc.what)


def _sniff(path: str) -> str:
    if path.endswith((".har", ".har.gz")):
        return "har"
    return "ndjson"
