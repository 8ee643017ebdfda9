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
  uploaded twice.

The properties read the model's parameters (:mod:`sephb.model.protocol`) and the
interpretation; they never restate a transition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from sephb.model.checker import Checker
from sephb.model.interpretations import Interpretation, Selection
from sephb.model.protocol import (
    ENTRY,
    GUP_PORT,
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

from .trace import is_transport

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


@dataclass(frozen=True)
class Finding:
    """A violation: which requirement, what happened, where in the trace."""

    requirement: str
    message: str
    index: int
    t: int


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
    #: What the checker was fed: (name, t, changed, source).
    observations: list[tuple[str, int, Any, Any]] = field(default_factory=list)
    produced: int = 0
    acked: set[str] = field(default_factory=set)
    _round_start: int | None = None
    _tried: set[str] = field(default_factory=set)
    _session_since: int | None = None
    _session_manager: str | None = None
    _uploading: int = 0
    _restarted: bool = False
    _failed: set[str] = field(default_factory=set)
    #: Rows explained before the client's restarts.
    _runs: list[str] = field(default_factory=list)
    #: Ids of the upload in flight, and of failed uploads not sent again yet.
    _in_upload: list[str] = field(default_factory=list)
    _unacked: set[str] = field(default_factory=set)
    #: The last URLs named the GUP, and no GUP download was seen since.
    _gup_source: bool = False
    #: The GUP was seen failing since those URLs.
    _gup_down: bool = False
    #: The last record was the acknowledgement of step 6.
    _sensors_done: bool = False
    #: When the client last held its push connection (None: not holding).
    _hold_at: int | None = None
    #: The manager a push-mode client last held its connection with.
    _held_with: str | None = None
    #: When each manager was last seen unreachable (a refused or dropped connect).
    _last_unreachable: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.checker = Checker(self.interpretation, mode=self.mode, hidden=self.hidden)

    # --- what the environment tells the oracle ----------------------------------------

    def logs_produced(self, count: int) -> None:
        self.produced += count

    def restarted(self, now: int) -> None:
        """The client was restarted: a new process starts in the initial state (a
        crash is outside the model), and its first heartbeat is due at once."""
        self._runs += self.checker.run()
        self.checker.reset()
        self._hold_at = None
        self._round_start = None
        self._tried = set()
        self._session_since = None
        self._restarted = True

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
        """Time advanced to ``now``: a pending session must have been given up."""
        since = self._session_since
        if since is not None and now > since + SESSION_LIMIT_MS + self.tolerance_ms:
            self._find("REQ-2-TIMEOUT-30000",
                       f"no session with {self._session_manager} within "
                       f"{SESSION_LIMIT_MS} ms (connected at t={since}), and the client "
                       f"still waits at t={now}", now)
            self._session_since = None

    # --- records ---------------------------------------------------------------------

    def feed(self, rec: dict[str, Any]) -> None:
        name = rec["event"]
        t = int(rec["t"])
        if is_transport(name, rec.get("role")):
            return  # a GUP download's own connection: not a step of the model
        self.tick(t)
        self._data(rec, name, t)
        if rec.get("server") == "-":
            self.index += 1
            return  # nothing listens there: the data properties named the port rule
        obs = (name, t, rec.get("changed"), rec.get("source"))
        self.observations.append(obs)
        v = self.checker.feed(*obs)
        if v is not None and not any(f.index == v.index for f in self.findings):
            self.findings.append(Finding(v.requirement, v.message, v.index, v.t))
        self.index += 1

    def path(self) -> list[str]:
        """Row names of one run of the model consistent with the records so far:
        what coverage counts."""
        return self._runs + self.checker.run()

    def _find(self, requirement: str, message: str, t: int) -> None:
        self.findings.append(Finding(requirement, message, self.index, t))

    def _hit(self, requirement: str) -> None:
        self.exercised[requirement] = self.exercised.get(requirement, 0) + 1

    def _manager(self, rec: dict[str, Any]) -> Manager | None:
        for m in self.managers:
            if m.address == rec.get("addr") and m.port == rec.get("port"):
                return m
        return None

    def _data(self, rec: dict[str, Any], name: str, t: int) -> None:
        if self._sensors_done and rec.get("role") == "manager":
            # Step 7 right after step 6: a push-mode client keeps the connection
            # (HOLD); the table says so too, but hidden timers let a checker explain
            # an early disconnect away, and the environment knows none was due.
            self._sensors_done = False
            if self.mode is Mode.PUSH and name == Action.DISCONNECT.value:
                self._hit("REQ-7-PUSH")
                self._find("REQ-7-PUSH", f"the client disconnected at t={t} right "
                           f"after its check-in, in push mode", t)
        if name in (Action.CONNECT.value, Action.DISCONNECT.value) \
                and rec.get("role") == "manager":
            self._gup_source = False  # a check-in ended: the GUP is owed nothing
        if name == Action.CONNECT.value and rec.get("role") == "manager":
            self._connect(rec, t)
        elif name == Event.INDEX_RECEIVED.value:
            self._session_since = None
        elif name in (Event.CONNECT_FAILED.value, Action.DISCONNECT.value):
            if self._session_since is not None and self._session_manager:
                self._failed.add(self._session_manager)
            self._session_since = None
        elif name in (Action.DOWNLOAD_MANAGER.value, Action.DOWNLOAD_GUP.value):
            self._port(rec, name, t)
            self._gup_owed(name, t)
        elif name == Action.UPLOAD_LOGS.value:
            self._gup_owed(name, t)
            self._upload(rec, t)
        elif name == Event.LOGS_ACKED.value:
            ids = set(rec.get("ids") or [])
            self.acked |= ids
            self._in_upload = []
            self._hit("REQ-5-LOGS")
            if len(self.acked) < self._uploading:
                self._find("REQ-5-LOGS",
                           f"{self._uploading - len(self.acked)} produced log(s) never "
                           f"reached the manager: lost", t)
        elif name == Event.URLS_RECEIVED.value:
            self._gup_source = rec.get("source") == "gup"
            self._gup_down = self.gup is not None and not self.gup_up()
        elif name == Event.SENSORS_ACKED.value:
            self._failed = set()
            self._sensors_done = True
        elif name == Action.HOLD.value:
            m = self._manager(rec)
            self._held_with = m.name if m else None
            self._hold_at = t
        elif name == Event.CONNECTION_LOST.value or name.endswith("_FAILED"):
            self._hold_at = None
            self._unacked |= set(self._in_upload) - self.acked
            self._in_upload = []
        elif name == Action.DISCONNECT.value and self._hold_at is not None:
            self._push_disconnect(t)
        elif name == Event.HEARTBEAT_DUE.value and rec.get("role") == "manager":
            # A push heartbeat ended the hold: a new heartbeat on the held connection.
            m = self._manager(rec)
            self._round_start, self._tried = t, {m.name} if m else set()

    def _connect(self, rec: dict[str, Any], t: int) -> None:
        m = self._manager(rec)
        if m is None:
            return
        self._session_since, self._session_manager = t, m.name
        if m.name == self._held_with:
            # A push-mode client reconnecting to the manager it held: the same
            # heartbeat (or the next) on the same manager, not a new choice.
            self._held_with = None
            return
        # The first CONNECT seen may come after failovers the servers could not see
        # (a refused connect): the heartbeat began up to (managers - 1) session
        # limits earlier.
        failover = self.interpretation.switches[Switch.FAILOVER]
        unseen = (len(self.managers) - 1) * SESSION_LIMIT_MS if failover else 0
        new_round = (self._round_start is None or self._restarted
                     or t >= self._round_start - unseen + self.interval_ms
                     - self.tolerance_ms)
        if new_round:
            self._round_start, self._tried, self._restarted = t, {m.name}, False
            self._hit("REQ-7-PULL")
            self._priority(m, t)
            return
        if m.name in self._tried or not failover:
            self._find("REQ-2-TIMEOUT-30000",
                       f"a new check-in with {m.name} at t={t}, "
                       f"{t - (self._round_start or 0)} ms after the last one began: "
                       f"the next one is due after the {self.interval_ms} ms interval", t)
        self._tried.add(m.name)

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

    def _push_disconnect(self, t: int) -> None:
        """REQ-7-PUSH: a push-mode client does not fully disconnect; its held
        connection ends only when it is lost, or at a push heartbeat (documented)."""
        held_since, self._hold_at = self._hold_at, None
        assert held_since is not None
        self._hit("REQ-7-PUSH")
        if self.mode is Mode.PUSH and t < held_since + self.interval_ms - self.tolerance_ms:
            self._find("REQ-7-PUSH",
                       f"the client closed its held push connection at t={t}, "
                       f"{t - held_since} ms after holding it, with no change pushed and "
                       f"no push heartbeat due", t)

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
        ids = list(rec.get("ids") or [])
        # Logs of an upload that failed were not acknowledged: the next upload must
        # carry them again (a client that dropped them has lost them).
        dropped = sorted(self._unacked - set(ids))
        if dropped:
            self._find("REQ-5-LOGS",
                       f"log(s) {', '.join(dropped[:3])} of a failed upload were not "
                       f"sent again: lost", t)
        self._unacked -= set(ids)
        self._in_upload = ids
        again = [i for i in ids if i in self.acked]
        if again and not self._restarted:
            self._find("REQ-5-LOGS",
                       f"log(s) {', '.join(again[:3])} uploaded again after the manager "
                       f"acknowledged them", t)
        self._uploading = self.produced


#: Acknowledgements a client's :class:`TraceProperties` remembers, to see logs
#: uploaded again (a client that never settles them sends them at the next upload).
ACK_WINDOW = 8


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

    @classmethod
    def of(cls, interpretation: Interpretation, sylink: Any) -> ClientConfig:
        """From a :class:`~sephb.conformance.sylink.Sylink`."""
        top = sylink.tiers()[0]
        chosen = top[:1] if interpretation.selection is Selection.FIRST else top
        return cls(frozenset((s.address, s.port) for s in chosen),
                   interpretation.switches[Switch.FAILOVER],
                   sylink.heartbeat_s * 1000, sylink.mode)


@dataclass
class TraceProperties:
    """The data properties one client's trace shows by itself, for offline
    validation (``sephb validate --data``): no environment, no configuration.

    :class:`Oracle` judges the same requirements with what the suite's environment
    knows (the configured GUP and managers, the logs produced, the clock); here
    only what the records carry counts, so each rule flags only what the records
    prove:

    * REQ-2-TIMEOUT-30000: a record of a session still pending (``CONNECT`` seen,
      no ``INDEX_RECEIVED``, ``DISCONNECT`` or failure since) later than the session
      limit plus ``tolerance_ms`` (recording jitter): the client kept waiting;
    * REQ-4-PORT-2967 / REQ-4-PORT-8014: GUP content on another port than the
      GUP's, manager content on another port than the manager's content port;
    * REQ-5-LOGS: logs of a failed upload missing from the next upload (lost), and
      logs uploaded again after an acknowledgement (the manager's ``duplicates``,
      or ids acknowledged twice within the last :data:`ACK_WINDOW` uploads). A
      client restarted between an acknowledgement and settling it would re-send
      too: a trace cannot show the restart.

    Given the client's configuration (``config``), two more, where the view makes
    them provable. In the client's own view (``server_view`` False) every attempt
    shows: the first ``CONNECT`` after a ``HEARTBEAT_DUE`` must go to a manager a
    heartbeat may begin with (REQ-1-PRIORITY), and heartbeats are an interval apart
    (REQ-2-TIMEOUT-30000: "terminates until the next heartbeat interval"), but for
    the one after a lost push connection. In a server's view refused connects do
    not show, so only without failover (``seed``) is every manager connect a
    heartbeat's first: each must go to that manager, an interval after the last. A
    restarted client checks in at once; a trace cannot show the restart, so the
    interval rule reports it.
    """

    tolerance_ms: int = 1000
    config: ClientConfig | None = None
    server_view: bool = False
    _last_heartbeat: int | None = None
    _awaiting_first: bool = False
    #: A held push connection was lost: the next heartbeat may come at once.
    _lost: bool = False
    _session_since: int | None = None
    _in_upload: list[str] = field(default_factory=list)
    _unacked: set[str] = field(default_factory=set)
    _acked: list[frozenset[str]] = field(default_factory=list)

    def feed(self, name: str, t: int, port: int | None = None,
             ids: list[str] | None = None, duplicates: list[str] | None = None,
             addr: str | None = None) -> tuple[str, str] | None:
        """Check one record (not a GUP's own transport record); the (requirement,
        message) of what it proves wrong, or None."""
        since = self._session_since
        if since is not None and t > since + SESSION_LIMIT_MS + self.tolerance_ms:
            self._session_since = None
            return ("REQ-2-TIMEOUT-30000",
                    f"{name} at t={t}: no session within {SESSION_LIMIT_MS} ms of the "
                    f"connect at t={since}, and the client still waited")
        if self.config is not None:
            found = self._configured(name, t, addr, port)
            if found is not None:
                return found
        what = _WHAT.get(name)
        if what is None:  # most records: only the session limit above applies
            return None
        if what & _OPENS:
            if since is None:  # an index request within a session does not reopen it
                self._session_since = t
        elif what & _ENDS:
            self._session_since = None
        if what < _FAILS:  # a session bit only (the bits are in this order)
            return None
        if what & _FAILS:
            self._unacked |= set(self._in_upload)
            self._in_upload = []
        if what & _PORT and port is not None and port != CONTENT_PORTS[name][0]:
            want, requirement = CONTENT_PORTS[name]
            return (requirement, f"{name} on port {port}, not {want}")
        if what & _UPLOAD and ids is not None:
            return self._upload(ids)
        if what & _ACK:
            return self._ack(ids or [], duplicates or [])
        return None

    def _configured(self, name: str, t: int, addr: str | None, port: int | None
                    ) -> tuple[str, str] | None:
        config = self.config
        assert config is not None
        if name == Event.CONNECTION_LOST.value:
            self._lost = True
            return None
        if self.server_view:
            if name != Action.CONNECT.value or config.failover:
                return None
            begins = True  # without failover, every connect begins a heartbeat
        elif name == Event.HEARTBEAT_DUE.value:
            begins, self._awaiting_first = True, True
        elif name == Action.CONNECT.value and self._awaiting_first:
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
        if begins and not lost and last is not None \
                and t < last + config.interval_ms - self.tolerance_ms:
            return ("REQ-2-TIMEOUT-30000",
                    f"a new heartbeat at t={t}, {t - last} ms after the last one: the "
                    f"next one is due after the {config.interval_ms} ms interval")
        return None

    def _upload(self, ids: list[str]) -> tuple[str, str] | None:
        dropped = sorted(self._unacked - set(ids))
        self._unacked.clear()
        self._in_upload = list(ids)
        if dropped:
            return ("REQ-5-LOGS", f"log(s) {', '.join(dropped[:3])} of a failed upload "
                                  f"were not sent again: lost")
        again = sorted(i for i in ids if any(i in a for a in self._acked))
        if again:
            return ("REQ-5-LOGS", f"log(s) {', '.join(again[:3])} uploaded again after "
                                  f"the manager acknowledged them")
        return None

    def _ack(self, ids: list[str], duplicates: list[str]) -> tuple[str, str] | None:
        self._in_upload = []
        again = sorted(set(duplicates)
                       | {i for i in ids if any(i in a for a in self._acked)})
        self._acked = [*self._acked[1 - ACK_WINDOW:], frozenset(ids)]
        if again:
            return ("REQ-5-LOGS", f"log(s) {', '.join(again[:3])} uploaded again after "
                                  f"the manager acknowledged them")
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
_OPENS, _ENDS, _FAILS, _PORT, _UPLOAD, _ACK = (1 << i for i in range(6))
#: name -> what it does to a client's TraceProperties (bits above), from the sets
#: read off the table; a name with nothing to do is absent, so most records cost one
#: dict lookup.
_WHAT: Final[dict[str, int]] = {
    name: bits for name in {*SESSION_OPENS, *SESSION_ENDS, *UPLOAD_FAILS,
                            *CONTENT_PORTS, Action.UPLOAD_LOGS.value,
                            Event.LOGS_ACKED.value}
    if (bits := (_OPENS * (name in SESSION_OPENS) | _ENDS * (name in SESSION_ENDS)
                 | _FAILS * (name in UPLOAD_FAILS) | _PORT * (name in CONTENT_PORTS)
                 | _UPLOAD * (name == Action.UPLOAD_LOGS.value)
                 | _ACK * (name == Event.LOGS_ACKED.value)))
}
