"""The rules that judge records: the model's checker plus data properties.

Theory of operation
-------------------
The suite sees a client only as its servers do: the trace records they make
(``by: "server"``). Two kinds of judgement run on every record:

* **control**: :class:`sephb.model.checker.Checker`, compiled from the transition
  table, tracks the set of model states consistent with the records so far. Events a
  server cannot see (the client's own timers, a refused connect) are hidden and
  closed over. An empty set is a violation naming the requirement of the state the
  client should have been in.
* **data**: what the control states cannot say, checked here against what the
  environment knows (which managers it made unavailable, how many logs the client
  produced, the configured ports and interval): the first manager by priority, the
  30,000 ms session limit and the interval, the content ports, logs neither lost nor
  uploaded twice, a held push connection kept.

Two judges apply them: the suite's :class:`~sephb.conformance.suite.oracle.Oracle`
(live, knowing the environment) and, offline (``sephb validate --data``),
:class:`TraceProperties` (the records alone). The rules both apply,
:class:`SessionLimit`, :class:`LogLedger` and :class:`PushHold`, are written once,
here. The properties
read the model's parameters and the sets of names they act on off the table
(:mod:`sephb.model.protocol`: which records open, end or fail a session, which fail
an upload, which begin and end a push hold, each download's port); they never
restate a transition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sephb.conformance.traces.wire import GAVE_UP
from sephb.model.deadlines import DEADLINES, Deadlines, Open, Timing
from sephb.model.interpretations import Interpretation, Selection
from sephb.model.protocol import (
    ENTRY,
    HEARTBEAT_INTERVAL_S,
    INITIAL,
    ON_ERROR,
    ON_TIMEOUT,
    PARAMETERS,
    SESSION_LIMIT_MS,
    SESSION_PENDING,
    TABLE,
    Action,
    Event,
    Mode,
    State,
    Switch,
)

#: What servers cannot observe: the client's timers, its connect (the server sees
#: the connection, recorded as the client's CONNECT), and failures that leave no
#: trace at a server (a refused or dropped connect, a GUP that is down). A failed
#: answer, a request the client gave up on, and a dropped held connection are
#: recorded by the server that caused or saw them, so they are not hidden.
HIDDEN = frozenset({Event.HEARTBEAT_DUE, Event.CONNECTED, Event.SESSION_TIMEOUT,
                    Event.CONNECT_FAILED, Event.DOWNLOAD_FAILED})
#: In process the world sees refused connects too (it plays the network): only the
#: client's timers and a connect that never completes stay hidden.
HIDDEN_IN_PROCESS = frozenset({Event.HEARTBEAT_DUE, Event.CONNECTED,
                               Event.SESSION_TIMEOUT})


#: The requirements the oracle's data rules judge (beyond the table's rows and the
#: deadlines): the first manager by priority, the content ports, logs neither lost nor
#: uploaded twice. Every run lists them
#: (:func:`sephb.conformance.suite.requirements_of`).
DATA_REQUIREMENTS: Final = ("REQ-1-PRIORITY", "REQ-4-PORT-8014", "REQ-4-PORT-2967",
                            "REQ-5-LOGS")


@dataclass(frozen=True)
class Finding:
    """A violation: which requirement, what happened, where in the trace."""

    requirement: str
    message: str
    #: The 0-based position, among the records fed, of the record that broke the
    #: requirement; None when time alone did (a deadline passed).
    index: int | None
    t: int
    #: What the model allowed instead, when the transition table was broken.
    expected: tuple[str, ...] | None = None
    #: It rests on how late or early something happened (a deadline, a limit):
    #: scheduling noise beyond the tolerance can fake it.
    timing: bool = False


#: Acknowledgements a :class:`LogLedger` remembers, to see logs uploaded again (a
#: client that never settles them sends them at the next upload).
ACK_WINDOW = 8


@dataclass
class SessionLimit:
    """REQ-2-TIMEOUT-30000 as records show it, for both judges: a session opened by
    a record of :data:`SESSION_OPENS` must end (:data:`SESSION_ENDS`) within
    SESSION_LIMIT_MS plus ``tolerance_ms``; a client seen later still waiting broke
    the limit."""

    tolerance_ms: int = 0
    #: When the pending session opened (None: none pending).
    since: int | None = None
    #: What the last record broke by giving the session up too early, if anything.
    early: str | None = None

    def open(self) -> Open:
        """The pending session as a deadline (for a report of pending ones)."""
        assert self.since is not None
        return Open("session", "REQ-2-TIMEOUT-30000", SESSION_RESTARTS, self.since,
                    self.since + SESSION_LIMIT_MS,
                    "a session is established or given up within the session limit",
                    SESSION_ENDS)

    def overdue(self, now: int) -> int | None:
        """The opening time of a session still pending past its limit at ``now``
        (forgotten: it is reported once), or None."""
        since = self.since
        if since is not None and now > since + SESSION_LIMIT_MS + self.tolerance_ms:
            self.since = None
            return since
        return None

    def see(self, name: str, t: int) -> bool:
        """Open or end the session by a record's name; whether it ended a pending
        session without establishing it (:data:`SESSION_FAILS`)."""
        if name in SESSION_OPENS:
            # A connect is a new attempt with a limit of its own; an index request
            # opens a session only outside one (a pushed check-in's).
            if self.since is None or name == SESSION_RESTARTS:
                self.since = t
            return False
        self.early = None
        if name in SESSION_ENDS:
            since, self.since = self.since, None
            if since is not None and name == _GIVE_UP \
                    and t < since + SESSION_LIMIT_MS - self.tolerance_ms:
                # A14: the limit is when a stalled session is given up, not sooner.
                self.early = f"{name} at t={t}: the client gave the session up " \
                             f"{t - since} ms after the connect at t={since}, before " \
                             f"the {SESSION_LIMIT_MS} ms limit (tolerance " \
                             f"{self.tolerance_ms} ms)"
            return since is not None and name in SESSION_FAILS
        return False


@dataclass
class RequestGiveUp:
    """REQ-X-ABORT's lower bound as records show it, for both judges (A12, as A14 is
    for the session, :class:`SessionLimit`): a request after the session that was
    left unanswered is given up at the request limit (``limit_ms``, the reading's),
    not before it. A server (or the monitor) records the client giving up as a
    failure whose ``error`` says so (:data:`~.wire.GAVE_UP`); an error answer ends a
    request at once. Requests are told apart by ``key`` (the suite keys them by
    server and connection; one client's trace has one request at a time)."""

    limit_ms: int
    tolerance_ms: int = 0
    #: The request after the session pending on each key: (action, when sent).
    pending: dict[Any, tuple[str, int]] = field(default_factory=dict)

    def asked(self, key: Any = None) -> int | None:
        """When the request pending on ``key`` was sent (None: none is)."""
        pending = self.pending.get(key)
        return None if pending is None else pending[1]

    def see(self, name: str, t: int, error: str | None, key: Any = None) -> str | None:
        """Note a request after the session, or judge a failure of one; what a
        failure the client gave up too early broke, or None."""
        if name in REQUESTS_AFTER_SESSION:
            self.pending[key] = (name, t)
            return None
        if name not in REQUEST_FAILS:
            return None
        asked = self.pending.pop(key, None)
        if asked is None or error is None or GAVE_UP not in error \
                or t >= asked[1] + self.limit_ms - self.tolerance_ms:
            return None
        return (f"the client gave up {asked[0]} (sent at t={asked[1]}, left "
                f"unanswered) at t={t}, {t - asked[1]} ms later: before the "
                f"{self.limit_ms} ms request limit (A12: the limit is how long a client "
                f"waits; tolerance {self.tolerance_ms} ms)")


@dataclass
class LogLedger:
    """REQ-5-LOGS as records show it, for both judges: the log ids of a failed upload
    must be in the next one (else they are lost), and ids the manager acknowledged
    must not be uploaded again (the manager's ``duplicates``, or ids acknowledged
    within the last :data:`ACK_WINDOW` acknowledgements: bounded memory at fleet
    scale)."""

    #: Ids of the upload in flight.
    in_upload: list[str] = field(default_factory=list)
    #: Ids of failed uploads, owed to the next upload.
    unacked: set[str] = field(default_factory=set)
    #: The ids of the last ACK_WINDOW acknowledgements.
    acked: deque[frozenset[str]] = field(
        default_factory=lambda: deque(maxlen=ACK_WINDOW))

    def failed(self) -> None:
        """The upload in flight ended without its acknowledgement."""
        self.unacked |= set(self.in_upload)
        self.in_upload = []

    def upload(self, ids: list[str], *, resent_ok: bool = False) -> str | None:
        """An upload of ``ids``: what it proves wrong, or None. ``resent_ok``: the
        client restarted since its last acknowledgement (it may not have settled
        it), which only an environment knows."""
        dropped = sorted(self.unacked - set(ids))
        self.unacked.clear()
        self.in_upload = list(ids)
        if dropped:
            return f"log(s) {', '.join(dropped[:3])} of a failed upload were not sent " \
                   f"again: lost"
        again = sorted(i for i in ids if any(i in a for a in self.acked))
        if again and not resent_ok:
            return f"log(s) {', '.join(again[:3])} uploaded again after the manager " \
                   f"acknowledged them"
        return None

    def ack(self, ids: list[str], duplicates: list[str]) -> str | None:
        """The manager acknowledged ``ids`` (and says which it had before)."""
        self.in_upload = []
        again = sorted(set(duplicates)
                       | {i for i in ids if any(i in a for a in self.acked)}
                       ) if ids or duplicates else None
        self.acked.append(frozenset(ids))
        if again:
            return f"log(s) {', '.join(again[:3])} uploaded again after the manager " \
                   f"acknowledged them"
        return None


@dataclass
class PushHold:
    """REQ-7-PUSH as records show it, for both judges (push mode only): after a
    check-in (:data:`HOLD_BEGINS`) the client keeps its connection (``HOLD``) until
    it is lost, a change is pushed or a push heartbeat ends it
    (:data:`HOLD_ENDS`). A ``DISCONNECT`` right after the check-in, or of a held
    connection before the interval (when it is known), breaks it. The table says
    so too, but in a server's view the client's hidden timers let the checker
    explain an early close away."""

    #: The heartbeat interval (None: unknown, so only the first rule runs).
    interval_ms: int | None = None
    tolerance_ms: int = 0
    _after_check_in: bool = False
    _held_at: int | None = None

    def see(self, name: str, t: int) -> tuple[bool, str | None]:
        """(whether the record was judged by the rule, what it breaks or None)."""
        after, self._after_check_in = self._after_check_in, name in HOLD_BEGINS
        if name == _HOLD:
            self._held_at = t
        elif name in HOLD_ENDS:
            self._held_at = None
        if name != _DISCONNECT:
            return False, None
        held, self._held_at = self._held_at, None
        if after:
            return True, f"the client disconnected at t={t} right after its " \
                         f"check-in, in push mode"
        if held is None:
            return False, None
        if self.interval_ms is not None \
                and t < held + self.interval_ms - self.tolerance_ms:
            return True, f"the client closed its held push connection at t={t}, " \
                         f"{t - held} ms after holding it, with no change pushed " \
                         f"and no push heartbeat due"
        return True, None


@dataclass(frozen=True)
class ClientConfig:
    """What a client's configuration (its sylink.xml) tells offline validation,
    read under an interpretation: where a heartbeat may begin, whether it may fail
    over, the interval and the mode."""

    #: (address, port) of the managers a heartbeat may begin with: the first
    #: listed (Selection.FIRST) or any of the highest priority (RANDOM).
    first: frozenset[tuple[str, int]]
    failover: bool
    interval_ms: int
    mode: Mode
    #: How late after the interval a check-in may come when the file enables
    #: randomization (A15), else 0.
    randomization_ms: int = 0
    #: Each manager's priority block, by (address, port): 1 is tried first.
    priority: Mapping[tuple[str, int], int] = field(default_factory=dict)
    #: A push-mode client still checks in every interval (A6).
    push_heartbeat: bool = False
    #: (address, port) of the GUP sylink.xml names, if any.
    gup: tuple[str, int] | None = None

    @classmethod
    def of(cls, interpretation: Interpretation, sylink: Any) -> ClientConfig:
        """From a :class:`~sephb.conformance.traces.sylink.Sylink`."""
        tiers = sylink.tiers()
        top = tiers[0]
        chosen = top[:1] if interpretation.selection is Selection.FIRST else top
        return cls(frozenset((s.address, s.port) for s in chosen),
                   interpretation.switches[Switch.FAILOVER],
                   sylink.heartbeat_s * 1000, sylink.mode,
                   getattr(sylink, "randomization_s", 0) * 1000,
                   {(s.address, s.port): n for n, tier in enumerate(tiers, 1)
                    for s in tier},
                   interpretation.switches[Switch.PUSH_HEARTBEAT],
                   (sylink.gup.address, sylink.gup.port) if sylink.gup else None)


@dataclass
class TraceProperties:
    """The data properties one client's trace shows by itself, for offline
    validation (``sephb validate --data``): no environment, no configuration.

    The session limit and the log rules are the suite's too (:class:`SessionLimit`,
    :class:`LogLedger`); :class:`Oracle` adds what the suite's environment knows
    (the configured GUP and managers, the logs produced, restarts, the clock). Here
    only what the records carry counts, so each rule flags only what they prove:

    * REQ-2-TIMEOUT-30000: a record of a session still pending (opened by a
      ``CONNECT``, which restarts the limit, or a pushed check-in's ``GET_INDEX``;
      not ended since, :class:`SessionLimit`) later than the session limit plus
      ``tolerance_ms`` (recording jitter): the client kept waiting;
    * REQ-4-PORT-2967 / REQ-4-PORT-8014: GUP content on another port than the
      GUP's, manager content on another port than the manager's content port;
    * REQ-5-LOGS: logs of a failed upload missing from the next upload (lost), and
      logs uploaded again after an acknowledgement (the manager's ``duplicates``,
      or ids acknowledged twice within the last :data:`ACK_WINDOW` acknowledgements). A
      client restarted between an acknowledgement and settling it would re-send
      too: a trace cannot show the restart;
    * REQ-7-PUSH, in push mode (``mode``, or the configuration's): the
      :class:`PushHold` rules, reported at the client's next record (a client that
      stops disconnects too, so a close proves nothing until it comes back).

    Given the client's configuration (``config``), two more, where the view makes
    them provable. In the client's own view (``server_view`` False) every attempt
    shows: the first ``CONNECT`` after a ``HEARTBEAT_DUE`` must go to a manager a
    heartbeat may begin with (REQ-1-PRIORITY), and heartbeats are an interval apart
    (REQ-2-TIMEOUT-30000: "terminates until the next heartbeat interval"), but for
    the one after a lost push connection. In a server's view refused connects do
    not show, so only without failover (``seed``) is every manager connect a
    heartbeat's first: each must go to that manager, an interval after the last. A
    restarted client checks in at once; a trace cannot show the restart, so the
    interval rule reports it (REQ-7-PULL, or REQ-2-TIMEOUT-30000 after a check-in
    whose session failed).

    The deadlines of the model (:mod:`sephb.model.deadlines`, read as ``timing``
    says): an answer acted on at once, a request after the session answered or
    given up within the request limit and not before (:class:`RequestGiveUp`,
    REQ-X-ABORT: a failure whose ``error`` says the client gave up), a stalled
    session given up at its limit and not before (:class:`SessionLimit`); and in
    the client's own view the next heartbeat by the interval (the configuration's,
    else the default 300 s). A server cannot see a heartbeat that met only refusing
    managers, so in its view that rule is the suite's alone. What is still open at
    the end of a trace is :meth:`pending`.
    """

    tolerance_ms: int = 1000
    config: ClientConfig | None = None
    server_view: bool = False
    #: The clients' mode, when known (else the configuration's, if any).
    mode: Mode | None = None
    #: The interpretation's reading of the seed's timing (A11, A12).
    timing: Timing = field(default_factory=Timing)
    #: Actions whose time the view does not record (a HAR's closes).
    unseen: frozenset[str] = frozenset()
    deadlines: Deadlines = field(init=False)
    #: A session failed since the last heartbeat began (names an early one).
    _session_failed: bool = False
    _last_heartbeat: int | None = None
    _awaiting_first: bool = False
    #: A held push connection was lost: the next heartbeat may come at once.
    _lost: bool = False
    #: The managers the current heartbeat tried, in order (the client's view).
    _tried: list[tuple[str, int]] = field(default_factory=list)
    _session: SessionLimit = field(init=False)
    _requests: RequestGiveUp = field(init=False)
    _logs: LogLedger = field(default_factory=LogLedger)
    _push: PushHold | None = field(init=False)
    #: What the last record broke of the push hold, if the client goes on.
    _push_broken: str | None = None

    def __post_init__(self) -> None:
        self._session = SessionLimit(self.tolerance_ms)
        config, mode = self.config, self.mode
        if mode is None and config is not None:
            mode = config.mode
        self._push = PushHold(config.interval_ms if config else None,
                              self.tolerance_ms) if mode is Mode.PUSH else None
        interval_ms = config.interval_ms if config else HEARTBEAT_INTERVAL_S * 1000
        self._requests = RequestGiveUp(self.timing.request_limit_ms(interval_ms),
                                       self.tolerance_ms)
        self.deadlines = Deadlines(
            self.timing, mode, interval_ms,
            self.tolerance_ms, config.randomization_ms if config else 0,
            next_heartbeat=not self.server_view, unseen=self.unseen,
            # The push heartbeat's bound is the configuration's interval.
            switches={Switch.PUSH_HEARTBEAT: config.push_heartbeat} if config else {})

    @property
    def watching(self) -> bool:
        """Whether the next record must be fed whatever its name: a session or a
        deadline is pending (any record may show it broken), or the
        configuration's or the push rules read every record. Otherwise only
        :data:`ACTS_ON` names can change or break anything here."""
        return self._session.since is not None or self.config is not None \
            or self._push is not None or bool(self.deadlines.open)

    def pending(self) -> list[Open]:
        """What is still open: neither met nor broken by the records so far."""
        return self.deadlines.pending() + (
            [] if self._session.since is None else [self._session.open()])

    def finish(self, end: int) -> tuple[str, str] | None:
        """The trace ended at ``end`` (its last record, any client's): a deadline
        due before then is broken; what is left is :meth:`pending`."""
        since = None if self._session.since is None else self._session.overdue(end)
        if since is not None:
            return ("REQ-2-TIMEOUT-30000",
                    f"no session within {SESSION_LIMIT_MS} ms of the connect at "
                    f"t={since}, and the trace goes on to t={end} without the client "
                    f"giving it up")
        return self.deadlines.overdue(end)

    def feed(self, name: str, t: int, port: int | None = None,
             ids: list[str] | None = None, duplicates: list[str] | None = None,
             addr: str | None = None, error: str | None = None
             ) -> tuple[str, str] | None:
        """Check one record (not a GUP's own transport record); the (requirement,
        message) of what it proves wrong, or None."""
        session = self._session
        # Most records come with no session pending: spare them the call.
        since = None if session.since is None else session.overdue(t)
        if since is not None:
            return ("REQ-2-TIMEOUT-30000",
                    f"{name} at t={t}: no session within {SESSION_LIMIT_MS} ms of the "
                    f"connect at t={since}, and the client still waited")
        late = self.deadlines.feed(name, t)
        if late is not None:
            return late
        if self.config is not None:
            found = self._configured(name, t, addr, port)
            if found is not None:
                return found
        if self._push is not None:
            # A client that stops (a shutdown, the end of a recording) disconnects
            # too: a close breaks the hold only once the client is seen again.
            if self._push_broken is not None:
                broken, self._push_broken = self._push_broken, None
                return "REQ-7-PUSH", f"{broken}; {name} at t={t} shows it had not " \
                                     f"stopped"
            self._push_broken = self._push.see(name, t)[1]
        what = _WHAT.get(name)
        if what is None:  # most records: only the session limit above applies
            return None
        if what & _SESSION:
            if session.see(name, t):
                self._session_failed = True
                if session.early is not None:
                    return "REQ-2-TIMEOUT-30000", session.early
            if what == _SESSION:  # nothing else (the usual case: one test)
                return None
        if what & _ASKED:  # RequestGiveUp.see, inline: a record in three is one
            self._requests.pending[None] = (name, t)
        elif what & _GIVEN_UP:
            early = self._requests.see(name, t, error)
            if early is not None:
                return "REQ-X-ABORT", early
        if what & _FAILS:
            self._logs.failed()
        if what & _PORT and port is not None:
            want, requirement = self._content_port(name, addr)
            if port != want:
                hint = "" if self.config is not None else \
                    " (the seed's port; give --sylink when the site's are others)"
                return (requirement, f"{name} on port {port}, not {want}{hint}")
        found_logs = None
        if what & _UPLOAD and ids is not None:
            found_logs = self._logs.upload(ids)
        elif what & _ACK:
            found_logs = self._logs.ack(ids or [], duplicates or [])
        return None if found_logs is None else ("REQ-5-LOGS", found_logs)

    def _content_port(self, name: str, addr: str | None) -> tuple[int, str]:
        """The port content must come from, and the requirement saying so: the
        configuration's (the GUP's, or the manager's own port at that address)
        when known, else the seed's."""
        want, requirement = CONTENT_PORTS[name]
        config = self.config
        if config is None:
            return want, requirement
        if name == Action.DOWNLOAD_GUP.value:
            return (config.gup[1] if config.gup else want), requirement
        ports = {p for (a, p) in config.priority if a == addr}
        return (ports.pop() if len(ports) == 1 else want), requirement

    def _configured(self, name: str, t: int, addr: str | None, port: int | None
                    ) -> tuple[str, str] | None:
        config = self.config
        assert config is not None
        if name in HOLD_LOST:
            self._lost = True
            return None
        if self.server_view:
            if name != SESSION_RESTARTS or config.failover:
                return None
            begins = True  # without failover, every connect begins a heartbeat
        elif name in HEARTBEAT_BEGINS:
            begins, self._awaiting_first = True, True
        elif name == SESSION_RESTARTS and self._awaiting_first:
            self._awaiting_first = False
            self._tried = [] if addr is None else [(addr, port or 0)]
            if addr is not None and (addr, port) not in config.first:
                allowed = " or ".join(f"{a}:{p}" for a, p in sorted(config.first))
                return ("REQ-1-PRIORITY", f"the heartbeat began with {addr}:{port}; "
                                          f"expected {allowed}")
            return None
        elif name == SESSION_RESTARTS and addr is not None and port is not None \
                and config.failover:
            return self._failover(addr, port, t)
        else:
            if name == _PUSHED:  # a pushed check-in fails over like a heartbeat
                self._tried = []
            return None
        if self.server_view and addr is not None and (addr, port) not in config.first:
            allowed = " or ".join(f"{a}:{p}" for a, p in sorted(config.first))
            return ("REQ-1-PRIORITY",
                    f"the heartbeat began with {addr}:{port}; expected {allowed}")
        last, self._last_heartbeat = self._last_heartbeat, t
        lost, self._lost = self._lost, False
        failed, self._session_failed = self._session_failed, False
        if begins and not lost and last is not None \
                and t < last + config.interval_ms - self.tolerance_ms:
            # Step 2's "terminates until the next heartbeat interval" after a failed
            # session; step 7's "check in again at the next heartbeat interval".
            return ("REQ-2-TIMEOUT-30000" if failed else "REQ-7-PULL",
                    f"a new heartbeat at t={t}, {t - last} ms after the last one: the "
                    f"next one is due after the {config.interval_ms} ms interval")
        return None

    def _failover(self, addr: str, port: int, t: int) -> tuple[str, str] | None:
        """REQ-2-FAILOVER, in the client's own view of a heartbeat: a failover goes
        to a manager of sylink.xml not tried yet in this heartbeat (each at most
        once; after the last the heartbeat is over), never back up the priority
        order."""
        config = self.config
        assert config is not None
        here = (addr, port)
        tried, self._tried = self._tried, [*self._tried, here]
        if here not in config.priority:
            return ("REQ-2-FAILOVER", f"the heartbeat failed over at t={t} to "
                                      f"{addr}:{port}, which sylink.xml does not list")
        if here in tried:
            return ("REQ-2-FAILOVER",
                    f"the heartbeat failed over at t={t} to {addr}:{port} again: each "
                    f"manager is tried at most once, and after the last the heartbeat "
                    f"ends until the next interval")
        prio = config.priority[here]
        above = [p for p in (config.priority.get(x) for x in tried) if p is not None]
        if above and prio < max(above):
            return ("REQ-2-FAILOVER",
                    f"the heartbeat failed over at t={t} to {addr}:{port} (priority "
                    f"{prio}) after a manager of priority {max(above)}: failover goes "
                    f"down the priority order")
        return None


# What TraceProperties reads of the table (nothing here is a second copy of it):
#: Records that open a session: the entry actions of the session-pending states
#: entered from outside them (the connect; a pushed check-in's index request).
SESSION_OPENS: Final = frozenset(
    ENTRY[r.dest].value for r in TABLE
    if r.dest in SESSION_PENDING and r.source not in SESSION_PENDING)
#: Records that end one: the events that leave the pending states, and whatever the
#: client does outside them (a disconnect, or going on with the check-in).
SESSION_ENDS: Final = frozenset(
    {r.event.value for r in TABLE
     if r.source in SESSION_PENDING and r.dest not in SESSION_PENDING}
    | {ENTRY[s].value for s in State if s not in SESSION_PENDING})
#: Requests after the session: the request deadline's openers (model/deadlines.py),
#: and the failures of the table that end one without its answer.
REQUESTS_AFTER_SESSION: Final = next(d for d in DEADLINES if d.id == "request").opens[None]
REQUEST_FAILS: Final = frozenset(r.event.value for r in TABLE
                                 if ENTRY[r.source].value in REQUESTS_AFTER_SESSION
                                 and r.event in (*ON_ERROR, *ON_TIMEOUT))
_UPLOADING: Final = next(s for s, a in ENTRY.items() if a is Action.UPLOAD_LOGS)
#: Events that end a log upload without its acknowledgement.
UPLOAD_FAILS: Final = frozenset(
    r.event.value for r in TABLE
    if r.source is _UPLOADING and r.event is not Event.LOGS_ACKED)
#: Download action -> (the content port it must use, the requirement saying so):
#: the port parameter of the requirement of a row entering the downloading state.
CONTENT_PORTS: Final[dict[str, tuple[int, str]]] = {
    ENTRY[r.dest].value: (p.value, p.requirement)
    for r in TABLE for p in PARAMETERS.values()
    if p.unit == "tcp" and p.requirement == r.requirement
}
#: The record of a new attempt, which restarts the limit: the entry action of the
#: pending state a heartbeat enters from the initial state (the connect).
SESSION_RESTARTS: Final = next(
    ENTRY[r.dest].value for r in TABLE
    if r.source is INITIAL and r.dest in SESSION_PENDING)
#: Session ends that leave it unestablished: the events taking a pending state back
#: to the initial state or to a new connect (failover), and giving up (the initial
#: state's entry action).
SESSION_FAILS: Final = frozenset(
    {r.event.value for r in TABLE if r.source in SESSION_PENDING
     and r.dest in (INITIAL, next(s for s, a in ENTRY.items() if a is Action.CONNECT))}
    | {ENTRY[INITIAL].value})
#: The record of a session given up at its limit.
_GIVE_UP: Final = Event.SESSION_TIMEOUT.value
_PUSHED: Final = Event.POLICY_PUSHED.value
_HELD: Final = next(s for s, a in ENTRY.items() if a is Action.HOLD)
_HOLD: Final = Action.HOLD.value
_DISCONNECT: Final = ENTRY[INITIAL].value
#: Events that begin a push hold (end a check-in in push mode), and that end one
#: (in any reading of the table).
HOLD_BEGINS: Final = frozenset(
    r.event.value for r in TABLE if r.dest is _HELD and r.source is not _HELD)
HOLD_ENDS: Final = frozenset(r.event.value for r in TABLE if r.source is _HELD)
#: Those that end it with the connection gone (the next heartbeat may come at once).
HOLD_LOST: Final = frozenset(
    r.event.value for r in TABLE if r.source is _HELD and r.dest is INITIAL)
#: Events that begin a heartbeat: those leaving the initial state.
HEARTBEAT_BEGINS: Final = frozenset(r.event.value for r in TABLE if r.source is INITIAL)
_SESSION, _FAILS, _PORT, _UPLOAD, _ACK, _ASKED, _GIVEN_UP = (1 << i for i in range(7))
#: name -> what it does to a client's TraceProperties (bits above), from the sets
#: read off the table; a name with nothing to do is absent, so most records cost one
#: dict lookup.
_WHAT: Final[dict[str, int]] = {
    name: bits for name in {*SESSION_OPENS, *SESSION_ENDS, *UPLOAD_FAILS,
                            *CONTENT_PORTS, Action.UPLOAD_LOGS.value,
                            Event.LOGS_ACKED.value, *REQUESTS_AFTER_SESSION,
                            *REQUEST_FAILS}
    if (bits := (_SESSION * (name in SESSION_OPENS or name in SESSION_ENDS)
                 | _FAILS * (name in UPLOAD_FAILS) | _PORT * (name in CONTENT_PORTS)
                 | _UPLOAD * (name == Action.UPLOAD_LOGS.value)
                 | _ACK * (name == Event.LOGS_ACKED.value)
                 | _ASKED * (name in REQUESTS_AFTER_SESSION)
                 | _GIVEN_UP * (name in REQUEST_FAILS)))
}
#: The names a TraceProperties acts on when it is not :attr:`watching
#: <TraceProperties.watching>`: all but those that only end a session (none is
#: pending then).
ACTS_ON: Final = frozenset(
    name for name, bits in _WHAT.items() if bits != _SESSION or name in SESSION_OPENS
) | frozenset().union(*(o for d in DEADLINES for o in d.opens.values()))
