"""The oracle of the conformance suite: the model's checker plus data properties.

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

Offline validation (``sephb validate --data``) judges the records alone with
:class:`TraceProperties`. The rules both judges apply, :class:`SessionLimit`,
:class:`LogLedger` and :class:`PushHold`, are written once, here. The properties
read the model's parameters and the sets of names they act on off the table
(:mod:`sephb.model.protocol`: which records open, end or fail a session, which fail
an upload, which begin and end a push hold, each download's port); they never
restate a transition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from sephb.conformance.traces.trace import is_transport
from sephb.model.checker import Checker
from sephb.model.deadlines import DEADLINES, Deadlines, Open, Timing
from sephb.model.interpretations import Interpretation, Selection
from sephb.model.protocol import (
    ENTRY,
    GUP_PORT,
    HEARTBEAT_INTERVAL_S,
    INITIAL,
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
#: deadlines): the first manager by priority, the content ports, logs neither lost
#: nor uploaded twice. Every run lists them (:func:`.suite.requirements_of`).
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


@dataclass
class Manager:
    """What the oracle knows of one manager: where it is and its priority."""

    name: str
    address: str
    port: int
    priority: int


@dataclass
class Oracle:
    """Judges one client's server-side trace, record by record."""

    interpretation: Interpretation
    mode: Mode
    managers: list[Manager]
    gup: tuple[str, int] | None
    interval_ms: int
    #: Whether a manager is unreachable now (the environment's view), by name.
    unreachable: Callable[[str], bool] = lambda name: False
    #: Whether the GUP answers normally now (no fault at all).
    gup_up: Callable[[], bool] = lambda: True
    #: Model milliseconds of slack for timing properties (0 in virtual time; the
    #: wire adapter's scheduling needs some).
    tolerance_ms: int = 0
    #: Events the records cannot show (see HIDDEN).
    hidden: frozenset[Event] = HIDDEN
    checker: Checker = field(init=False)
    findings: list[Finding] = field(default_factory=list)
    #: Requirement ids the data properties exercised, and how often.
    exercised: dict[str, int] = field(default_factory=dict)
    index: int = 0
    #: The position of the record being judged, while one is (None: time alone).
    _at: int | None = field(default=None, init=False)
    #: What the checker was fed: (name, t, changed, source).
    observations: list[tuple[str, int, Any, Any]] = field(default_factory=list)
    produced: int = 0
    acked: set[str] = field(default_factory=set)
    #: Log ids the environment produced (logs_produced with ids) and no
    #: acknowledgement named yet, with the model time each was produced. They stay
    #: owed across restarts.
    owed: dict[str, int] = field(default_factory=dict)
    #: When the log upload last recorded began (None: none since its answer).
    _upload_t: int | None = None
    _round_start: int | None = None
    _tried: set[str] = field(default_factory=set)
    _session: SessionLimit = field(init=False)
    #: The manager of the pending session (None: unknown or none).
    _session_manager: str | None = None
    _logs: LogLedger = field(default_factory=lambda: LogLedger())
    _uploading: int = 0
    _restarted: bool = False
    #: Restarted and no acknowledgement seen since: the new process may send again
    #: what the killed one had not settled (its last records may have been dropped).
    _resend_ok: bool = False
    _failed: set[str] = field(default_factory=set)
    #: Rows explained before the client's restarts.
    _runs: list[str] = field(default_factory=list)
    #: The last URLs named the GUP, and no GUP download was seen since.
    _gup_source: bool = False
    #: The GUP was seen failing since those URLs.
    _gup_down: bool = False
    #: Step 7 in push mode (None in pull mode).
    _push: PushHold | None = field(init=False)
    #: The manager a push-mode client last held its connection with.
    _held_with: str | None = None
    #: When each manager was last seen unreachable (a refused or dropped connect).
    _last_unreachable: dict[str, int] = field(default_factory=dict)
    #: The deadlines of the model (sephb.model.deadlines), live.
    deadlines: Deadlines = field(init=False)
    #: A session failed in the current heartbeat (an early next one breaks REQ-2's
    #: "terminates until the next heartbeat interval", else REQ-7-PULL's).
    _round_failed: bool = False

    def __post_init__(self) -> None:
        self.checker = Checker(self.interpretation, mode=self.mode, hidden=self.hidden)
        self._session = SessionLimit(self.tolerance_ms)
        self._push = PushHold(self.interval_ms, self.tolerance_ms) \
            if self.mode is Mode.PUSH else None
        self.deadlines = self._new_deadlines()

    def _new_deadlines(self) -> Deadlines:
        # A heartbeat whose first managers a recorder cannot see (a connect that
        # never completes, hidden in process) shows first up to (managers - 1)
        # session limits after it began.
        unseen = Event.SESSION_TIMEOUT in self.hidden \
            and self.interpretation.switches[Switch.FAILOVER]
        d = Deadlines(self.interpretation.timing, self.mode, self.interval_ms,
                      self.tolerance_ms,
                      heartbeat_slack_ms=(len(self.managers) - 1) * SESSION_LIMIT_MS
                      if unseen else 0)
        d.excuse = self._unseen_heartbeat
        return d

    def _unseen_heartbeat(self, late: Open, now: int) -> int | None:
        """A next heartbeat may have come where no server saw it: every manager it
        could begin with refused (or, with failover, every manager). Only the
        environment knows; the deadline then moves on by an interval."""
        if late.deadline != "next-heartbeat":
            return None
        failover = self.interpretation.switches[Switch.FAILOVER]
        if self.interpretation.selection is Selection.FIRST and not failover:
            first = [min(self.managers, key=lambda m: m.priority)]
        elif failover:
            first = self.managers
        else:
            top = min(m.priority for m in self.managers)
            first = [m for m in self.managers if m.priority == top]
        hit = [self._last_unreachable.get(m.name, -1) >= late.opened for m in first]
        if all(hit) if failover else any(hit):
            return late.due + self.interval_ms
        return None

    # --- what the environment tells the oracle ----------------------------------------

    def logs_produced(self, count: int, *, ids: list[str] | None = None,
                      at: int | None = None) -> None:
        """The environment made ``count`` new logs for the client (REQ-5-LOGS).

        Without ``ids`` (in process) they are counted: the answer to the next upload
        must acknowledge as many as were produced by then. With their ``ids`` and
        the model time ``at`` they were produced (a spool over the wire, where an
        entry may land just as the client lists it), each is judged by identity:
        once an upload recorded later than ``at`` plus the tolerance is
        acknowledged, the id must be among the acknowledged ones, else it is lost.
        """
        if ids is None:
            self.produced += count
            return
        if at is None:
            raise ValueError("logs_produced: ids need the time they were produced (at)")
        for log_id in ids:
            if log_id not in self.acked:
                self.owed.setdefault(log_id, at)

    def restarted(self, now: int) -> None:
        """The client was restarted: a new process starts in the initial state (a
        crash is outside the model), and its first heartbeat is due at once."""
        self._runs += self.checker.run()
        self.checker.reset()
        if self._push is not None:
            self._push = PushHold(self.interval_ms, self.tolerance_ms)
        self._round_start = None
        self._tried = set()
        self._session.since = None
        self._restarted = self._resend_ok = True
        # A new process owes nothing of the killed one's deadlines.
        self.deadlines = self._new_deadlines()

    def observe_environment(self, now: int) -> None:
        """Note which managers are unreachable at ``now``: a client's attempts there
        leave no record, so a later first CONNECT elsewhere may be right. Likewise
        the GUP: a skipped or fallen-back GUP download is right only if it failed."""
        for m in self.managers:
            if self.unreachable(m.name):
                self._last_unreachable[m.name] = now
        if self.gup is not None and not self.gup_up():
            self._gup_down = True

    def tick(self, now: int) -> None:
        """Time advanced to ``now``: a pending session must have been given up, and
        no deadline may have passed unmet."""
        since = self._session.overdue(now)
        if since is not None:
            self._find("REQ-2-TIMEOUT-30000",
                       f"no session with {self._session_manager or 'its manager'} "
                       f"within {SESSION_LIMIT_MS} ms (opened at t={since}), and the "
                       f"client still waits at t={now}", now)
        found = self.deadlines.overdue(now)
        if found is not None:
            self._find(*found, now)

    def pending(self) -> list[Open]:
        """Deadlines still open now (neither met nor broken)."""
        return self.deadlines.pending() + (
            [] if self._session.since is None else [self._session.open()])

    # --- records ---------------------------------------------------------------------

    def feed(self, rec: dict[str, Any]) -> None:
        """Judge the next record (every record, in order: ``index`` counts them, so
        that a finding names the record's position in the trace)."""
        pos = self.index
        self.index += 1
        name = rec["event"]
        t = int(rec["t"])
        if is_transport(name, rec.get("role")):
            return  # a GUP download's own connection: not a step of the model
        self.tick(t)
        self._at = pos
        try:
            self._data(rec, name, t)
            if rec.get("server") == "-":
                return  # nothing listens there: the data properties named the port rule
            obs = (name, t, rec.get("changed"), rec.get("source"))
            self.observations.append(obs)
            v = self.checker.feed(*obs)
            if v is not None and not any(f.index == pos for f in self.findings):
                # The checker counts only what it was fed; the finding names the
                # record by its number in the trace, as the sequence diagram does.
                self.findings.append(Finding(v.requirement, v.at(f"record {pos + 1}"),
                                             pos, v.t, tuple(v.allowed)))
        finally:
            self._at = None

    def path(self) -> list[str]:
        """Row names of one run of the model consistent with the records so far:
        what coverage counts."""
        return self._runs + self.checker.run()

    def _find(self, requirement: str, message: str, t: int) -> None:
        self.findings.append(Finding(requirement, message, self._at, t))

    def _hit(self, requirement: str) -> None:
        self.exercised[requirement] = self.exercised.get(requirement, 0) + 1

    def _manager(self, rec: dict[str, Any]) -> Manager | None:
        for m in self.managers:
            if m.address == rec.get("addr") and m.port == rec.get("port"):
                return m
        return None

    def _data(self, rec: dict[str, Any], name: str, t: int) -> None:
        if self._push is not None:
            judged, found = self._push.see(name, t)
            if judged:
                self._hit("REQ-7-PUSH")
            if found:
                self._find("REQ-7-PUSH", found, t)
        late = self.deadlines.feed(name, t)
        if late is not None:
            self._find(*late, t)
        if name in (Action.CONNECT.value, Action.DISCONNECT.value) \
                and rec.get("role") == "manager":
            self._gup_source = False  # a check-in ended: the GUP is owed nothing
        if self._session.see(name, t):
            self._round_failed = True
            if self._session.early is not None:
                self._find("REQ-2-TIMEOUT-30000", self._session.early, t)
            if self._session_manager:
                self._failed.add(self._session_manager)  # it gave no session
            self._failover_due(name, t)
        if name in UPLOAD_FAILS:
            self._logs.failed()
        if name == Action.CONNECT.value and rec.get("role") == "manager":
            self._connect(rec, t)
        elif name in CONTENT_PORTS:
            self._port(rec, name, t)
            self._gup_owed(name, t)
        elif name == Action.UPLOAD_LOGS.value:
            self._gup_owed(name, t)
            self._upload(rec, t)
        elif name == Event.LOGS_ACKED.value:
            ids = list(rec.get("ids") or [])
            self.acked |= set(ids)
            self._hit("REQ-5-LOGS")
            # Not the manager's `duplicates`: an acknowledgement the Oracle did not
            # see (a killed process's last records are dropped at a restart; an
            # answer lost on the wire) leaves the client right to send them again.
            again = self._logs.ack(ids, [])
            if again and not self._resend_ok:
                self._find("REQ-5-LOGS", again, t)
            self._resend_ok = False
            if len(self.acked) < self._uploading:
                self._find("REQ-5-LOGS",
                           f"{self._uploading - len(self.acked)} produced log(s) never "
                           f"reached the manager: lost", t)
            self._owed_acked(ids, t)
        elif name == Event.URLS_RECEIVED.value:
            self._gup_source = rec.get("source") == "gup"
            self._gup_down = self.gup is not None and not self.gup_up()
        elif name == Event.SENSORS_ACKED.value:
            self._failed = set()
        elif name == Action.HOLD.value:
            m = self._manager(rec)
            self._held_with = m.name if m else None
        elif name == Event.HEARTBEAT_DUE.value and rec.get("role") == "manager":
            # A push heartbeat ended the hold: a new heartbeat on the held connection.
            m = self._manager(rec)
            self._round_start, self._tried = t, {m.name} if m else set()
        elif name == Event.POLICY_PUSHED.value:
            # A pushed check-in fails over from the held manager like a heartbeat.
            m = self._manager(rec)
            self._tried = {m.name} if m else set()

    def _connect(self, rec: dict[str, Any], t: int) -> None:
        m = self._manager(rec)
        self._session_manager = m.name if m else None
        if m is None:
            return
        # The first CONNECT seen may come after failovers the servers could not see
        # (a refused connect): the heartbeat began up to (managers - 1) session
        # limits earlier.
        failover = self.interpretation.switches[Switch.FAILOVER]
        unseen = (len(self.managers) - 1) * SESSION_LIMIT_MS if failover else 0
        new_round = (self._round_start is None or self._restarted
                     or t >= self._round_start - unseen + self.interval_ms
                     - self.tolerance_ms)
        if m.name == self._held_with:
            # A push-mode client reconnecting to the manager it held: within the
            # heartbeat, not a new choice, but the manager is tried in it. At the
            # next heartbeat (or after a restart) it is a heartbeat like any other.
            self._held_with = None
            if not new_round:
                self._tried.add(m.name)
                return
        if new_round:
            self._round_start, self._tried, self._restarted = t, {m.name}, False
            self._round_failed = False
            self._hit("REQ-7-PULL")
            self._priority(m, t)
            return
        if m.name in self._tried or not failover:
            # After a failed session the seed's step 2 says "terminates until the
            # next heartbeat interval"; after a check-in, step 7's "check in again at
            # the next heartbeat interval".
            self._find("REQ-2-TIMEOUT-30000" if self._round_failed else "REQ-7-PULL",
                       f"a new check-in with {m.name} at t={t}, "
                       f"{t - (self._round_start or 0)} ms after the last one began: "
                       f"the next one is due after the {self.interval_ms} ms interval", t)
        elif failover:
            self._failover_order(m, t)
        self._tried.add(m.name)

    def _failover_due(self, name: str, t: int) -> None:
        """REQ-2-FAILOVER (documented reading): a session that failed is followed at
        once by a connect to another manager, when one not tried in this heartbeat
        is reachable (a refused one leaves no record, so the environment is
        asked)."""
        if not self.interpretation.switches[Switch.FAILOVER]:
            return
        untried = [m for m in self.managers if m.name not in self._tried]
        left = [m for m in untried if not self._maybe_tried_unseen(m)]
        # Unreachable managers tried first cost nothing on the wire (refused at
        # once) but up to a session limit each where a connect can hang unseen.
        unseen = (len(untried) - len(left)) * SESSION_LIMIT_MS \
            if Event.SESSION_TIMEOUT in self.hidden else 0
        if left:
            self._hit("REQ-2-FAILOVER")
            self.deadlines.expect(
                "failover", "REQ-2-FAILOVER", name, t, t + unseen,
                "a failed session fails over at once", {Action.CONNECT.value},
                broken=f"the session failed at t={{opened}} ({{opener}}) and no "
                       f"connect to another manager followed by t={{now}} "
                       f"({', '.join(m.name for m in left)} reachable and not tried in "
                       f"this heartbeat; {{late}} ms past the due time t={{due}}, "
                       f"tolerance {{tol}} ms)")

    def _maybe_tried_unseen(self, m: Manager) -> bool:
        """Whether the client may have tried ``m`` in this heartbeat where no server
        saw it: it was unreachable (refusing, or a connect that hangs) at some time
        since the heartbeat began."""
        # The heartbeat may have begun before its first record, by the connects
        # that hung unseen (up to a session limit each).
        began = (self._round_start or 0) - self.tolerance_ms - (
            (len(self.managers) - 1) * SESSION_LIMIT_MS
            if Event.SESSION_TIMEOUT in self.hidden else 0)
        seen = self._last_unreachable.get(m.name)
        return self.unreachable(m.name) or (seen is not None and seen >= began)

    def _failover_order(self, m: Manager, t: int) -> None:
        """REQ-2-FAILOVER: failover goes down the priority order; a reachable
        manager of a higher priority (a smaller number) is not skipped."""
        better = [x for x in self.managers if x.name not in self._tried
                  and x.priority < m.priority and not self._maybe_tried_unseen(x)]
        if better:
            self._find("REQ-2-FAILOVER",
                       f"the heartbeat failed over to {m.name} (priority {m.priority}) "
                       f"at t={t}, skipping {better[0].name} (priority "
                       f"{better[0].priority}), which was reachable and not tried", t)

    def _gup_owed(self, name: str, t: int) -> None:
        """REQ-4-PORT-2967: when the location's policy names the GUP and the GUP is
        up, the content comes from the GUP, on its port. Skipping it (seed) or
        falling back to the manager (documented) is right only after the GUP failed;
        a failure the servers cannot see (a refused connect) is known to the
        environment, which is asked."""
        if not self._gup_source:
            return
        if name == Action.DOWNLOAD_GUP.value:
            self._gup_source = False  # the rest is the port rule's
            return
        self._gup_source = False
        self._hit("REQ-4-PORT-2967")
        if not self._gup_down:
            self._find("REQ-4-PORT-2967",
                       f"the policy named the GUP, the GUP was up, and the client went "
                       f"on with {name} at t={t} without downloading from it", t)

    def _priority(self, m: Manager, t: int) -> None:
        """REQ-1-PRIORITY: the first manager of a heartbeat is the first available
        one by priority (the first listed, in the seed's reading)."""
        self._hit("REQ-1-PRIORITY")
        if self.interpretation.selection is Selection.FIRST:
            allowed = [self.managers[0]]
        else:
            # Managers the heartbeat may have tried unseen, up to (managers - 1)
            # session limits before this first record of it.
            window = t - (len(self.managers) - 1) * SESSION_LIMIT_MS - self.tolerance_ms
            up = [x for x in self.managers if x.name not in self._failed
                  and self._last_unreachable.get(x.name, -1) < window]
            top = min((x.priority for x in up), default=m.priority)
            allowed = [x for x in self.managers if x.priority <= top]
        if m not in allowed:
            self._find("REQ-1-PRIORITY",
                       f"the heartbeat at t={t} began with {m.name} (priority "
                       f"{m.priority}); expected {' or '.join(x.name for x in allowed)}",
                       t)

    def _port(self, rec: dict[str, Any], name: str, t: int) -> None:
        """REQ-4-PORT-8014/2967: content only from the port the source implies."""
        if name == Action.DOWNLOAD_GUP.value:
            self._hit("REQ-4-PORT-2967")
            want = self.gup or ("", GUP_PORT)
            if (rec.get("addr"), rec.get("port")) != want:
                self._find("REQ-4-PORT-2967",
                           f"GUP content fetched from {rec.get('addr')}:{rec.get('port')},"
                           f" not the GUP on {want[0]}:{want[1]}", t)
        else:
            self._hit("REQ-4-PORT-8014")
            m = self._manager(rec)
            if m is None or rec.get("server") == "-":
                self._find("REQ-4-PORT-8014",
                           f"manager content fetched from {rec.get('addr')}:"
                           f"{rec.get('port')}, not a manager's content port", t)

    def _upload(self, rec: dict[str, Any], t: int) -> None:
        # A restarted client may send again what it had not settled: only the
        # environment knows of restarts (_resend_ok, until the next acknowledgement).
        self._uploading = self.produced
        self._upload_t = t
        if "ids" not in rec:  # not recorded (a reset upload): nothing to judge
            return
        found = self._logs.upload(list(rec["ids"] or []), resent_ok=self._resend_ok)
        if found:
            self._find("REQ-5-LOGS", found, t)

    def _owed_acked(self, ids: list[str], t: int) -> None:
        """REQ-5-LOGS by identity (logs_produced with ids): the answer to an upload
        that began more than the tolerance after a log was produced must leave it
        acknowledged (now or before); what it does not is lost. Earlier uploads
        may miss it (the client listed its spool as the entry landed)."""
        for log_id in ids:
            self.owed.pop(log_id, None)
        began, self._upload_t = self._upload_t, None
        if began is None:
            return
        # In the order they were produced.
        lost = [(p, i) for i, p in self.owed.items() if began > p + self.tolerance_ms]
        if not lost:
            return
        for _, log_id in lost:
            del self.owed[log_id]
        p, first = lost[0]
        more = f" (and {len(lost) - 1} more produced by t={max(lost)[0]})" \
            if len(lost) > 1 else ""
        self._find("REQ-5-LOGS",
                   f"log {first}, produced at t={p}, is not among the ids acknowledged "
                   f"by t={t}, the answer to an upload that began at t={began}, "
                   f"{began - p} ms later{more}: lost", t)


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

    @classmethod
    def of(cls, interpretation: Interpretation, sylink: Any) -> ClientConfig:
        """From a :class:`~sephb.conformance.traces.sylink.Sylink`."""
        top = sylink.tiers()[0]
        chosen = top[:1] if interpretation.selection is Selection.FIRST else top
        return cls(frozenset((s.address, s.port) for s in chosen),
                   interpretation.switches[Switch.FAILOVER],
                   sylink.heartbeat_s * 1000, sylink.mode,
                   getattr(sylink, "randomization_s", 0) * 1000)


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
    given up within the request limit, a stalled session given up at its limit and
    not before (:class:`SessionLimit`); and in the client's own view the next
    heartbeat by the interval (the configuration's, else the default 300 s). A
    server cannot see a heartbeat that met only refusing managers, so in its view
    that rule is the suite's alone. What is still open at the end of a trace is
    :meth:`pending`.
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
    _session: SessionLimit = field(init=False)
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
        self.deadlines = Deadlines(
            self.timing, mode,
            config.interval_ms if config else HEARTBEAT_INTERVAL_S * 1000,
            self.tolerance_ms, config.randomization_ms if config else 0,
            next_heartbeat=not self.server_view, unseen=self.unseen)

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
             addr: str | None = None) -> tuple[str, str] | None:
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
        if what & _FAILS:
            self._logs.failed()
        if what & _PORT and port is not None and port != CONTENT_PORTS[name][0]:
            want, requirement = CONTENT_PORTS[name]
            return (requirement, f"{name} on port {port}, not {want}")
        found_logs = None
        if what & _UPLOAD and ids is not None:
            found_logs = self._logs.upload(ids)
        elif what & _ACK:
            found_logs = self._logs.ack(ids or [], duplicates or [])
        return None if found_logs is None else ("REQ-5-LOGS", found_logs)

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
            if addr is not None and (addr, port) not in config.first:
                allowed = " or ".join(f"{a}:{p}" for a, p in sorted(config.first))
                return ("REQ-1-PRIORITY", f"the heartbeat began with {addr}:{port}; "
                                          f"expected {allowed}")
            return None
        else:
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
_SESSION, _FAILS, _PORT, _UPLOAD, _ACK = (1 << i for i in range(5))
#: name -> what it does to a client's TraceProperties (bits above), from the sets
#: read off the table; a name with nothing to do is absent, so most records cost one
#: dict lookup.
_WHAT: Final[dict[str, int]] = {
    name: bits for name in {*SESSION_OPENS, *SESSION_ENDS, *UPLOAD_FAILS,
                            *CONTENT_PORTS, Action.UPLOAD_LOGS.value,
                            Event.LOGS_ACKED.value}
    if (bits := (_SESSION * (name in SESSION_OPENS or name in SESSION_ENDS)
                 | _FAILS * (name in UPLOAD_FAILS) | _PORT * (name in CONTENT_PORTS)
                 | _UPLOAD * (name == Action.UPLOAD_LOGS.value)
                 | _ACK * (name == Event.LOGS_ACKED.value)))
}
#: The names a TraceProperties acts on when it is not :attr:`watching
#: <TraceProperties.watching>`: all but those that only end a session (none is
#: pending then).
ACTS_ON: Final = frozenset(
    name for name, bits in _WHAT.items() if bits != _SESSION or name in SESSION_OPENS
) | frozenset().union(*(o for d in DEADLINES for o in d.opens.values()))
