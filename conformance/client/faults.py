"""Seeded-fault clients: the reference core, each breaking exactly one rule of the seed.

Theory of operation
-------------------
A conformance suite is only as good as the wrong clients it rejects. Each fault here
is a small subclass of :class:`~sephb.conformance.client.core.ClientCore` that changes one
decision and inherits every other one, so a suite that passes the reference and fails
the fault has caught exactly that rule (:attr:`Fault.requirement`). The tests in
``tests/test_faults.py`` pin both halves: a scenario where the fault differs from the
reference in the intended way, and one where it is silent because its rule is not
exercised.

A fault changes the client in one of two ways:

* **Table mutations** (:class:`MutatedCore`). The move itself is wrong: the client
  follows a copy of its interpretation's table in which some rows are redirected,
  relabelled or bypassed. The copy is derived from ``interpretation.rows()`` with
  :func:`dataclasses.replace` by the small mutations below (:func:`redirect`,
  :func:`swap`, :func:`bypass`), never retyped, so a fault keeps following the model
  as it evolves. A mutation that matches no row raises :class:`StaleFault` when the
  client is built: the model moved under the fault and the fault must be updated,
  not silently become the reference. Mutated rows keep their requirement id, which
  names the rule the original row enforced.
* **Hook overrides.** The move is right but a decision the table does not hold is
  wrong: which manager comes first, when the next heartbeat is due, which port a
  download goes to, what the guards see, when logs may leave the queue. Each is one
  override of a :class:`ClientCore` hook, calling the reference for everything else.

A fault is only as observable as the adapter driving it makes it. Two are worth
knowing about: ``drops-logs-on-failure`` settles whatever the adapter counts as in
flight, so an adapter must count the whole batch as in flight until it is answered
(``client.py`` does); ``retries-at-once`` against a manager that refuses connections
reconnects in a tight loop, bounded only by the run's heartbeat count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final

from sephb.conformance.client.core import ClientCore, Effect, Timer
from sephb.model.errors import UsageError
from sephb.model.protocol import (
    GUP_PORT,
    MANAGER_CONTENT_PORT,
    REQUIREMENTS,
    REST_STATES,
    SESSION_PENDING,
    Action,
    Context,
    Event,
    Row,
    State,
)

__all__ = ["FAULTS", "Fault", "MutatedCore", "StaleFault", "bypass", "core_class",
           "redirect", "swap"]

S, E = State, Event

#: A table mutation: the rows of an interpretation in, the faulty client's rows out.
Mutation = Callable[[tuple[Row, ...]], tuple[Row, ...]]


class StaleFault(RuntimeError):
    """A mutation found nothing to mutate: the model changed under a fault."""


def _stale(what: str) -> StaleFault:
    return StaleFault(f"no row {what} in the table: the model changed under this "
                      f"fault; update its mutation in sephb.conformance.client.faults")


# --- mutations ---------------------------------------------------------------------


def redirect(source: State, event: Event, dest: State, to: State) -> Mutation:
    """Rows ``source --event--> dest`` (any guard) go to ``to`` instead."""

    def mutate(rows: tuple[Row, ...]) -> tuple[Row, ...]:
        hit = [(r.source, r.event, r.dest) == (source, event, dest) for r in rows]
        if not any(hit):
            raise _stale(f"{source.value}--{event.value}-->{dest.value}")
        return tuple(
            replace(r, dest=to) if h else r for r, h in zip(rows, hit, strict=True))

    return mutate


def swap(a: tuple[State, Event], b: tuple[State, Event]) -> Mutation:
    """Exchange two steps of the check-in: state ``a`` (left on its event) and state
    ``b`` trade places everywhere, so whatever led into one leads into the other and
    whatever followed one follows the other. The result is a coherent client that
    performs the two steps in the other order."""
    states = {a[0]: b[0], b[0]: a[0]}
    events = {a[1]: b[1], b[1]: a[1]}

    def mutate(rows: tuple[Row, ...]) -> tuple[Row, ...]:
        out = tuple(
            replace(r, source=states.get(r.source, r.source),
                    event=events.get(r.event, r.event), dest=states.get(r.dest, r.dest))
            for r in rows
        )
        if out == rows:
            raise _stale(f"touching {a[0].value} or {b[0].value}")
        return out

    return mutate


def bypass(state: State, leave: Event) -> Mutation:
    """Never enter ``state``: each row into it is replaced by the rows by which
    ``state`` is left on ``leave``, taken at once (their guards decide, as before)."""

    def mutate(rows: tuple[Row, ...]) -> tuple[Row, ...]:
        exits = [r for r in rows if r.source is state and r.event is leave]
        into = [r for r in rows if r.dest is state]
        if not exits or not into:
            raise _stale(f"into {state.value} or {state.value}--{leave.value}-->")
        out: list[Row] = []
        for r in rows:
            if r.dest is not state:
                out.append(r)
                continue
            # Merging two guards would need a conjunction the table cannot express.
            if r.guard is not None:
                raise StaleFault(f"cannot bypass {state.value}: {r.name} enters it "
                                 f"under a guard; update sephb.conformance.client.faults")
            out += [replace(x, source=r.source, event=r.event) for x in exits]
        return tuple(out)

    return mutate


class MutatedCore(ClientCore):
    """A core that follows its interpretation's table passed through
    :attr:`mutations`, in order (a tuple, so that a class attribute never binds)."""

    mutations: ClassVar[tuple[Mutation, ...]] = ()

    def _table(self) -> tuple[Row, ...]:
        rows = super()._table()
        for mutate in self.mutations:
            rows = mutate(rows)
        return rows


# --- the faults --------------------------------------------------------------------


class IgnoresSessionLimit(ClientCore):
    """No timer while the session is pending: a manager that never answers holds the
    client in CONNECTING or FETCHING_INDEX forever."""

    def _timer_for(self, came_from: State, dest: State, now: int) -> Timer | None:
        if dest in SESSION_PENDING:
            return None
        return super()._timer_for(came_from, dest, now)


class ContinuesAfterTimeout(MutatedCore):
    """When the session limit expires while index.dat is awaited, the check-in goes
    on with the log upload to the same manager. (In CONNECTING there is no session to
    go on with, so that timeout still ends the check-in.)"""

    mutations = (redirect(S.FETCHING_INDEX, E.SESSION_TIMEOUT, S.IDLE, S.UPLOADING_LOGS),)


class RetriesAtOnce(ClientCore):
    """After a check-in that could not establish a session, the next heartbeat is due
    at once instead of at the interval. Every row from a session-pending state into
    IDLE is such a failure, so the states alone identify it."""

    def _timer_for(self, came_from: State, dest: State, now: int) -> Timer | None:
        if dest is State.IDLE and came_from in SESSION_PENDING:
            return Timer(now, Event.HEARTBEAT_DUE)
        return super()._timer_for(came_from, dest, now)


class LowestPriorityFirst(ClientCore):
    """Managers in reverse priority order: the lowest-priority block first.

    The sort is stable over the reference's order, so within one priority the
    reference's choice (first listed, or its random pick) is kept and a client whose
    managers share one priority behaves exactly like the reference."""

    def _failover_order(self) -> list[int]:
        order = super()._failover_order()
        # A larger number is a lower priority (sylink.xml, KB 151377).
        return sorted(order, key=lambda i: -self.managers[i].priority)


class GupDownloadOn8014(ClientCore):
    """GUP content is fetched from the GUP's host on the manager content port."""

    def _target(self, action: Action) -> tuple[str | None, int | None]:
        host, port = super()._target(action)
        if action is Action.DOWNLOAD_GUP and self.urls:
            return host, MANAGER_CONTENT_PORT
        return host, port


class ManagerDownloadOn2967(ClientCore):
    """Manager content is fetched from the manager's host on the GUP port."""

    def _target(self, action: Action) -> tuple[str | None, int | None]:
        host, port = super()._target(action)
        if action is Action.DOWNLOAD_MANAGER and self.manager is not None:
            return host, GUP_PORT
        return host, port


class IgnoresLocationSource(MutatedCore):
    """Content comes from the manager even when the location's policy names a GUP.

    Only the GUP reading is ignored: a policy naming no heartbeat source still skips
    the download, because fetching URLs against it would also break REQ-3-LU-POLICY
    and this fault must break one rule."""

    mutations = (redirect(S.FETCHING_URLS, E.URLS_RECEIVED, S.DOWNLOADING_GUP,
                          S.DOWNLOADING_MANAGER),)


class UrlsWithoutChange(ClientCore):
    """URLs are requested after every index.dat, changed or not (the policy still
    decides: a location without a heartbeat source fetches nothing)."""

    def _context(self) -> Context:
        return replace(super()._context(), index_changed=True)


class SensorsBeforeLogs(MutatedCore):
    """Step 6 before step 5: LAN sensors and learned applications are uploaded first,
    then the logs, then the check-in ends as its mode says. Logs still settle on
    their own acknowledgement, now at the end of the check-in."""

    mutations = (swap((S.UPLOADING_LOGS, E.LOGS_ACKED),
                      (S.UPLOADING_SENSORS, E.SENSORS_ACKED)),)


class SkipsSensorUpload(MutatedCore):
    """Acknowledged logs end the check-in (disconnect or hold, by mode): the LAN
    sensors and learned applications are never uploaded."""

    mutations = (bypass(S.UPLOADING_SENSORS, E.SENSORS_ACKED),)


class DisconnectsInPush(MutatedCore):
    """A push-mode client disconnects at the end of each check-in, as in pull mode,
    and checks in again at the heartbeat interval."""

    mutations = (redirect(S.UPLOADING_SENSORS, E.SENSORS_ACKED, S.PUSH_HELD, S.IDLE),)


class StaysConnectedInPull(MutatedCore):
    """A pull-mode client keeps its connection held at the end of each check-in, as
    in push mode (and, like a push client of its interpretation, heartbeats on the
    held connection or waits for a push)."""

    mutations = (redirect(S.UPLOADING_SENSORS, E.SENSORS_ACKED, S.IDLE, S.PUSH_HELD),)


class DropsLogsOnFailure(ClientCore):
    """A failed log upload settles the logs anyway: they leave the queue unsent."""

    def _settles_logs(self, row: Row) -> bool:
        return super()._settles_logs(row) or (
            row.source is State.UPLOADING_LOGS and row.event is Event.REQUEST_FAILED)


class UploadsLogsTwice(ClientCore):
    """Acknowledged logs never settle, so every heartbeat uploads them again."""

    def _settles_logs(self, row: Row) -> bool:
        return False


class ChecksInLate(ClientCore):
    """After a check-in, the next heartbeat is due one interval later than the
    reference's: a pull client checking in every 600 s instead of 300 s."""

    def _timer_for(self, came_from: State, dest: State, now: int) -> Timer | None:
        timer = super()._timer_for(came_from, dest, now)
        if dest is State.IDLE and timer is not None:
            return Timer(timer.at + self.interval_ms, timer.event)
        return timer


class WaitsForeverAfterSession(ClientCore):
    """No timer on a request once the session is established: a stalled answer to
    the URLs, content, logs or sensors request holds the check-in (and every later
    heartbeat) for ever."""

    def _timer_for(self, came_from: State, dest: State, now: int) -> Timer | None:
        if dest not in SESSION_PENDING and dest not in REST_STATES:
            return None
        return super()._timer_for(came_from, dest, now)


class AnswersPushLate(ClientCore):
    """A pushed policy change is acted on only when the push heartbeat interval
    has passed, not at once: the index request waits on the held connection."""

    _deferred: bool = False

    def handle(self, event: Event, now: int, **kw: Any) -> list[Effect]:
        if event is Event.POLICY_PUSHED and not self._deferred and self.accepts(event):
            self._deferred = True
            self.timer = Timer(now + self.push_interval_ms, Event.POLICY_PUSHED)
            return []
        self._deferred = False
        return super().handle(event, now, **kw)


class GivesUpSessionEarly(ClientCore):
    """A pending session is given up after 10,000 ms instead of 30,000 ms."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.session_limit_ms = 10_000


class KeepsConnectionInPull(ClientCore):
    """A pull check-in ends without closing its connection (no step-7 disconnect);
    the connection stays open until the next heartbeat replaces it."""

    def _move(self, row: Row, now: int) -> list[Effect]:
        effects = super()._move(row, now)
        if row.event is Event.SENSORS_ACKED and row.dest is State.IDLE:
            return [e for e in effects if e.action is not Action.DISCONNECT]
        return effects


class NeverFailsOver(ClientCore):
    """A session that cannot be established ends the heartbeat even when another
    manager is left (the documented reading's failover never happens; under the
    seed's reading this client is the reference)."""

    def _context(self) -> Context:
        return replace(super()._context(), has_next_manager=False)


class GupPortIgnored(ClientCore):
    """GUP content is fetched on the seed's 2967 whatever port the URL names: right
    on a site whose GUP listens on 2967, wrong on any other (only a drawn site with
    another GUP port shows it)."""

    def _target(self, action: Action) -> tuple[str | None, int | None]:
        host, port = super()._target(action)
        if action is Action.DOWNLOAD_GUP and self.urls:
            return host, GUP_PORT
        return host, port


class CrashesOnError(ClientCore):
    """An error answer (an HTTP 503, a reset, bytes that are not HTTP) after the
    session is up raises instead of ending the check-in: the client stops."""

    def fail(self, now: int, *, timed_out: bool) -> list[Effect]:
        if not timed_out and self.state not in SESSION_PENDING \
                and self.state not in REST_STATES:
            raise RuntimeError(f"unhandled error answer in {self.state.value}")
        return super().fail(now, timed_out=timed_out)


class HangsOnError(ClientCore):
    """An error answer after the session is up sends the client into a loop that
    never returns and never asks for a timer: it stops at that instant."""

    def fail(self, now: int, *, timed_out: bool) -> list[Effect]:
        if not timed_out and self.state not in SESSION_PENDING \
                and self.state not in REST_STATES:
            spins = 0
            while self.state is not None:  # always: the bug is the loop
                spins += 1
        return super().fail(now, timed_out=timed_out)


class AdoptsIndexBeforeContent(ClientCore):
    """A changed index.dat becomes the client's copy as soon as it is answered, not
    when its content has arrived: a download that fails is never tried again (the
    next index looks unchanged)."""

    def handle(self, event: Event, now: int, **kw: Any) -> list[Effect]:
        effects = super().handle(event, now, **kw)
        if event is Event.INDEX_RECEIVED and self.offered is not None:
            self.index = self.offered
        return effects


def _skip_gup_fallback(rows: tuple[Row, ...]) -> tuple[Row, ...]:
    """The documented reading's fallback row goes where the seed's does; a table
    with neither row means the model moved."""
    fallback = (S.DOWNLOADING_GUP, E.DOWNLOAD_FAILED, S.DOWNLOADING_MANAGER)
    skip = (S.DOWNLOADING_GUP, E.DOWNLOAD_FAILED, S.UPLOADING_LOGS)
    if not any((r.source, r.event, r.dest) in (fallback, skip) for r in rows):
        raise _stale("DOWNLOADING_GUP--DOWNLOAD_FAILED-->DOWNLOADING_MANAGER")
    return tuple(replace(r, dest=S.UPLOADING_LOGS)
                 if (r.source, r.event, r.dest) == fallback else r for r in rows)


class NoGupFallback(MutatedCore):
    """Under the documented reading, content the GUP could not deliver is skipped,
    as the seed reads it, instead of fetched from the manager (under the seed's
    reading it is the reference)."""

    mutations = (_skip_gup_fallback,)


class GivesUpRequestEarly(ClientCore):
    """A request after the session is given up after 5,000 ms instead of the
    request limit (30,000 ms, or an interval under the documented reading)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_limit_ms = 5_000


class FirstHeartbeatLate(ClientCore):
    """The first heartbeat after a start (or a restart) is due half an interval
    later, not at once: a client that waits for its timer before it checks in."""

    def start(self, now: int) -> list[Effect]:
        effects = super().start(now)
        self.timer = Timer(now + self.interval_ms // 2, Event.HEARTBEAT_DUE)
        return effects


class NoPushHeartbeat(ClientCore):
    """A held push connection has no push heartbeat: the client checks in again
    only when a change is pushed or the connection is lost."""

    def _timer_for(self, came_from: State, dest: State, now: int) -> Timer | None:
        if dest is State.PUSH_HELD:
            return None
        return super()._timer_for(came_from, dest, now)


@dataclass(frozen=True)
class Fault:
    """A seeded-fault client and the rule it breaks."""

    #: Stable name (``sephb client --fault NAME``).
    name: str
    #: One line: what the faulty client does.
    text: str
    #: The id in :data:`~sephb.model.protocol.REQUIREMENTS` the fault breaks.
    requirement: str
    core: type[ClientCore]
    #: The one reading whose rule the fault breaks, or None for every reading: under
    #: another reading the faulty client *is* the reference (nothing to kill).
    only_under: str | None = None

    def __post_init__(self) -> None:
        if self.requirement not in REQUIREMENTS:
            raise ValueError(f"fault {self.name}: unknown requirement {self.requirement}")

    def applies(self, interpretation: str) -> bool:
        """Whether the fault deviates from the model under ``interpretation``."""
        return self.only_under in (None, interpretation)


_ALL: Final[Sequence[Fault]] = (
    Fault("ignores-session-limit",
          "never times out a pending session (no timer in CONNECTING/FETCHING_INDEX)",
          "REQ-2-TIMEOUT-30000", IgnoresSessionLimit),
    Fault("continues-after-timeout",
          "on the session limit while waiting for index.dat, goes on to upload logs",
          "REQ-2-TIMEOUT-30000", ContinuesAfterTimeout),
    Fault("retries-at-once",
          "after a check-in without a session, the next heartbeat is due at once",
          "REQ-2-TIMEOUT-30000", RetriesAtOnce),
    Fault("lowest-priority-first",
          "starts each heartbeat with the lowest-priority manager",
          "REQ-1-PRIORITY", LowestPriorityFirst),
    Fault("gup-download-on-8014",
          "downloads GUP content on TCP 8014 instead of 2967",
          "REQ-4-PORT-2967", GupDownloadOn8014),
    Fault("manager-download-on-2967",
          "downloads manager content on TCP 2967 instead of 8014",
          "REQ-4-PORT-8014", ManagerDownloadOn2967),
    # The row this fault fails to take, FETCHING_URLS--URLS_RECEIVED[source_gup]-->
    # DOWNLOADING_GUP, names REQ-4-PORT-2967 ("if GUP is specified, content will
    # download over TCP 2967"); the trace checker reports that id too. The guard that
    # chooses the row names REQ-4-URLS, which the fault breaks as well.
    Fault("ignores-location-source",
          "downloads from the manager when the location's policy names the GUP",
          "REQ-4-PORT-2967", IgnoresLocationSource),
    # The rule is step 3's "content differences will check against LiveUpdate
    # policy" (the NO_DOWNLOAD guard). The trace checker names the row the client
    # should have taken instead, INDEX_RECEIVED[no_download]-->UPLOADING_LOGS:
    # REQ-5-LOGS.
    Fault("urls-without-change",
          "requests download URLs even when index.dat did not change",
          "REQ-3-LU-POLICY", UrlsWithoutChange),
    # The first wrong move enters UPLOADING_SENSORS where the model's row enters
    # UPLOADING_LOGS, and that row names REQ-5-LOGS (as does the trace checker).
    Fault("sensors-before-logs",
          "uploads LAN sensors and learned applications before the logs",
          "REQ-5-LOGS", SensorsBeforeLogs),
    Fault("skips-sensor-upload",
          "never uploads LAN sensors and learned applications",
          "REQ-6-SENSORS", SkipsSensorUpload),
    Fault("disconnects-in-push",
          "in push mode disconnects after the check-in, like pull",
          "REQ-7-PUSH", DisconnectsInPush),
    Fault("stays-connected-in-pull",
          "in pull mode keeps the connection held after the check-in, like push",
          "REQ-7-PULL", StaysConnectedInPull),
    # The failure row itself names REQ-X-ABORT ("nothing queued is lost"); the logs
    # it loses are step 5's, and ambiguity A8 ties both ids to this choice.
    Fault("drops-logs-on-failure",
          "when the log upload fails, the logs leave the queue anyway",
          "REQ-5-LOGS", DropsLogsOnFailure),
    Fault("uploads-logs-twice",
          "never settles acknowledged logs, so they are uploaded again",
          "REQ-5-LOGS", UploadsLogsTwice),
    # Deadlines (model/deadlines.py): each breaks a rule of time, not of order.
    Fault("checks-in-late",
          "checks in one interval late (every 600 s instead of 300 s)",
          "REQ-7-PULL", ChecksInLate),
    Fault("waits-forever-after-session",
          "never gives up a request after the session is established",
          "REQ-X-ABORT", WaitsForeverAfterSession),
    Fault("answers-push-late",
          "acts on a pushed change only after the push interval, not at once",
          "REQ-7-PUSH-IMMEDIATE", AnswersPushLate),
    Fault("gives-up-session-early",
          "gives up a pending session after 10,000 ms instead of 30,000 ms",
          "REQ-2-TIMEOUT-30000", GivesUpSessionEarly),
    Fault("keeps-connection-in-pull",
          "ends a pull check-in without closing its connection",
          "REQ-7-PULL", KeepsConnectionInPull),
    Fault("never-fails-over",
          "ends the heartbeat on a failed session though a manager is left "
          "(documented reading only)",
          "REQ-2-FAILOVER", NeverFailsOver, only_under="documented"),
    # Over the wire a failed GUP download leaves no record: the suite's oracle
    # knows it made the GUP fail (and the gup-down probe makes it fail).
    Fault("no-gup-fallback",
          "skips content the GUP could not deliver instead of fetching it from the "
          "manager (documented reading only)",
          "REQ-4-GUP-FALLBACK", NoGupFallback, only_under="documented"),
    Fault("gives-up-request-early",
          "gives up a stalled request after the session at 5,000 ms, before the limit",
          "REQ-X-ABORT", GivesUpRequestEarly),
    # Only a download that fails and a next heartbeat show it.
    Fault("adopts-index-before-content",
          "takes a changed index.dat as its copy before the content arrived",
          "REQ-3-INDEX", AdoptsIndexBeforeContent),
    Fault("first-heartbeat-late",
          "checks in half an interval after it starts, not at once",
          "REQ-7-PULL", FirstHeartbeatLate),
    Fault("no-push-heartbeat",
          "in push mode holds its connection until a change is pushed, with no push "
          "heartbeat (documented reading only)",
          "REQ-7-PUSH-HEARTBEAT", NoPushHeartbeat, only_under="documented"),
    # Only a drawn site whose GUP listens on another port than 2967 shows it.
    Fault("gup-port-ignored",
          "downloads GUP content on 2967 whatever port the download URL names",
          "REQ-4-PORT-2967", GupPortIgnored),
    # A client that raises or hangs is a finding, never a crash of the suite.
    Fault("crashes-on-error",
          "raises on an error answer after the session is up, and stops",
          "REQ-X-ALIVE", CrashesOnError),
    Fault("hangs-on-error",
          "loops for ever on an error answer after the session is up",
          "REQ-X-ALIVE", HangsOnError),
)

#: Every seeded fault by name, in the seed's step order.
FAULTS: Final[dict[str, Fault]] = {f.name: f for f in _ALL}


def core_class(name: str | None) -> type[ClientCore]:
    """The core of fault ``name``; the reference :class:`ClientCore` for None."""
    if name is None:
        return ClientCore
    try:
        return FAULTS[name].core
    except KeyError:
        known = ", ".join(FAULTS)
        raise UsageError(f"unknown fault {name!r}; expected one of: {known}") from None
