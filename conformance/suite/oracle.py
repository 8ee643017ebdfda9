"""The suite's oracle: one client's server-side records judged as they arrive.

The :class:`Oracle` runs the model's compiled checker (control) and the data and
deadline rules of :mod:`sephb.conformance.traces.properties` (data) on every record,
with what only the suite knows: which managers it made unreachable, whether the GUP
answers, the logs it produced and the site's priorities. ``sephb validate --data``
applies the same rules to a recorded trace without that knowledge
(:class:`~sephb.conformance.traces.properties.TraceProperties`).

Why this module is long: every rule that needs the environment's knowledge lives
here, next to the excuses that knowledge allows (an unseen heartbeat at a refusing
manager, a failover to a hanging one, a process starved of a CPU); split apart, a
rule and its excuse would drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from sephb.conformance.traces.properties import (
    CONTENT_PORTS,
    HIDDEN,
    UPLOAD_FAILS,
    Finding,
    LogLedger,
    PushHold,
    RequestGiveUp,
    SessionLimit,
)
from sephb.conformance.traces.trace import is_transport
from sephb.model.checker import Checker
from sephb.model.deadlines import (
    DEADLINES,
    FIRST_HEARTBEAT,
    HEARTBEAT_STARTS,
    JUDGED_ELSEWHERE,
    Deadlines,
    Open,
)
from sephb.model.interpretations import Interpretation, Selection
from sephb.model.protocol import (
    ENTRY,
    GUP_PORT,
    SESSION_LIMIT_MS,
    TABLE,
    Action,
    Event,
    Mode,
    Switch,
)

#: Manager actions that come once step 4 is over: the entry actions of the states
#: the table leads to from a download, other than another download.
_DOWNLOADING = frozenset(r.source for r in TABLE if r.event is Event.CONTENT_RECEIVED)
_AFTER_CONTENT = frozenset(ENTRY[r.dest].value for r in TABLE
                           if r.source in _DOWNLOADING and r.dest not in _DOWNLOADING)
#: The requirement a heartbeat that never failed over breaks.
_FAILOVER_REQUIREMENT = next(d.requirement for d in JUDGED_ELSEWHERE
                             if d.id == "failover")
#: A heartbeat that may have begun where no server saw it, and failed over nowhere.
_UNSEEN_HEARTBEAT = (
    "a heartbeat was due by t={opened} ({opener}); by t={due} no manager had seen one, "
    "though one was reachable: if it began at a manager that hangs (a connect no "
    "server sees), that session was not given up at the limit or the failover to a "
    "reachable manager never came; at t={now} still none ({late} ms late, tolerance "
    "{tol} ms)")
_FIRST_HEARTBEAT_RULE = next(d for d in JUDGED_ELSEWHERE if d.id == FIRST_HEARTBEAT)


@dataclass
class Manager:
    """What the oracle knows of one manager: where it is and its priority."""

    name: str
    address: str
    port: int
    priority: int


#: Deadlines of the client's own actions (the rest are the environment's view).
_CLIENT_DEADLINES: Final = frozenset(d.id for d in DEADLINES) | {FIRST_HEARTBEAT}


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
    #: sylink.xml's RandomizationRange in ms when enabled (A15), else 0.
    randomization_ms: int = 0
    #: Model ms the client's processes have waited for a CPU since its last start
    #: (a process over the wire; None in process): excused from its first
    #: heartbeat's due time (see _unseen_heartbeat).
    start_wait: Callable[[], int] | None = None
    #: Model ms the client's process has waited for a CPU since a model time (over
    #: the wire; None in process): excused from every deadline of the client's.
    cpu_wait: Callable[[int], int] | None = None
    _start_allowance: int = field(default=0, init=False)
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
    #: Documented reading, since URLs that named the GUP: the manager they came
    #: from, when, and how many of them are neither delivered by the GUP nor tried
    #: on the manager (None: the check-in owes no fallback).
    _fallback: tuple[Manager, int, int] | None = None
    #: The serial of the client's copy of index.dat as the records show it (None:
    #: empty): it changes when a changed index's content arrives. Not known after
    #: a restart (a killed process's last records may not show) until an index
    #: answer says so again.
    _copy: str | None = None
    _copy_known: bool = True
    #: The serial of the last index answer, until its content arrives.
    _offered: str | None = None
    #: Requests after the session, keyed by server and connection (REQ-X-ABORT).
    _requests: RequestGiveUp = field(init=False)
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
    #: When the last session of the current heartbeat failed.
    _failed_at: int | None = None

    def __post_init__(self) -> None:
        self.checker = Checker(self.interpretation, mode=self.mode, hidden=self.hidden)
        self._session = SessionLimit(self.tolerance_ms)
        self._requests = RequestGiveUp(
            self.interpretation.timing.request_limit_ms(self.interval_ms),
            self.tolerance_ms)
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
                      self.tolerance_ms, self.randomization_ms,
                      switches=self.interpretation.switches,
                      heartbeat_slack_ms=(len(self.managers) - 1) * SESSION_LIMIT_MS
                      if unseen else 0)
        d.excuse = self._unseen_heartbeat
        return d

    def _unseen_heartbeat(self, late: Open, now: int) -> int | None:
        """A next heartbeat may have come where no server saw it: every manager it
        could begin with refused (or, with failover, every manager). Only the
        environment knows; the deadline then moves on by an interval. Likewise a
        failover owed to managers that have since become unreachable may be going
        on unseen, a session limit per such manager."""
        if late.deadline == "failover":
            untried = [m for m in self.managers if m.name not in self._tried]
            if all(self._maybe_tried_unseen(m) for m in untried):
                return max(late.due, now) + max(1, len(untried)) * SESSION_LIMIT_MS
            return None
        if self.cpu_wait is not None and late.deadline in _CLIENT_DEADLINES:
            # A process that wanted a CPU and did not get one (a busy machine) acts
            # late through no fault of its own: the time it spent waiting on a run
            # queue since the deadline opened moves it on. A client that waits on
            # purpose sleeps, which is not counted.
            starved = self.cpu_wait(late.opened)
            if starved > late.starved_ms:
                later = late.due + starved - late.starved_ms
                late.starved_ms = starved
                return later
        if late.deadline not in ("next-heartbeat", FIRST_HEARTBEAT):
            return None
        if late.deadline == FIRST_HEARTBEAT and self.start_wait is not None:
            # A process that wanted a CPU and did not get one (a busy machine)
            # started late through no fault of its own: the time it spent waiting
            # on a run queue since its start moves the due time on. A client that
            # waits on purpose sleeps, which is not counted.
            waited = late.opened + self._start_allowance + self.start_wait()
            if waited > late.due:
                return waited
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
        # With failover and connects that hang unseen, the check-in may have gone on
        # after its last record (failovers to hanging managers) and the next one may
        # begin with such managers too: once per deadline, a session limit more per
        # manager that hung since (the slack of the deadline covers only one side).
        hung = sum(1 for m in self.managers
                   if self._last_unreachable.get(m.name, -1) >= late.opened)
        if failover and Event.SESSION_TIMEOUT in self.hidden and hung \
                and not late.excused:
            late.excused = True
            # If it is broken even so, the heartbeat may well have begun, unseen, at
            # a manager that hangs: what is missing is the failover.
            late.requirement = _FAILOVER_REQUIREMENT or late.requirement
            late.broken = _UNSEEN_HEARTBEAT
            return late.due + hung * SESSION_LIMIT_MS
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

    def started(self, now: int, allowance_ms: int = 0) -> None:
        """The client (a process) was started at ``now``: its first heartbeat is due
        at once (A10), ``allowance_ms`` later for a process to start. Call it after
        :meth:`restarted` on a restart."""
        rule = _FIRST_HEARTBEAT_RULE
        assert rule.requirement is not None  # the table's, named in model/deadlines.py
        self._start_allowance = allowance_ms
        self.deadlines.expect(FIRST_HEARTBEAT, rule.requirement,
                              "its start", now, now + allowance_ms, rule.text,
                              HEARTBEAT_STARTS, rule.broken)

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
        self._copy_known, self._offered = False, None
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
                       f"client still waits at t={now}", now, timing=True)
        found = self.deadlines.overdue(now)
        if found is not None:
            self._find(*found, now, timing=True)

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

    def _find(self, requirement: str, message: str, t: int, timing: bool = False
              ) -> None:
        """A finding; ``timing``: it rests on how late or early something was (a
        deadline, a limit), which scheduling noise beyond the tolerance can fake."""
        self.findings.append(Finding(requirement, message, self._at, t, timing=timing))

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
                self._find("REQ-7-PUSH", found, t, timing=True)
        late = self.deadlines.feed(name, t)
        if late is not None:
            self._find(*late, t, timing=True)
        if name in (Action.CONNECT.value, Action.DISCONNECT.value) \
                and rec.get("role") == "manager":
            self._gup_source = False  # a check-in ended: the GUP is owed nothing
            self._fallback = None
        elif self._fallback is not None:
            self._fallback_owed(rec, name, t)
        if self._session.see(name, t):
            self._round_failed, self._failed_at = True, t
            if self._session.early is not None:
                self._find("REQ-2-TIMEOUT-30000", self._session.early, t, timing=True)
            if self._session_manager:
                self._failed.add(self._session_manager)  # it gave no session
            self._failover_due(name, t)
        if name in UPLOAD_FAILS:
            self._logs.failed()
        self._request_limit(rec, name, t)
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
        elif name == Event.INDEX_RECEIVED.value:
            self._index_compared(rec, t)
        elif name == Event.CONTENT_RECEIVED.value and self._offered is not None:
            # The new index is the client's once its content has arrived.
            self._copy, self._copy_known, self._offered = self._offered, True, None
        elif name == Event.URLS_RECEIVED.value:
            self._gup_source = rec.get("source") == "gup"
            self._gup_down = self.gup is not None and not self.gup_up()
            m = self._manager(rec)
            self._fallback = (m, t, len(rec.get("urls") or ())) \
                if m is not None and self._gup_source \
                and self.interpretation.switches[Switch.GUP_FALLBACK] else None
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
        # A connect to a manager not yet tried, soon enough after a failed session
        # (at once, or after the untried managers' connects hung unseen), is a
        # failover within the heartbeat however long its chain has been.
        left = len(self.managers) - len(self._tried) - 1
        failing_over = (failover and self._round_failed and m.name not in self._tried
                        and self._failed_at is not None
                        and t <= self._failed_at + self.tolerance_ms + (
                            left * SESSION_LIMIT_MS
                            if Event.SESSION_TIMEOUT in self.hidden else 0))
        new_round = (self._round_start is None or self._restarted
                     or (not failing_over
                         and t >= self._round_start - unseen + self.interval_ms
                         - self.tolerance_ms))
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
                       f"the next one is due after the {self.interval_ms} ms interval", t,
                       timing=True)
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

    def _request_limit(self, rec: dict[str, Any], name: str, t: int) -> None:
        """REQ-X-ABORT, the lower bound: a stalled request after the session is not
        given up before the request limit (:class:`RequestGiveUp`, as offline)."""
        early = self._requests.see(name, t, rec.get("error"),
                                   (rec.get("server"), rec.get("conn")))
        if early is not None:
            self._find("REQ-X-ABORT", early, t, timing=True)

    def _index_compared(self, rec: dict[str, Any], t: int) -> None:
        """REQ-3-INDEX: the client compares index.dat against its copy, and its copy
        is the last index whose content arrived. A client that takes a new serial
        before the content (and then finds "no change" while the content never
        came) skips a download for good."""
        serial, changed = rec.get("serial"), rec.get("changed")
        if not isinstance(serial, str) or not isinstance(changed, bool):
            return
        self._offered = serial
        if changed:
            return
        self._hit("REQ-3-INDEX")
        if self._copy_known and serial != self._copy:
            self._find("REQ-3-INDEX",
                       f"index.dat at t={t} was unchanged against the client's copy "
                       f"(serial {serial}), but no content of {serial} ever arrived: "
                       f"its copy should be {self._copy or 'empty'} (a copy changes "
                       f"only when the new index's content has arrived)", t)
        self._copy, self._copy_known, self._offered = serial, True, None

    def _fallback_owed(self, rec: dict[str, Any], name: str, t: int) -> None:
        """REQ-4-GUP-FALLBACK (documented reading): content the GUP did not deliver
        comes from the manager. Over the wire a failed GUP download leaves no record
        (a refused connect, an error the client gives up on), so the checker may
        explain a client that skips the manager by a manager download that failed
        unseen; the suite knows whether the manager was reachable."""
        assert self._fallback is not None
        m, since, left = self._fallback
        role = rec.get("role")
        if (name == Event.CONTENT_RECEIVED.value and role == "gup") \
                or name == Action.DOWNLOAD_MANAGER.value:
            # One URL delivered by the GUP, or tried on the manager (a fallback).
            self._fallback = (m, since, left - 1)
            if name == Action.DOWNLOAD_MANAGER.value:
                self._hit("REQ-4-GUP-FALLBACK")
        elif role == "manager" and name in _AFTER_CONTENT:
            self._fallback = None
            # Nothing owed when every URL was delivered or tried on the manager, the
            # GUP may have delivered unseen (it was never made to fail), or the
            # manager could not be reached where no server saw it.
            if left <= 0 or not self._gup_down or self.unreachable(m.name) \
                    or self._last_unreachable.get(m.name, -1) >= since:
                return
            self._hit("REQ-4-GUP-FALLBACK")
            self._find("REQ-4-GUP-FALLBACK",
                       f"the GUP was made to fail and {left} of the URLs at t={since} "
                       f"were neither delivered by it nor tried on {m.name}, which was "
                       f"reachable; the client went on with {name} at t={t} (the "
                       f"documented reading falls back to the manager)", t)

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
