"""Deadlines: what the table makes mandatory, and by when (bounded liveness).

Theory of operation
-------------------
The transition table says what a client *may* do next; a trace checker built from it
judges safety (nothing out of order, nothing too early). It cannot say that anything
*happens*: a client that stops after an answer, waits for ever on a request, or never
checks in again leaves a trace with nothing wrong in it. The seed makes some moves
mandatory and bounds them in time, and those obligations are data here, next to the
table and read off it, never restated by hand:

``act-at-once``
    An answer is acted on at once: after an event the client does not choose (the
    manager's answer, a pushed change, the end of a hold), the entry action of the
    state the table leads to comes next, within the run's tolerance. It is what makes
    the step-7 close of a pull check-in (``SENSORS_ACKED`` -> ``DISCONNECT``), a pushed
    change's index request (``POLICY_PUSHED`` -> ``GET_INDEX``, "immediately") and
    every other entry action *required* rather than merely allowed. Failures are not
    openers: after one, the client may go where no recorder sees it (a refused
    connect), except where every row of the failure leads to another request.
``request``
    A request after the session is established (URLs, content, logs, sensors) is
    answered or given up within the request limit (the seed bounds only the session:
    ambiguity A12 reads the bound).
``next-heartbeat``
    After a check-in ends, the next one begins by the interval (REQ-7-PULL "check in
    again at the next heartbeat interval"), counted from the anchor the
    interpretation reads (A11: the start of the check-in that ended, or its end), plus
    the sylink.xml's ``RandomizationRange`` when it enables randomization (A15).

The session limit (REQ-2-TIMEOUT-30000, both ways: not kept past 30,000 ms and not
given up before it) is the fourth deadline; it lives in
:class:`sephb.conformance.traces.properties.SessionLimit`, which both judges share, with the
same tolerance.

:class:`Deadlines` judges a stream of record names with these rules, one instance per
client: it is pure (names and model times in, findings out) and serves the suite's
oracle, offline validation and any live monitor alike. On a finite trace a deadline
still open at its end is *pending* (:meth:`Deadlines.pending`): neither a pass nor a
failure, the presumptive verdict of a runtime monitor.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from .protocol import (
    ENTRY,
    GUARDS,
    INITIAL,
    ON_ERROR,
    ON_TIMEOUT,
    REST_STATES,
    SESSION_LIMIT_MS,
    SESSION_PENDING,
    TABLE,
    Action,
    Event,
    Guard,
    Mode,
    Row,
    Scope,
    State,
    Switch,
)

__all__ = [
    "ACT_OPENERS",
    "DEADLINES",
    "FIRST_HEARTBEAT",
    "HEARTBEAT_STARTS",
    "JUDGED_ELSEWHERE",
    "Anchor",
    "Bound",
    "Deadline",
    "Deadlines",
    "Open",
    "RequestLimit",
    "Timing",
    "act_requirement",
    "next_actions",
]


class Anchor(enum.Enum):
    """What the heartbeat interval counts from (ambiguity A11)."""

    #: The start of the check-in that ended: heartbeats keep a period (a check-in that
    #: ran past the interval is followed by the next at once).
    START = "start"
    #: The end of the check-in (its close, or its failure).
    END = "end"


class RequestLimit(enum.Enum):
    """How long a request after the session may wait for its answer (A12)."""

    #: The session limit again: 30,000 ms per request.
    SESSION = "session"
    #: Until the next heartbeat is due: one heartbeat interval.
    INTERVAL = "interval"


@dataclass(frozen=True)
class Timing:
    """An interpretation's reading of the seed's timing silences."""

    anchor: Anchor = Anchor.START
    request_limit: RequestLimit = RequestLimit.SESSION

    def request_limit_ms(self, interval_ms: int) -> int:
        return SESSION_LIMIT_MS if self.request_limit is RequestLimit.SESSION \
            else interval_ms

    def next_heartbeat_ms(self, ended: int, anchor: int | None, interval_ms: int) -> int:
        """When the next heartbeat is due after a check-in that began at ``anchor``
        (None: not seen) ended at ``ended``. Never before the end."""
        if self.anchor is Anchor.END or anchor is None:
            return ended + interval_ms
        return max(ended, anchor + interval_ms)

    def to_json(self) -> dict[str, str]:
        return {"interval_anchor": self.anchor.value,
                "request_limit": self.request_limit.value}


class Bound(enum.Enum):
    """How long a deadline gives the client (the run's tolerance comes on top)."""

    #: At once: 0 ms.
    AT_ONCE = "at once"
    #: The session limit, 30,000 ms (both ways: not later, not earlier).
    SESSION = "session limit"
    #: The request limit of the interpretation (:class:`RequestLimit`).
    REQUEST = "request limit"
    #: The heartbeat interval from its anchor (:class:`Anchor`), plus randomization.
    INTERVAL = "interval"
    #: The push heartbeat interval from the opening record (a held request).
    HOLD = "push heartbeat"


@dataclass(frozen=True)
class Deadline:
    """One timing obligation: records that open it, records that meet it, its
    bound, and the requirement it enforces (None: the requirement of the row the
    opening event takes, :func:`act_requirement`)."""

    id: str
    bound: Bound
    requirement: str | None
    text: str
    #: Record names that open it, per mode (None: unknown mode).
    opens: dict[Mode | None, frozenset[str]]
    closes: frozenset[str]
    #: A second opening while it is open starts it again (a new request) instead of
    #: keeping the first (an answer not acted on stays not acted on).
    restarts: bool = False
    #: The finding when it is broken; formatted with the :class:`Open`'s fields and
    #: ``now``, ``late`` (ms past the due time) and ``tol`` (the tolerance).
    broken: str = "{text}: opened by {opener} at t={opened}, due by t={due}; still " \
                  "not met at t={now}"
    #: What it is traced to: seed steps and ambiguities (docs/spec-review.md).
    sources: tuple[str, ...] = ()
    #: Who judges it, when not :class:`Deadlines` (None: the monitor).
    judged_by: str | None = None
    #: The interpretation switch whose rows make it mandatory (None: every reading).
    switch: Switch | None = None

    def bound_text(self, timing: Timing, interval_ms: int) -> str:
        """The bound under a timing reading, in words (for docs and reports)."""
        if self.bound is Bound.AT_ONCE:
            return "0 ms"
        if self.bound is Bound.SESSION:
            return f"{SESSION_LIMIT_MS:,} ms, and not before it"
        if self.bound is Bound.REQUEST:
            return f"{timing.request_limit_ms(interval_ms):,} ms"
        if self.bound is Bound.HOLD:
            return f"PushHeartbeatSeconds ({interval_ms:,} ms by default) from the hold"
        start = "the check-in's start (never before its end)" \
            if timing.anchor is Anchor.START else "the check-in's end"
        return f"the interval ({interval_ms:,} ms by default) from {start}, plus " \
               f"RandomizationRange when enabled"


# --- what the deadlines read off the table ------------------------------------------

_ACTIONS: Final = frozenset(a.value for a in Action)
_EVENTS: Final = frozenset(e.value for e in Event)
_FAILURES: Final = frozenset(ON_ERROR) | frozenset(ON_TIMEOUT)
#: Entry actions that are requests on a connection (not a connect or close).
_REQUESTS: Final = frozenset(ENTRY[s] for s in ENTRY) - {Action.CONNECT,
                                                           Action.DISCONNECT}
_DISCONNECT: Final = ENTRY[INITIAL].value
_HEARTBEAT_DUE: Final = Event.HEARTBEAT_DUE.value


def _mode_allows(row: Row, mode: Mode | None) -> bool:
    """Whether a row's configuration guard can hold in ``mode`` (None: only rows no
    mode guard excludes in either mode, so a rule holds whatever the mode is)."""
    guard = row.guard
    if guard not in (Guard.PULL_MODE, Guard.PUSH_MODE):
        return True
    if mode is None:
        return False
    return (guard is Guard.PULL_MODE) is (mode is Mode.PULL)


def _acted_on(event: Event, mode: Mode | None) -> bool:
    """Whether the table makes the client act at once on ``event`` in ``mode``: it
    is not a failure (after one, the client may go where no recorder sees it), or
    every row of it leads to another request; and some row of it is allowed."""
    # Whatever the mode decides among an event's rows, each leads to an entry action:
    # with the mode unknown, every row counts.
    rows = [r for r in TABLE if r.event is event
            and (mode is None or _mode_allows(r, mode))]
    if not rows:
        return False
    if event is Event.HEARTBEAT_DUE:
        # From the initial state it is the client's own timer: a heartbeat that is
        # due is the next-heartbeat deadline's. Only the end of a held push request
        # (the manager's 204) is an answer to act on.
        return mode is Mode.PUSH
    return event not in _FAILURES or all(ENTRY[r.dest] in _REQUESTS for r in rows)


#: Per mode, the event names after which an action must come at once.
ACT_OPENERS: Final[dict[Mode | None, frozenset[str]]] = {
    m: frozenset(e.value for e in Event if _acted_on(e, m)) for m in (*Mode, None)
}


def next_actions(name: str, mode: Mode | None) -> frozenset[str]:
    """The entry actions an event can lead to at once in ``mode`` (any, unknown)."""
    event = Event(name)
    return frozenset(ENTRY[r.dest].value for r in TABLE if r.event is event
                     and (mode is None or _mode_allows(r, mode)))


def act_requirement(name: str, mode: Mode | None) -> str:
    """The requirement an answer left unacted breaks: that of the first row, in table
    order, the event takes in ``mode`` (a held push's rows first for a push
    heartbeat)."""
    event = Event(name)
    rows = [r for r in TABLE if r.event is event
            and (mode is None or _mode_allows(r, mode))]
    held = [r for r in rows if r.source in REST_STATES and r.source is not INITIAL]
    return (held or rows)[0].requirement


#: Records that end a check-in (in ``mode``): the initial state's entry action, and
#: the events of rows into the initial state.
_ENDS: Final[dict[Mode | None, frozenset[str]]] = {
    m: frozenset({_DISCONNECT} | {r.event.value for r in TABLE
                                  if r.dest is INITIAL and _mode_allows(r, m)})
    for m in (*Mode, None)
}
#: Records that begin a heartbeat: the events leaving the initial state (seen in a
#: client's own view) and its connect (the first a server sees).
HEARTBEAT_STARTS: Final = frozenset(
    {r.event.value for r in TABLE if r.source is INITIAL}
    | {ENTRY[r.dest].value for r in TABLE if r.source is INITIAL})

#: The rows a push heartbeat ends a hold by, and what a hold opens and ends with.
_PUSH_HEARTBEAT_ROWS: Final = tuple(r for r in TABLE
                                    if r.when == (Switch.PUSH_HEARTBEAT, True))
assert len({r.source for r in _PUSH_HEARTBEAT_ROWS}) == 1
_HELD: Final[State] = _PUSH_HEARTBEAT_ROWS[0].source
_NEXT_HEARTBEAT: Final = "next-heartbeat"
#: The deadline a client's start opens (the suite's oracle knows when it started).
FIRST_HEARTBEAT: Final = "first-heartbeat"
DEADLINES: Final[tuple[Deadline, ...]] = (
    Deadline(
        "act-at-once", Bound.AT_ONCE, None,
        "an answer is acted on at once: the entry action of the state the table "
        "leads to follows it (the step-7 close, a pushed change's index request)",
        ACT_OPENERS, _ACTIONS,
        broken="{opener} at t={opened} was not acted on at once: no action of the "
               "client by t={now} ({late} ms past it, tolerance {tol} ms)",
        sources=("the table's entry actions (steps 3-7: the client performs each "
                 "step after the last)", "step 7: 'SEP client disconnects from SEPM'",
                 "A13-PUSH-AT-ONCE")),
    Deadline(
        "request", Bound.REQUEST, "REQ-X-ABORT",
        "a request after the session is established is answered or given up within "
        "the request limit",
        dict.fromkeys((*Mode, None), frozenset(
            ENTRY[s].value for s in ENTRY
            if s not in SESSION_PENDING and s not in REST_STATES)),
        _EVENTS | {_DISCONNECT}, restarts=True,
        broken="{opener} at t={opened} was neither answered nor given up by t={due} "
               "(the request limit); at t={now} the client still waited ({late} ms "
               "late, tolerance {tol} ms)",
        sources=("REQ-X-ABORT (derived: the check-in ends and the client tries again "
                 "at the next heartbeat)", "A12-REQUEST-LIMIT")),
    Deadline(
        _NEXT_HEARTBEAT, Bound.INTERVAL, "REQ-7-PULL",
        "after a check-in ends, the next heartbeat begins by the interval",
        _ENDS, HEARTBEAT_STARTS,
        broken="the check-in ended at t={opened} ({opener}) and the next heartbeat "
               "was due by t={due} (the interval from the anchor this reading counts "
               "it from, A11); at t={now} none had begun ({late} ms late, tolerance "
               "{tol} ms)",
        sources=("step 7: 'the SEP client will check in again at the next heartbeat "
                 "interval'", "A11-INTERVAL-ANCHOR", "A15-RANDOMIZATION")),
    Deadline(
        "push-heartbeat", Bound.HOLD, _PUSH_HEARTBEAT_ROWS[0].requirement,
        "a push-mode client still checks in every PushHeartbeatSeconds: a held "
        "request ends (the push heartbeat, a pushed change, a lost or closed "
        "connection) by the push heartbeat interval from when it was sent",
        {Mode.PUSH: frozenset({ENTRY[_HELD].value})},
        frozenset({r.event.value for r in TABLE if r.source is _HELD} | {_DISCONNECT}),
        switch=Switch.PUSH_HEARTBEAT,
        broken="the client held its push request from t={opened} and its push "
               "heartbeat was due by t={due} (PushHeartbeatSeconds, A6); at t={now} "
               "the hold had not ended ({late} ms late, tolerance {tol} ms): with "
               "X-Sephb-Hold-Ms the manager ends it then",
        sources=("KB 151377: PushHeartbeatSeconds (documented reading)",
                 "A6-PUSH-HEARTBEAT")),
)
#: Deadlines judged by code that needs more than record names (the session's
#: pending set, the environment's knowledge of refusing managers); listed here so
#: that docs and the review have every timing obligation in one place.
JUDGED_ELSEWHERE: Final[tuple[Deadline, ...]] = (
    Deadline(
        "session", Bound.SESSION, "REQ-2-TIMEOUT-30000",
        "a session is established or given up within the session limit, and a "
        "stalled one is not given up before it",
        {}, frozenset(), judged_by="properties.SessionLimit (the suite and validate)",
        sources=("step 2: 'If session cannot be established within 30,000 "
                 "milliseconds, check-in process terminates'", "A14-EARLY-GIVE-UP")),
    Deadline(
        "failover", Bound.AT_ONCE, "REQ-2-FAILOVER",
        "under a reading with failover, a failed session is followed at once by a "
        "connect to another manager, down the priority order, when one not tried in "
        "the heartbeat is reachable",
        {}, frozenset(), judged_by="properties.Oracle (the suite: it knows which "
                                   "managers refuse)",
        sources=("KB 151377 (documented reading)", "A1-FAILOVER")),
    Deadline(
        FIRST_HEARTBEAT, Bound.AT_ONCE, "REQ-7-PULL",
        "a client's first heartbeat begins at once when it starts (and when it is "
        "started again): a process is allowed the time it takes to start",
        {}, HEARTBEAT_STARTS, judged_by="suite.Oracle.started (the suite: it knows "
                                        "when it started the client)",
        broken="the client started at t={opened} and its first heartbeat was due at "
               "once (A10; by t={due}, allowing the process its start); at t={now} "
               "no manager of the site had seen it begin ({late} ms late, tolerance "
               "{tol} ms; a connect to an address or port sylink.xml does not name "
               "reaches none)",
        sources=("KB 156653: the first heartbeat at start", "A10-FIRST-AND-ACCELERATED")),
)
#: Config-scoped guards are the only ones the deadlines read (the mode).
assert all(GUARDS[g].scope is Scope.CONFIG for g in (Guard.PULL_MODE, Guard.PUSH_MODE))


@dataclass
class Open:
    """A deadline that has been opened and not yet met."""

    deadline: str
    requirement: str
    #: The record that opened it, and when.
    opener: str
    opened: int
    #: Model time by which it must be met (the tolerance comes on top).
    due: int
    text: str
    closes: frozenset[str]
    broken: str = Deadline.broken
    #: A caller's excuse already gave it more time once (see ``Deadlines.excuse``).
    excused: bool = False
    #: Model ms an excuse for the client's lack of a CPU has added to ``due``.
    starved_ms: int = 0

    def describe(self) -> str:
        return f"{self.deadline} ({self.requirement}): {self.text}; opened by " \
               f"{self.opener} at t={self.opened}, due by t={self.due}"


@dataclass
class Deadlines:
    """The deadline monitor of one client: feed it record names in time order.

    ``tolerance_ms`` is the slack a recording needs (scheduling jitter); a deadline
    is broken when a record comes, or the clock reaches (:meth:`overdue`), a time
    later than its due time plus the tolerance. ``next_heartbeat``: whether the
    next-heartbeat rule runs (a server's recording may not see a heartbeat that met
    only refusing managers; see :mod:`sephb.conformance.traces.properties`).
    ``heartbeat_slack_ms``: extra time the first *visible* record of a heartbeat may
    come after its start (failovers a recorder cannot see).
    """

    timing: Timing
    mode: Mode | None
    interval_ms: int
    tolerance_ms: int = 0
    randomization_ms: int = 0
    next_heartbeat: bool = True
    heartbeat_slack_ms: int = 0
    #: Actions whose time this view does not record (a HAR shows no closes: its
    #: reader puts a DISCONNECT where the next connection begins). An answer that
    #: may lead to one of them cannot be judged "acted on at once" in this view.
    unseen: frozenset[str] = frozenset()
    open: dict[str, Open] = field(default_factory=dict)
    #: Asked before a deadline is reported broken: a later due time when the caller
    #: knows the obligation may have been met where no recorder saw it (the suite
    #: knows which managers refused), or None.
    excuse: Callable[[Open, int], int | None] | None = None
    #: The interpretation's switches: a deadline of a switch runs where it is on.
    switches: Mapping[Switch, bool] = field(default_factory=dict)
    #: When the last heartbeat began (the interval's start anchor), if seen.
    anchor: int | None = None
    #: The deadline :meth:`overdue` last reported broken (None: none yet), for a
    #: report of how late it was: ``now - broken.due``.
    broken: Open | None = None
    _rules: tuple[Deadline, ...] = field(init=False)

    def __post_init__(self) -> None:
        self._rules = tuple(d for d in DEADLINES
                            if (self.next_heartbeat or d.bound is not Bound.INTERVAL)
                            and (d.switch is None or self.switches.get(d.switch)))
        self._openers = {d.id: d.opens.get(self.mode, frozenset()) for d in self._rules}
        if self.unseen:
            self._openers["act-at-once"] = frozenset(
                n for n in self._openers["act-at-once"]
                if not next_actions(n, self.mode) & self.unseen)
        #: Every name that opens or closes something (others cost one set lookup).
        self.names = frozenset().union(
            *self._openers.values(), *(d.closes for d in self._rules))

    @property
    def watching(self) -> bool:
        """Whether any deadline is open (every record may then break it)."""
        return bool(self.open)

    def overdue(self, now: int) -> tuple[str, str] | None:
        """The first deadline (by due time) broken at ``now``, as (requirement,
        message); it is forgotten (reported once)."""
        while self.open:
            late = min(self.open.values(), key=lambda o: o.due)
            if now <= late.due + self.tolerance_ms:
                return None
            later = None if self.excuse is None else self.excuse(late, now)
            if later is None or later <= late.due:
                break
            late.due = later
        else:
            return None
        del self.open[late.deadline]
        self.broken = late
        return late.requirement, late.broken.format(
            text=late.text, opener=late.opener, opened=late.opened, due=late.due,
            now=now, late=now - late.due, tol=self.tolerance_ms)

    def feed(self, name: str, t: int) -> tuple[str, str] | None:
        """One record of the client: the deadline it shows broken (requirement,
        message), or None. A record later than a due time breaks that deadline,
        whatever the record is."""
        found = self.overdue(t)
        if found is not None:
            return found
        if name not in self.names:
            return None
        met_heartbeat = False
        for key in [k for k, o in self.open.items() if name in o.closes]:
            del self.open[key]
            met_heartbeat = met_heartbeat or key == _NEXT_HEARTBEAT
        for d in self._rules:
            if name in self._openers[d.id] and (d.restarts or d.id not in self.open):
                self._open(d, name, t)
        # The interval's start anchor: a heartbeat's first record (a push heartbeat
        # too). A connect after a failover is not a new heartbeat; taking one as the
        # anchor only ever moves it later, which no correct client can break.
        if name in HEARTBEAT_STARTS and (name == _HEARTBEAT_DUE or met_heartbeat
                                         or self.anchor is None):
            self.anchor = t
        return None

    def _open(self, d: Deadline, name: str, t: int) -> None:
        if d.bound is Bound.AT_ONCE:
            due = t
        elif d.bound is Bound.REQUEST:
            due = t + self.timing.request_limit_ms(self.interval_ms)
        elif d.bound is Bound.HOLD:
            due = t + self.interval_ms
        else:
            due = self.timing.next_heartbeat_ms(t, self.anchor, self.interval_ms) \
                + self.randomization_ms + self.heartbeat_slack_ms
        requirement = d.requirement or act_requirement(name, self.mode)
        self.open[d.id] = Open(d.id, requirement, name, t, due, d.text, d.closes,
                               d.broken)

    def expect(self, deadline: str, requirement: str, opener: str, t: int, due: int,
               text: str, closes: Iterable[str], broken: str = Deadline.broken
               ) -> None:
        """Open a deadline of the caller's (one that needs what only an environment
        knows, such as which managers are reachable)."""
        self.open[deadline] = Open(deadline, requirement, opener, t, due, text,
                                   frozenset(closes), broken)
        self.names = self.names | frozenset(closes)

    def pending(self) -> list[Open]:
        """Deadlines still open, by due time: at the end of a finite trace, neither
        met nor broken."""
        return sorted(self.open.values(), key=lambda o: o.due)
