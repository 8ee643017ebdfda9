"""What offline validation finds: per client a verdict, per file a result, and the
input problems and timing margins they carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sephb.conformance.traces.properties import (
    TraceProperties,
)
from sephb.model.protocol import SESSION_LIMIT_MS

# --- results ---------------------------------------------------------------------


#: Model ms of recording jitter the timing rules allow by default, and at least when
#: the tolerance follows a recorded time scale.
DEFAULT_TOLERANCE_MS: Final = 1000


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
