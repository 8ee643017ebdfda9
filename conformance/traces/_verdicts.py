"""What offline validation finds: per client a verdict, per file a result, and the
input problems and timing margins they carry.

A fleet's trace holds millions of clients and a hostile one millions of bad lines,
so a :class:`FileResult` is bounded where it can be and compact where it cannot:
it keeps the first :data:`MAX_PROBLEMS` input problems and counts the rest, and its
:class:`ClientTable` holds a conformant client with nothing pending as a name, a
view and an event count in flat columns (a ClientVerdict is made when one is read).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, overload

from sephb.conformance.traces.properties import (
    REQUEST_FAILS,
    TraceProperties,
)
from sephb.model.protocol import SESSION_LIMIT_MS

# --- results ---------------------------------------------------------------------


#: Model ms of recording jitter the timing rules allow by default, and at least when
#: the tolerance follows a recorded time scale.
DEFAULT_TOLERANCE_MS: Final = 1000
#: Input problems a file's result keeps (the first ones); the rest are counted
#: (:attr:`FileResult.problem_count`). A file of a million bad lines needs a
#: few examples and a count, not a million messages in memory.
MAX_PROBLEMS: Final = 1000


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


@dataclass(slots=True)
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


#: The views of a client, in the order a file's verdicts are reported.
SIDES: Final = ("server", "client", "har")


class ClientTable(Sequence[ClientVerdict]):
    """Every client's verdict in one file, in the order they are reported: the
    server views, then the client views, then a HAR's, each in the order first seen.

    Compact, for a fleet of millions: a client that is conformant with nothing
    pending is a row of flat columns (its id in one byte string, its view, its
    event count; some 25 bytes) and becomes a :class:`ClientVerdict` only when it
    is read. The others (violations, pending deadlines) are kept as verdicts,
    :meth:`flagged`. It reads like a list (``len``, indexing, iteration) and two
    tables are equal when their verdicts are."""

    __slots__ = ("_events", "_flagged", "_name_at", "_names", "_order", "_path",
                 "_sides")

    def __init__(self, path: str = "", names: bytes | bytearray = b"",
                 name_at: Sequence[int] = (0,), sides: bytes | bytearray = b"",
                 events: Sequence[int] = (), order: Sequence[int] | None = None,
                 flagged: dict[int, ClientVerdict] | None = None) -> None:
        """Rows are numbered as first seen: row ``i`` is client
        ``names[name_at[i]:name_at[i + 1]]`` (UTF-8) of view ``SIDES[sides[i]]``
        with ``events[i]`` events. ``order``: the rows in report order (None: the
        rows' own order); ``flagged``: report position -> the verdict of a client
        that is not plainly conformant."""
        self._path, self._names, self._name_at = path, names, name_at
        self._sides, self._events, self._order = sides, events, order
        self._flagged = flagged or {}

    @classmethod
    def of(cls, verdicts: Iterable[ClientVerdict]) -> ClientTable:
        """A table of these verdicts, in this order (all of them kept as they are)."""
        return cls(flagged=dict(enumerate(verdicts)), sides=b"")

    def __len__(self) -> int:
        return len(self._sides) or len(self._flagged)

    @overload
    def __getitem__(self, i: int) -> ClientVerdict: ...
    @overload
    def __getitem__(self, i: slice) -> list[ClientVerdict]: ...
    def __getitem__(self, i: int | slice) -> ClientVerdict | list[ClientVerdict]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"client {i} of {n}")
        v = self._flagged.get(i)
        if v is not None:
            return v
        row = i if self._order is None else int(self._order[i])
        a, b = self._name_at[row], self._name_at[row + 1]
        return ClientVerdict(self._path, self._names[a:b].decode("utf-8", "surrogatepass"),
                             SIDES[self._sides[row]], int(self._events[row]))

    def __iter__(self) -> Iterator[ClientVerdict]:
        for i in range(len(self)):
            yield self[i]

    def raw(self) -> Iterator[ClientVerdict | tuple[str, str, int]]:
        """The clients in report order: a verdict, or (client, view, events) for a
        plainly conformant one (what it would say; no object made)."""
        flagged, order, names, at = self._flagged, self._order, self._names, self._name_at
        sides, events = self._sides, self._events
        for i in range(len(self)):
            v = flagged.get(i)
            if v is not None:
                yield v
                continue
            row = i if order is None else order[i]
            yield (names[at[row]:at[row + 1]].decode("utf-8", "surrogatepass"),
                   SIDES[sides[row]], events[row])

    def flagged(self) -> list[ClientVerdict]:
        """The verdicts of the clients that are not plainly conformant (violating,
        or with deadlines pending), in report order."""
        return [self._flagged[i] for i in sorted(self._flagged)]

    @property
    def violating(self) -> int:
        """How many clients violated the model."""
        return sum(not v.conformant for v in self._flagged.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientTable):
            return NotImplemented
        return len(self) == len(other) and all(
            a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable contents, like a list

    def __repr__(self) -> str:
        head = ", ".join(repr(v) for v in self[:10])
        more = f", ... {len(self) - 10:,} more" if len(self) > 10 else ""
        return f"ClientTable([{head}{more}])"


@dataclass
class FileResult:
    path: str
    format: str
    events: int = 0
    clients: ClientTable = field(default_factory=ClientTable)
    #: The first :data:`MAX_PROBLEMS` input problems, in file order.
    problems: list[Problem] = field(default_factory=list)
    #: All input problems, kept or not.
    problem_count: int = 0
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
    #: What the reading of this file assumed and a user should know (never a
    #: violation nor an input problem: the exit status does not change).
    warnings: list[str] = field(default_factory=list)
    #: Set when the validation of this file stopped on an error of ``sephb`` itself
    #: (a bug, never the input's fault): what it was. The file's verdicts are then
    #: lost, not those of the other files.
    error: str | None = None

    def problem(self, problem: Problem) -> None:
        """Count an input problem; keep it if it is among the first
        :data:`MAX_PROBLEMS`."""
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)


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
             addr: str | None = None, error: str | None = None
             ) -> tuple[str, str] | None:
        # Every record of --data comes here: reads only, and the base's feed called
        # directly (super() costs a lookup a record).
        since, last, broken = self._session.since, self._last_heartbeat, \
            self._push_broken
        push = self._push
        held = None if push is None else push._held_at
        asked = self._requests.asked() if name in REQUEST_FAILS else None
        found = _feed(self, name, t, port, ids, duplicates, addr, error)
        if found is None:
            if broken is None and self._push_broken is not None:
                self._closed_early = self._early_close(held, t)
            return None
        self.margin = self._measure(found, t, since, last, broken, asked=asked)
        return found

    def finish(self, end: int) -> tuple[str, str] | None:
        since = self._session.since
        found = super().finish(end)
        if found is not None:
            self.margin = self._measure(found, end, since, None, None, at_end=True)
        return found

    def _measure(self, found: tuple[str, str], t: int, since: int | None,
                 last: int | None, broken: str | None, *, at_end: bool = False,
                 asked: int | None = None) -> Margin | None:
        tol = self.tolerance_ms
        requirement, message = found
        if requirement == "REQ-X-ABORT" and asked is not None \
                and self.deadlines.broken is None:
            bound = asked + self._requests.limit_ms
            return Margin("request", "early", bound, bound - t, tol)
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
