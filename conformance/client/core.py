"""The pure core of the reference heartbeat client.

Theory of operation
-------------------
Sans-IO, like h11: the core never opens a socket, sleeps or reads a clock. The
adapter (:mod:`sephb.conformance.client`) feeds it events with the model time
``now`` (integer milliseconds) and carries out the :class:`Effect` it returns.

The core does not know the protocol by heart: it looks up the row of
:data:`sephb.model.protocol.TABLE` (under the chosen interpretation) for the current
state and the event, evaluates the row guards against a
:class:`~sephb.model.protocol.Context` built from what it knows, moves to the row's
destination and returns that state's entry action (:data:`~sephb.model.protocol.ENTRY`).
What it adds is data only: which manager it talks to (failover order), its copy of
index.dat, the policy's content source, and one timer.

One timer is enough: at any moment the client waits for at most one thing -- the
session limit, a request's answer, the next heartbeat, or the push heartbeat. Its
expiry event is derived from the table (the timeout-like event the state accepts), so
the core never hard-codes which failure a state reports.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sephb.model.errors import ProtocolError
from sephb.model.interpretations import Interpretation, Selection
from sephb.model.protocol import (
    ENTRY,
    GUARDS,
    GUP_PORT,
    INITIAL,
    ON_ERROR,
    ON_TIMEOUT,
    SESSION_LIMIT_MS,
    SESSION_PENDING,
    Action,
    Context,
    Event,
    Mode,
    Row,
    Source,
    State,
)


@dataclass(frozen=True)
class Peer:
    """A manager from sylink.xml."""

    address: str
    port: int
    priority: int


@dataclass(frozen=True)
class Effect:
    """What the adapter must do now: a state's entry action, and where."""

    action: Action
    #: Index into the client's manager list; None when no manager is involved.
    manager: int | None
    #: Where the request goes (the manager, or the GUP of the URLs); None for
    #: DISCONNECT.
    host: str | None = None
    port: int | None = None
    #: The logs of the last upload may now leave the durable queue: the manager
    #: acknowledged them (ambiguity A8: never on a failure).
    settle_logs: bool = False


@dataclass(frozen=True)
class Timer:
    """The one thing the client waits for: ``event`` fires at model time ``at``."""

    at: int
    event: Event


@dataclass
class ClientCore:
    """The reference client's protocol logic, driven by the transition table."""

    managers: Sequence[Peer]
    mode: Mode
    interpretation: Interpretation
    interval_ms: int
    push_interval_ms: int
    rng: random.Random = field(default_factory=random.Random)
    session_limit_ms: int = SESSION_LIMIT_MS
    #: How long an answer may take once the session is up. The seed names no limit;
    #: None takes the interpretation's reading (ambiguity A12: the session limit
    #: again, or one interval), so that the client never hangs.
    request_limit_ms: int | None = None
    #: sylink.xml's RandomizationRange when enabled (A15), in ms: each next heartbeat
    #: comes a random 0..this later than the interval.
    randomization_ms: int = 0
    #: The client's copy of index.dat: (serial, content revision), None when empty.
    index: tuple[str, int] | None = None

    state: State = INITIAL
    manager: int | None = None
    timer: Timer | None = None
    #: The rows taken, in order (the client's own path through the model).
    path: list[Row] = field(default_factory=list)
    #: What the last index.dat answer offered, adopted once its content arrived.
    offered: tuple[str, int] | None = None
    #: The LiveUpdate content source for the current location, as last announced.
    source: Source = Source.MANAGER
    #: The download URLs of the last URLs answer.
    urls: list[str] = field(default_factory=list)
    _order: list[int] = field(default_factory=list)
    _heartbeat_at: int = 0

    def __post_init__(self) -> None:
        if not self.managers:
            raise ValueError("a client needs at least one manager")
        if self.request_limit_ms is None:
            self.request_limit_ms = self.interpretation.timing.request_limit_ms(
                self.interval_ms)
        self._rows: dict[tuple[State, Event], list[Row]] = {}
        for r in self._table():
            self._rows.setdefault((r.source, r.event), []).append(r)

    def _table(self) -> tuple[Row, ...]:
        """The rows this client follows: the interpretation's table. Seeded-fault
        clients (:mod:`.faults`) override it to follow a mutated copy."""
        return self.interpretation.rows()

    # --- inputs ------------------------------------------------------------------

    def start(self, now: int) -> list[Effect]:
        """The client started: the first heartbeat is due at once (KB 156653)."""
        self.timer = Timer(now, Event.HEARTBEAT_DUE)
        return []

    def accepts(self, event: Event) -> bool:
        return (self.state, event) in self._rows

    def expire(self, now: int) -> list[Effect]:
        """Fire the timer if it is due; the adapter calls this when it wakes up."""
        if self.timer is None or now < self.timer.at:
            return []
        return self.handle(self.timer.event, now)

    def fail(self, now: int, *, timed_out: bool) -> list[Effect]:
        """The current request or connection failed; report the state's failure event."""
        for event in ON_TIMEOUT if timed_out else ON_ERROR:
            if self.accepts(event):
                return self.handle(event, now)
        raise ProtocolError(self.state.value, "failure", "no failure event accepted here")

    def handle(
        self,
        event: Event,
        now: int,
        *,
        serial: str | None = None,
        content: int | None = None,
        source: str | None = None,
        urls: Sequence[str] | None = None,
    ) -> list[Effect]:
        """Apply ``event`` at model time ``now``; return the effects to carry out.

        ``serial``/``content`` come with INDEX_RECEIVED, ``source`` with
        INDEX_RECEIVED or URLS_RECEIVED (the policy for the client's location),
        ``urls`` with URLS_RECEIVED.
        """
        if source is not None:
            self.source = Source(source)
        if urls is not None:
            self.urls = list(urls)
        if event is Event.INDEX_RECEIVED:
            if serial is None or content is None:
                raise ProtocolError(self.state.value, event.value, "index without serial")
            self.offered = (serial, content)
        row = self._select(event)
        return self._move(row, now)

    # --- internals ---------------------------------------------------------------

    def _context(self) -> Context:
        nxt = self.manager is not None and self._order.index(self.manager) + 1 < len(
            self._order
        )
        return Context(
            index_changed=self.offered is not None and self.offered != self.index,
            source=self.source,
            mode=self.mode,
            has_next_manager=nxt,
        )

    def _select(self, event: Event) -> Row:
        rows = self._rows.get((self.state, event))
        if not rows:
            raise ProtocolError(self.state.value, event.value)
        ctx = self._context()
        for r in rows:
            if r.guard is None or GUARDS[r.guard].holds(r.guard, ctx):
                return r
        raise ProtocolError(self.state.value, event.value, f"no guard holds for {ctx}")

    def _failover_order(self) -> list[int]:
        """Managers in priority order; the first is chosen per the interpretation."""
        order = sorted(range(len(self.managers)), key=lambda i: self.managers[i].priority)
        if self.interpretation.selection is Selection.RANDOM:
            top = self.managers[order[0]].priority
            first = [i for i in order if self.managers[i].priority == top]
            pick = self.rng.choice(first)
            order.remove(pick)
            order.insert(0, pick)
        return order

    def _move(self, row: Row, now: int) -> list[Effect]:
        came_from = self.state
        self.path.append(row)
        self.state = row.dest
        if came_from is State.IDLE:
            # Step 1: a new heartbeat reads the server list and picks a manager.
            self._order = self._failover_order()
            self.manager = self._order[0]
            self._heartbeat_at = now
        elif came_from is State.PUSH_HELD and row.dest in SESSION_PENDING:
            # A check-in on the held connection (a push heartbeat, or a pushed
            # change) fails over like a new heartbeat: down the priority order from
            # the held manager, every other manager not yet tried in it.
            assert self.manager is not None
            self._order = [self.manager] + [
                i for i in sorted(range(len(self.managers)),
                                  key=lambda i: self.managers[i].priority)
                if i != self.manager]
            if row.event is Event.HEARTBEAT_DUE:
                # A push heartbeat is a heartbeat too: the next one, should the
                # connection be lost, is an interval after it.
                self._heartbeat_at = now
        elif row.dest is State.CONNECTING:
            # Failover: the next manager in order (the NEXT_MANAGER guard held).
            assert self.manager is not None
            self.manager = self._order[self._order.index(self.manager) + 1]
        if row.event is Event.CONTENT_RECEIVED:
            self.index = self.offered  # the new index is ours once its content is
        self.timer = self._timer_for(came_from, row.dest, now)
        if row.dest is State.IDLE:
            self.manager = None
            self.offered = None
        action = ENTRY[row.dest]
        host, port = self._target(action)
        return [Effect(action, self.manager, host, port, self._settles_logs(row))]

    def _target(self, action: Action) -> tuple[str | None, int | None]:
        """Where an action's request goes: the GUP of the URLs for a GUP download,
        otherwise the current manager (its HttpPort carries content too, step 4)."""
        if action is Action.DOWNLOAD_GUP and self.urls:
            parts = urlsplit(self.urls[0])
            return parts.hostname, parts.port or GUP_PORT
        if self.manager is None:
            return None, None
        peer = self.managers[self.manager]
        return peer.address, peer.port

    def _settles_logs(self, row: Row) -> bool:
        """Logs leave the queue only when the manager acknowledged them."""
        return row.event is Event.LOGS_ACKED

    def _timer_for(self, came_from: State, dest: State, now: int) -> Timer | None:
        if dest is State.IDLE:
            # "terminates until the next heartbeat interval": counted from the start
            # of the check-in or from now, its end, as the interpretation reads it
            # (ambiguity A11); never in the past.
            spread = self.rng.randint(0, self.randomization_ms) \
                if self.randomization_ms else 0
            return Timer(self.interpretation.timing.next_heartbeat_ms(
                now, self._heartbeat_at, self.interval_ms) + spread, Event.HEARTBEAT_DUE)
        if dest is State.PUSH_HELD:
            if self.accepts(Event.HEARTBEAT_DUE):
                return Timer(now + self.push_interval_ms, Event.HEARTBEAT_DUE)
            return None
        if dest is State.CONNECTING:
            return Timer(now + self.session_limit_ms, self._timeout_event(dest))
        if dest in SESSION_PENDING and came_from is State.CONNECTING and self.timer:
            return self.timer  # one session limit spans connect and the first answer
        if dest in SESSION_PENDING:
            # A pushed check-in's index request on the held connection opens a
            # session too: the session limit, not the request limit, bounds it.
            return Timer(now + self.session_limit_ms, self._timeout_event(dest))
        assert self.request_limit_ms is not None  # set in __post_init__
        return Timer(now + self.request_limit_ms, self._timeout_event(dest))

    def _timeout_event(self, state: State) -> Event:
        for event in ON_TIMEOUT:
            if (state, event) in self._rows:
                return event
        raise ProtocolError(state.value, "timeout", "no timeout event accepted here")
