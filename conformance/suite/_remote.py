"""The conformance suite over the wire: real servers, and the client as a process.

Theory of operation
-------------------
The suite (:mod:`.suite`) plays the environment of one client through the methods of
:class:`~.world.World`. Here those methods drive real simulated servers instead: a
:class:`RemoteWorld` owns a :class:`~.servers.Fleet` (three managers over two
priorities on port 8014 and a GUP on 2967, on 127.x addresses of its own) running in
an asyncio loop on a background thread. The Hypothesis machine is synchronous; each
environment action crosses into the loop with
:func:`asyncio.run_coroutine_threadsafe` and waits for it to be done.

The client under test is any program (:class:`ProcessClient`): the suite writes a
sylink.xml naming the fleet, runs the command with ``{sylink}``, ``{state_dir}`` and
``{time_scale}`` filled in (and ``{log_dir}``, a log spool, when it takes one), kills
it with SIGKILL to restart it (the state and spool directories stay), and kills it at
the end of each test case. It is a black box: it gets no calls, its timers are its
own, and the suite learns what it did only from what the servers record -- the same
server-side trace (``by: "server"``) the oracle reads in process, so one oracle
judges both adapters.

Time is the fleet's :class:`~.clock.Clock`: model milliseconds at the run's time
scale, shared by the servers' records and the suite's ``now``. ``advance`` sleeps
until the clock reaches the target. The client's timers run in its own process, so
the suite cannot stop time at the client's wake-ups as it does in process; instead
the world asks to be polled every half tolerance (:meth:`RemoteWorld.next_deadline`),
so that the oracle looks at the records while time passes (a violation ends a long
wait early) and never judges a deadline on records older than that. Timing
properties get the tolerance as slack: scheduling jitter, in model time, is wall
jitter divided by the time scale.

What the wire cannot do, and what this adapter does about it (``docs/adapters.md``):

* A refused connect never reaches a server, and a loopback connect never hangs: the
  rows ``CONNECTING--SESSION_TIMEOUT`` and ``CONNECTING--CONNECT_FAILED`` leave no
  record and are reported skipped, with the reason (:func:`uncoverable` lists them,
  and the rows whose records the checker cannot attribute). The world's
  ``BLACKHOLE`` fault (a connect that never completes) becomes ``stall`` on every
  path.
* Only what servers cannot see is hidden from the checker (:data:`WIRE_HIDDEN`). The
  servers record a stalled first request that the client gives up as
  ``CONNECT_FAILED``; when the client gave up after the session limit, the adapter
  names it ``SESSION_TIMEOUT``, as the in-process world does.
* A connection closed before any request carries no client id: its records are
  dropped. At a restart, what the killed process left after the suite last looked
  (a check-in cut short) is dropped but for the closes: the oracle starts over.
* ``drop`` closes a connection between two requests of a check-in only when its next
  request arrives, so that the failure the client meets is one a server records.
* The client's logs are its own, unless its command takes ``{log_dir}``: then the
  suite's ``logs`` rule writes entries into that spool
  (:meth:`ProcessClient.produce_logs`) and the oracle judges each by its id, with
  the tolerance for an entry that landed as the client listed the spool. Without
  it the rule is off and only uploads twice are caught.
* Heartbeat sizes are real bytes here, and only here: each completed pull check-in
  whose connection carried nothing else is measured (REQ-SIZE-IDLE, REQ-SIZE-MAX),
  and a size outside the seed's typical range is a warning (ambiguity A7).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import itertools
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

from sephb.conformance.site import Fleet, SimServer
from sephb.conformance.site.config import FleetConfig
from sephb.conformance.suite import _machine as suite
from sephb.conformance.suite import _run
from sephb.conformance.suite.inproc import InProcessClient
from sephb.conformance.suite.results import RequirementResult, Status, SuiteResult
from sephb.conformance.suite.world import Fault, Reply, VServer
from sephb.conformance.traces.clock import JITTER_BUDGET_S, Clock, tolerance_for
from sephb.conformance.traces.sylink import Gup, Sylink, save
from sephb.conformance.traces.trace import Record
from sephb.conformance.traces.wire import Role
from sephb.model.errors import UsageError
from sephb.model.interpretations import Interpretation
from sephb.model.protocol import (
    FULL_HEARTBEAT_BYTES,
    IDLE_HEARTBEAT_BYTES,
    SESSION_LIMIT_MS,
    Action,
    Event,
    Mode,
    Source,
    State,
)

__all__ = [
    "DEFAULT_TIME_SCALE",
    "JITTER_BUDGET_S",
    "WIRE_HIDDEN",
    "WIRE_PROFILES",
    "ProcessClient",
    "RemoteServer",
    "RemoteWorld",
    "Size",
    "WireEnvironment",
    "WireObservations",
    "WireProfile",
    "measure",
    "run_wire",
    "uncoverable",
    "wire_environment",
]

T = TypeVar("T")

#: 0.01: the 300 s interval lasts 3 s and the 30,000 ms session limit 0.3 s of wall
#: time, long enough that scheduling jitter stays small in model time.
DEFAULT_TIME_SCALE: Final = 0.01
#: Wall seconds a started client gets to make its first request, and how long the
#: servers must then be quiet before the suite goes on (see ProcessClient.start).
STARTUP_S: Final = 3.0
QUIET_S: Final = 0.1
#: Longest a start may wait for quiet (a client that keeps talking).
SETTLE_LIMIT_S: Final = 2.0
#: Placeholders of a client command; the first three are required.
PLACEHOLDERS: Final = ("{sylink}", "{state_dir}", "{time_scale}", "{client_id}",
                       "{interpretation}", "{log_dir}")
#: A log upload at least this large makes a check-in "full" (REQ-SIZE-MAX): half the
#: smallest typical full heartbeat, so that the logs dominate it.
FULL_LOG_BYTES: Final = FULL_HEARTBEAT_BYTES[0] // 2

#: What the records over the wire cannot show: the client's timers, the TCP handshake,
#: and a GUP download that never connected. Narrower than properties.HIDDEN, which
#: also hides session failures: on loopback a connect never hangs, a refused one
#: changes nothing the model can see (the client is back in IDLE, or CONNECTING to
#: the next manager, both already consistent with the records), and every session
#: failure after the connect is recorded by the server that saw it (a stalled first
#: answer as SESSION_TIMEOUT, see RemoteWorld). Hiding them anyway would let the
#: checker explain a recorded CONNECT_FAILED on index.dat as a timeout, a new
#: heartbeat and a refused connect -- coverage of rows the wire cannot show.
WIRE_HIDDEN: Final = frozenset({Event.HEARTBEAT_DUE, Event.CONNECTED,
                                Event.DOWNLOAD_FAILED})
_STALL_TEXT: Final = "fault stall"
#: Trace names of requests (what a client sends), as opposed to answers.
_REQUESTS: Final = frozenset(a.value for a in Action) - {Action.CONNECT.value,
                                                        Action.DISCONNECT.value}
_PEER_RE: Final = re.compile(r"^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$")


@dataclass(frozen=True)
class WireProfile:
    """How much of a profile runs over the wire.

    A wire case costs wall time (each interval of model time is 3 s at the default
    scale; a case runs about 0.5 s per step), so the in-process case counts are out
    of reach. Failures are not shrunk: a shrink step is a whole case, and timing makes
    replays inexact (the program found is reported as is).
    """

    cases: int
    steps: int


#: Per profile: Hypothesis cases and steps per case over the wire (in process:
#: suite.PROFILES). The suite's directed cases then steer to each row they missed:
#: with the reference client, ci covers every row the wire can show in 1-2 minutes
#: per interpretation; nightly and certify explore more and longer programs.
WIRE_PROFILES: Final[dict[str, WireProfile]] = {
    "ci": WireProfile(cases=4, steps=12),
    "nightly": WireProfile(cases=60, steps=20),
    "certify": WireProfile(cases=300, steps=30),
}


# --- where the fleet listens ----------------------------------------------------------

_counter = itertools.count()


def _addresses(n: int) -> list[str]:
    """Loopback addresses for one world: the scheme of ``tests/netutil.addresses``
    with a second octet of its own (220-254 by process id), so that worlds of one
    run, concurrent runs and the project's tests rarely meet. When they do, a
    server falls back to an ephemeral port and the sylink.xml says so."""
    second = 220 + os.getpid() % 35
    out = []
    for _ in range(n):
        i = next(_counter) % (250 * 256)
        out.append(f"127.{second}.{i // 250}.{i % 250 + 2}")
    return out


# --- the world ---------------------------------------------------------------------


@dataclass
class RemoteServer(VServer):
    """What the suite and the oracle see of one real server; ``faults`` mirrors what
    the suite asked for, in the world's vocabulary (the real server has them)."""


@dataclass(frozen=True)
class Size:
    """One measured check-in: its kind and the bytes of its connection."""

    kind: str  # "idle" or "full"
    bytes: int
    server: str
    t: int

    @property
    def requirement(self) -> str:
        return "REQ-SIZE-IDLE" if self.kind == "idle" else "REQ-SIZE-MAX"

    @property
    def bounds(self) -> tuple[int, int]:
        return IDLE_HEARTBEAT_BYTES if self.kind == "idle" else FULL_HEARTBEAT_BYTES


def _server_mode(fault: Fault, path: str | None) -> tuple[Fault, str | None]:
    """The real servers' fault for a world fault."""
    if fault is Fault.BLACKHOLE:
        # A loopback connect never hangs: the nearest thing is a server that accepts
        # and never answers, on every path (the session limit still runs out).
        return Fault.STALL, None
    if fault is Fault.REFUSE and path is not None:
        # Refusing is per server (the listening socket); for one path the nearest is
        # a connection cut at that request.
        return Fault.RESET, path
    return fault, path


class RemoteWorld:
    """The :class:`~.world.World` interface over a real :class:`~.servers.Fleet`.

    ``managers`` and ``gup`` describe the real servers (their bound ports); ``now`` is
    the fleet clock's model time; ``records`` are the servers' records as trace dicts,
    appended as they arrive.
    """

    def __init__(self, site: list[int] | None = None, *,
                 time_scale: float = DEFAULT_TIME_SCALE, tolerance_ms: int = 0,
                 poll_ms: int | None = None) -> None:
        priorities = site or [p for _, _, p in suite.SITE]
        self.time_scale = time_scale
        self.tolerance_ms = tolerance_ms
        #: How often the suite looks at the records while time passes.
        self.poll_ms = poll_ms or max(1, tolerance_ms // 2) or 1_000
        addrs = _addresses(len(priorities) + 1)
        cfg = FleetConfig.loopback(addrs[:-1], gup=addrs[-1])
        cfg = dataclasses.replace(cfg, managers=tuple(
            dataclasses.replace(m, priority=p)
            for m, p in zip(cfg.managers, priorities, strict=True)))
        self.clock = Clock(time_scale)
        self.fleet = Fleet(cfg, clock=self.clock)
        self._records: list[dict[str, Any]] = []
        #: Unused over the wire: the client is a process and gets no calls.
        self.on_answer: Callable[[str, Reply], None] | None = None
        #: Things a report should mention (a client without X-Sephb-Client, ...).
        self.notes: list[str] = []
        self._taken = 0
        self._heard = 0
        self._last_heard = 0.0
        self._connect_t: dict[tuple[str, int], int] = {}
        #: Ranges of the recorder's records that belong to a killed process (see
        #: crash()): only their DISCONNECTs are kept.
        self._cuts: list[tuple[int, int]] = []
        #: (server, connection id) of the connections a killed process had open.
        self._dead: set[tuple[str | None, int | None]] = set()
        self._flip: Source | None = None
        #: Connections dropped between two requests: closed at the next (see drop()).
        self._doomed: set[tuple[str, int]] = set()
        self._started = self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="sephb-wire-fleet",
                                        daemon=True)
        self._thread.start()
        _LIVE_WORLDS.add(self)
        try:
            self._call(self.fleet.start())
            self._started = True
        except BaseException:
            self.close()
            raise
        self.fleet.recorder.listen(self._heard_record)
        by_name = self.fleet.servers
        self.managers = [self._mirror(by_name[m.name]) for m in cfg.managers]
        self.gup = self._mirror(self.fleet.gup) if self.fleet.gup else None

    @staticmethod
    def _mirror(s: SimServer) -> RemoteServer:
        return RemoteServer(s.name, s.role, s.address, s.port, s.spec.priority)

    # --- the loop thread ------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            # Whatever the fleet's stop left running (a handler mid-answer) ends here.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(
                    asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _do(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the loop thread (the servers' state is the loop's)."""

        async def call() -> T:
            return fn()

        return self._call(call())

    def _heard_record(self, rec: Record) -> None:
        # On the loop thread, inside Recorder.add: counts for ProcessClient's start,
        # and the one-shot policy flip (it must land before /urls is answered).
        self._heard += 1
        self._last_heard = time.monotonic()
        key = (rec.server or "", rec.conn or 0)
        if key in self._doomed and rec.event in _REQUESTS:
            self._doomed.discard(key)
            for c in self.fleet[key[0]].conns:
                if c.id == key[1] and c.transport is not None:
                    # Dropped under the request just read: its answer fails, and the
                    # server records the failure (see drop()).
                    c.dropped = True
                    c.transport.close()
        elif rec.event == Action.DISCONNECT.value:
            self._doomed.discard(key)
        if (self._flip is not None and rec.event == Action.GET_URLS.value
                and rec.role is Role.MANAGER and rec.server is not None
                and self.fleet[rec.server].fault_for(rec.path or "/urls") is None):
            source, self._flip = self._flip, None
            self._apply_policy(rec.location or "Default", source)

    # --- time ------------------------------------------------------------------------

    @property
    def now(self) -> int:
        """Model time on the fleet's clock (it runs while the suite works)."""
        return self.clock.now_ms()

    def advance(self, now: int) -> None:
        """Let time pass until model time ``now`` (sleeping in wall time)."""
        wait = self.clock.epoch + self.clock.wall_seconds(now) - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def next_deadline(self) -> int | None:
        """The next time the suite should look: every half tolerance. The client's
        timers are in its own process, so this is a poll: the oracle sees the
        records while a long wait runs (a violation ends it early) and its deadline
        checks never run on records more than half a tolerance old."""
        return self.now + self.poll_ms

    # --- records ----------------------------------------------------------------------

    @property
    def records(self) -> list[dict[str, Any]]:
        """The servers' records so far, as trace dicts (one list, appended to)."""
        if self._started and not self._closed:
            self._refresh()
        return self._records

    def _refresh(self) -> None:
        # Taken on the loop thread, so a batch never splits records emitted together.
        def take() -> tuple[int, list[Record]]:
            first = self._taken
            recs = self.fleet.recorder.records[first:]
            self._taken += len(recs)
            return first, recs

        first, batch = self._do(take)
        i = 0
        while i < len(batch):
            rec = batch[i]
            nxt = batch[i + 1] if i + 1 < len(batch) else None
            if rec.event != Action.DISCONNECT.value and (
                    any(a <= first + i < b for a, b in self._cuts)
                    or (rec.server, rec.conn) in self._dead):
                i += 1  # the killed process's, after the suite last looked
                continue
            if (rec.event == Action.CONNECT.value and nxt is not None
                    and nxt.event == Action.DISCONNECT.value
                    and (nxt.server, nxt.conn) == (rec.server, rec.conn)):
                # A connection that never sent a request: no client id, no step.
                i += 2
                continue
            self._records.append(self._convert(rec))
            i += 1

    def _convert(self, rec: Record) -> dict[str, Any]:
        key = (rec.server or "", rec.conn or 0)
        if rec.event == Action.CONNECT.value:
            self._connect_t[key] = rec.t
        elif (rec.event == Event.CONNECT_FAILED.value
              and (rec.error or "").startswith(_STALL_TEXT)
              and key in self._connect_t):
            # The first answer stalled and the client gave up: the session limit ran
            # out in the client, as World.abandon records it. Whether it was given
            # up at the limit, and not before, the oracle judges (A14).
            rec = msgspec.structs.replace(rec, event=Event.SESSION_TIMEOUT.value)
        elif (_PEER_RE.match(rec.client) and rec.event != Action.DISCONNECT.value
              and not any("X-Sephb-Client" in n for n in self.notes)):
            self.notes.append(
                f"requests without an X-Sephb-Client header (recorded as "
                f"{rec.client}): the wire profile requires one on every request")
        out: dict[str, Any] = msgspec.to_builtins(rec)
        return out

    # --- what the environment does --------------------------------------------------

    def set_fault(self, index: int, path: str | None, fault: Fault) -> None:
        m = self.managers[index]
        self._sync(m, {**m.faults, path: fault})

    def only_fault(self, index: int, path: str | None, fault: Fault) -> None:
        self._sync(self.managers[index], {path: fault})

    def set_gup(self, fault: Fault | None) -> None:
        if self.gup is not None:
            self._sync(self.gup, {} if fault is None else {None: fault})

    def heal(self) -> None:
        for s in self._servers:
            self._sync(s, {})

    def set_policy(self, location: str, source: Source) -> None:
        self._do(lambda: self._apply_policy(location, source))

    def set_flip(self, source: Source | None) -> None:
        """The policy of the client's location becomes ``source`` between the next
        index answer and the URLs request after it: applied by the record hook when
        the next ``/urls`` arrives, before it is answered (ambiguity A9)."""

        def flip() -> None:
            self._flip = source

        self._do(flip)

    def publish(self) -> None:
        self._do(lambda: self.fleet.publish())

    def push(self) -> int:
        return self._do(lambda: self.fleet.push())

    def drop(self, index: int) -> None:
        """Close every connection of manager ``index``: at once when a request is
        running on it (a held push, a stalled or answering request: the server
        records the failure the client sees); when the client is between two
        requests of a check-in, as its next request arrives. Closed while idle,
        the connection would make the client's next request fail where no server
        can see it, and the records would show a check-in stopping for no reason."""
        server = self.fleet[self.managers[index].name]

        def drop() -> None:
            for c in list(server.conns):
                if c.busy:
                    c.dropped = True
                    if c.transport is not None:
                        c.transport.close()
                else:
                    self._doomed.add((server.name, c.id))

        self._do(drop)

    @property
    def _servers(self) -> list[RemoteServer]:
        return self.managers + ([self.gup] if self.gup else [])

    def _apply_policy(self, location: str, source: Source) -> None:
        # The client names its location (X-Sephb-Location); one that names none gets
        # the default policy, which is the "Default" location's here.
        for m in self.fleet.managers:
            m.set_policy(source, location)
            if location == "Default":
                m.set_policy(source, None)

    def _sync(self, server: RemoteServer, faults: dict[str | None, Fault]) -> None:
        """Make the real server's faults what ``faults`` says (world vocabulary)."""
        server.faults = dict(faults)
        want: dict[str | None, Fault] = {}
        for path, fault in faults.items():
            # A per-path UP under an all-requests fault has no wire equivalent (the
            # servers cannot exempt a path): the path gets the server's fault.
            if fault is not Fault.UP:
                mode, p = _server_mode(fault, path)
                want[p] = mode
        self._call(self._apply_faults(self.fleet[server.name], want))

    @staticmethod
    async def _apply_faults(s: SimServer, want: dict[str | None, Fault]) -> None:
        have = dict(s.faults)
        if have == want:
            return
        refusing = have.get(None) is Fault.REFUSE
        if (refusing and want.get(None) is not Fault.REFUSE) or (
                None in have and None not in want):
            await s.set_fault(Fault.UP)  # clears every fault, listens again
            have = {}
        for gone in [p for p in have if p is not None and p not in want]:
            await s.set_fault(Fault.UP, gone)
        if want.get(None) is Fault.REFUSE and not refusing:
            await s.set_fault(Fault.REFUSE)
        for path, mode in want.items():
            if s.faults.get(path) is not mode:
                await s.set_fault(mode, path)

    # --- for ProcessClient --------------------------------------------------------------

    @contextlib.contextmanager
    def crash(self, wait_s: float = 2.0) -> Iterator[None]:
        """Around a kill: the records the servers make from the suite's last look
        until the killed process's connections have ended are its last words -- a
        check-in cut short, the failures of requests it will never finish. The
        suite restarts the oracle's model at a restart (a crash is outside the
        model), and would feed them to the fresh one; so they are dropped, except
        the DISCONNECTs (a restarted client is disconnected, as in process)."""
        start = self._taken

        def open_conns() -> list[Any]:
            return [c for srv in self.fleet.servers.values() for c in srv.conns]

        conns = self._do(open_conns)
        # Whatever these connections record later is the killed process's too, even
        # past the cut below (a stalled handler may note its failure after the
        # connection ended): the fresh oracle must not read it as the new process
        # giving up its session.
        self._dead |= {(c.sim.name, c.id) for c in conns}
        try:
            yield
        finally:
            end = time.monotonic() + wait_s
            while (not all(self._do(lambda: [c.ended for c in conns]))
                   and time.monotonic() < end):
                time.sleep(0.005)
            self._cuts.append((start, self._do(lambda: len(self.fleet.recorder.records))))

    def quiesce(self, since: int, alive: Callable[[], bool], *,
                first_s: float = STARTUP_S, quiet_s: float = QUIET_S,
                limit_s: float = SETTLE_LIMIT_S) -> None:
        """Wait until the servers heard something after ``since`` records (or
        ``first_s`` passed, or the client died), then until they have been quiet
        for ``quiet_s`` (at most ``limit_s``). A black box gives no sign that it is
        ready; its first requests are one."""
        end = time.monotonic() + first_s
        while self._heard == since and time.monotonic() < end and alive():
            time.sleep(0.005)
        if self._heard == since:
            return
        end = time.monotonic() + limit_s
        while time.monotonic() - self._last_heard < quiet_s and time.monotonic() < end:
            time.sleep(0.005)

    @property
    def heard(self) -> int:
        """Records the servers made so far (including dropped ones)."""
        return self._heard

    # --- results ----------------------------------------------------------------------

    def sizes(self) -> list[Size]:
        """The check-ins whose size means something (see :func:`measure`)."""
        return measure(self.records)

    # --- the end ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the servers and the loop thread (idempotent)."""
        if self._closed:
            return
        try:
            if self._loop.is_running() and self._started:
                with contextlib.suppress(Exception):
                    self._refresh()
                    self._call(self.fleet.stop(), timeout=15)
        finally:
            self._closed = True
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)
            _LIVE_WORLDS.discard(self)


def measure(records: list[dict[str, Any]]) -> list[Size]:
    """The heartbeat sizes that servers' records can vouch for: each manager
    connection that carried exactly one check-in, completed (SENSORS_ACKED) without
    a failure or a hold and then closed, with the index unchanged. The size is the
    connection's real bytes both ways (its DISCONNECT). "idle" when it uploaded no
    log, "full" when its log upload was at least :data:`FULL_LOG_BYTES`; any other
    check-in is neither, and a push-mode check-in (the connection stays open) is
    never measured."""
    conns: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("role") == Role.MANAGER.value:
            conns.setdefault((r.get("server", ""), r.get("conn", 0)), []).append(r)
    out = []
    for (server, _), recs in conns.items():
        names = [r["event"] for r in recs]
        if (names.count(Action.GET_INDEX.value) != 1 or Action.HOLD.value in names
                or names[-1] != Action.DISCONNECT.value
                or Event.SENSORS_ACKED.value not in names
                or any(r.get("error") for r in recs[:-1])):
            continue
        index = next((r for r in recs if r["event"] == Event.INDEX_RECEIVED.value), {})
        if index.get("changed", True):
            continue
        upload = next((r for r in recs if r["event"] == Action.UPLOAD_LOGS.value), {})
        logs = len(upload.get("ids") or [])
        kind = ("idle" if logs == 0
                else "full" if upload.get("bytes_in", 0) >= FULL_LOG_BYTES else None)
        if kind is None:
            continue
        end = recs[-1]
        out.append(Size(kind, end.get("bytes_in", 0) + end.get("bytes_out", 0), server,
                        end["t"]))
    return out


# --- the client ------------------------------------------------------------------------


class ProcessClient:
    """A client under test as a process: the :class:`~.inproc.InProcessClient`
    protocol, with every call but start and restart a no-op (a black box has its own
    timers and answers its own requests)."""

    def __init__(self, world: RemoteWorld, command: str, mode: Mode, *,
                 interpretation: str = "seed", client_id: str = "c1",
                 startup_s: float = STARTUP_S, quiet_s: float = QUIET_S,
                 contact: list[bool] | None = None) -> None:
        self.world = world
        #: Whether any start of the client in this run made a request (shared by
        #: the run's clients): until one has, silence at a start ends the run.
        self.contact = contact if contact is not None else [False]
        self.command = command
        self.mode = mode
        self.interpretation = interpretation
        self.client_id = client_id
        self.startup_s, self.quiet_s = startup_s, quiet_s
        self.proc: subprocess.Popen[bytes] | None = None
        #: Process ids of every start (the last one is running).
        self.pids: list[int] = []
        #: One line per process that ended on its own (not killed by the suite).
        self.exits: list[str] = []
        self._dir = Path(tempfile.mkdtemp(prefix="sephb-wire-"))
        self.state_dir = self._dir / "state"
        self.sylink_path = self._dir / "sylink.xml"
        self.log_path = self._dir / "client.log"
        #: The log spool (``{log_dir}``), when the command takes one.
        self.log_dir: Path | None = None
        if "{log_dir}" in command:
            self.log_dir = self._dir / "spool"
            self.log_dir.mkdir()
        _LIVE_CLIENTS.add(self)

    # --- the location is the client's own -------------------------------------------

    @property
    def location(self) -> str:
        """Fixed: a black box reports its own location; the suite's ``move`` rule
        cannot change it (docs/adapters.md)."""
        return "Default"

    @location.setter
    def location(self, value: str) -> None:
        pass

    # --- the protocol ---------------------------------------------------------------

    def start(self, now: int) -> None:
        """Write sylink.xml, start the command, and wait until its first requests
        are answered and the servers are quiet again (the first check-in is then
        part of every test case, however short)."""
        w = self.world
        blocks: dict[int, list[tuple[str, int]]] = {}
        for m in w.managers:
            blocks.setdefault(m.priority, []).append((m.address, m.port))
        gup = Gup(w.gup.address, w.gup.port) if w.gup else None
        save(Sylink.build([blocks[p] for p in sorted(blocks)], mode=self.mode,
                          heartbeat_s=suite.INTERVAL_MS // 1000, gup=gup),
             self.sylink_path)
        self.state_dir.mkdir(exist_ok=True)
        self._spawn()

    def wakeup(self) -> int | None:
        return None

    def tick(self, now: int) -> None:
        pass

    def answer(self, now: int, reply: Reply) -> None:
        pass

    def restart(self, now: int) -> None:
        """SIGKILL the process (and its process group), start it again on the same
        state directory."""
        with self.world.crash():
            self.kill()
        self._spawn()

    def produce_logs(self, count: int) -> list[str]:
        """Write ``count`` new entries into the client's spool (``{log_dir}``) and
        return their ids; none when the command takes no spool (a process makes its
        own logs, and the suite's logs rule is off).

        Each entry is its own file, ``<id>.log``, whole when it appears: written
        under a name that does not end in ``.log``, then renamed. The id is unique
        across the run (``c1-spool-17``); the content is a JSON object, ``{"id":
        "c1-spool-17", "t": <model ms when written>, "text": "<a log line>"}``."""
        if self.log_dir is None:
            return []
        ids = []
        for _ in range(count):
            n = next(_spool_ids)
            entry_id = f"{self.client_id}-spool-{n}"
            now = self.world.now
            body = msgspec.json.encode({
                "id": entry_id, "t": now,
                "text": f"t={now}\t0x12070900\tconformance suite log entry {n}\n"})
            tmp = self.log_dir / f".{entry_id}.tmp"
            tmp.write_bytes(body)
            os.rename(tmp, self.log_dir / f"{entry_id}.log")
            ids.append(entry_id)
        return ids

    # --- processes ------------------------------------------------------------------------

    def argv(self) -> list[str]:
        values = {
            "{sylink}": str(self.sylink_path),
            "{state_dir}": str(self.state_dir),
            "{time_scale}": _number(self.world.time_scale),
            "{client_id}": self.client_id,
            "{interpretation}": self.interpretation,
            "{log_dir}": str(self.log_dir),
        }
        out = []
        for token in shlex.split(self.command):
            for key, value in values.items():
                token = token.replace(key, value)
            out.append(token)
        return out

    def _spawn(self) -> None:
        since = self.world.heard
        # A session of its own: a restart kills the command's whole process group (a
        # wrapper script's children too), and a Ctrl-C at the terminal reaches only
        # the suite, which then kills the client itself.
        with open(self.log_path, "ab") as log, _signals_held():
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            self.pids.append(self.proc.pid)
        proc = self.proc
        self.world.quiesce(since, lambda: proc.poll() is None, first_s=self.startup_s,
                           quiet_s=self.quiet_s)
        # Fail fast: a client that cannot run ends the run now, with its own words,
        # rather than as many test cases of silence.
        if proc.poll() is not None and self.world.heard == since:
            raise suite.ClientGone(
                f"the client exited with status {proc.returncode} as it started, "
                f"before any request{self._tail()} (command: {shlex.join(self.argv())})")
        if self.world.heard == since and not self.contact[0]:
            raise suite.ClientGone(
                f"the client made no request within {self.startup_s:g} s of its start "
                f"(a client checks in at once when it starts; a slow starter needs a "
                f"longer --startup-wait; command: {shlex.join(self.argv())})")
        if self.world.heard != since:
            self.contact[0] = True

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the running process and its group; reap it (no zombie)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is not None:
            self.exits.append(f"the client exited on its own with status "
                              f"{proc.returncode}{self._tail()}")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()

    def _tail(self) -> str:
        try:
            text = self.log_path.read_bytes()[-400:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; its output ends: {text}" if text else ""

    def close(self) -> None:
        """Kill the process and remove the sylink.xml and state directory."""
        try:
            self.kill()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
            _LIVE_CLIENTS.discard(self)


def _number(x: float) -> str:
    """A time scale as a command-line number (0.01, not 1e-02)."""
    text = f"{x:.12f}".rstrip("0").rstrip(".")
    return text or "0"


#: Numbers of spool entries: ids unique across a run (all its test cases).
_spool_ids = itertools.count(1)

# Whatever a test case leaves (an interrupt in the middle of one), the interpreter's
# exit cleans up: no client process and no server outlives the suite.
_LIVE_WORLDS: set[RemoteWorld] = set()
_LIVE_CLIENTS: set[ProcessClient] = set()


@atexit.register
def _cleanup() -> None:
    for c in list(_LIVE_CLIENTS):
        with contextlib.suppress(Exception):
            c.close()
    for w in list(_LIVE_WORLDS):
        with contextlib.suppress(Exception):
            w.close()


# --- the environment -------------------------------------------------------------------


@dataclass
class WireObservations:
    """What the wire adapter learned over a run, beyond the oracle's verdicts."""

    sizes: list[Size] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass
class WireEnvironment(suite.Environment):
    """A :class:`~.suite.Environment` whose worlds are real servers; it also
    collects the heartbeat sizes and notes of every test case."""

    observations: WireObservations = field(default_factory=WireObservations)
    client_cmd: str = ""
    time_scale: float = DEFAULT_TIME_SCALE


def wire_environment(client_cmd: str, *, time_scale: float = DEFAULT_TIME_SCALE,
                     tolerance_ms: int | None = None, startup_s: float = STARTUP_S
                     ) -> WireEnvironment:
    """The suite's environment over the wire for a client command (a template with
    ``{sylink}``, ``{state_dir}`` and ``{time_scale}``; ``{client_id}``,
    ``{interpretation}`` and ``{log_dir}`` are optional). With ``{log_dir}`` the
    suite's ``logs`` rule is on: it writes into the client's spool, and the oracle
    judges those entries by id. ``tolerance_ms`` defaults to
    :data:`JITTER_BUDGET_S` of wall time in model time."""
    missing = [p for p in PLACEHOLDERS[:3] if p not in client_cmd]
    if missing:
        raise UsageError(f"--client-cmd {client_cmd!r}: missing {', '.join(missing)} "
                         f"(a client needs the sylink.xml, its state directory and the "
                         f"time scale; see docs/adapters.md)")
    try:
        words = shlex.split(client_cmd)
        if not words:
            raise ValueError("empty command")
    except ValueError as exc:
        raise UsageError(f"--client-cmd {client_cmd!r}: {exc}") from None
    if shutil.which(words[0]) is None:
        # Found now rather than as a crash in the first test case.
        raise UsageError(f"--client-cmd: {words[0]!r} is not an executable program")
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise UsageError(f"time scale {time_scale!r}: expected a number > 0")
    if not (math.isfinite(startup_s) and startup_s > 0):
        raise UsageError(f"start-up wait {startup_s!r}: expected a number of seconds > 0")
    tol = tolerance_for(time_scale) if tolerance_ms is None else tolerance_ms
    if not 0 <= tol <= SESSION_LIMIT_MS // 2:
        raise UsageError(
            f"time scale {time_scale}: a tolerance of {tol} model ms is more than half "
            f"the {SESSION_LIMIT_MS} ms session limit, which timing properties could no "
            f"longer tell apart; use a larger time scale (at least "
            f"{JITTER_BUDGET_S * 1000 / (SESSION_LIMIT_MS // 2):g})")
    observations = WireObservations()

    def world() -> RemoteWorld:
        return RemoteWorld(time_scale=time_scale, tolerance_ms=tol)

    contact = [False]

    def client(w: Any, interp: Interpretation, mode: Mode) -> InProcessClient:
        return ProcessClient(w, client_cmd, mode, interpretation=interp.name,
                             startup_s=startup_s, contact=contact)

    def close(w: Any, c: InProcessClient) -> None:
        try:
            if isinstance(c, ProcessClient):
                c.kill()
                for line in c.exits:
                    observations.note(line)
        finally:
            try:
                if isinstance(w, RemoteWorld):
                    w.close()
                    observations.sizes += w.sizes()
                    for line in w.notes:
                        observations.note(line)
            finally:
                if isinstance(c, ProcessClient):
                    c.close()

    return WireEnvironment(client=client, world=world, tolerance_ms=tol,
                           adapter="wire", close=close, logs="{log_dir}" in client_cmd,
                           hidden=WIRE_HIDDEN,
                           uncoverable=uncoverable, unjudged={},
                           observations=observations,
                           client_cmd=client_cmd, time_scale=time_scale)


# --- a run ---------------------------------------------------------------------------


_SESSION_FAILURES: Final = (Event.SESSION_TIMEOUT, Event.CONNECT_FAILED)


def uncoverable(interp: Interpretation) -> dict[str, str]:
    """Rows whose coverage the records of a black box over the wire cannot show,
    each with the reason (docs/adapters.md). Coverage over the wire is the checker's
    explanation of the servers' records, so a row must both leave records and be
    the explanation the checker picks for them."""
    rows = interp.rows()
    fallback = any(r.source is State.DOWNLOADING_GUP and r.dest is State.DOWNLOADING_MANAGER
                   for r in rows)
    out = {}
    for r in rows:
        if r.source is State.CONNECTING and r.event in _SESSION_FAILURES:
            out[r.name] = ("a session that fails before the TCP connection is up "
                           "(refused, or a connect that never completes) reaches no "
                           "server")
        elif (r.source is State.FETCHING_INDEX and r.event in _SESSION_FAILURES
              and r.dest is State.CONNECTING):
            out[r.name] = ("the failed connection's close is recorded as DISCONNECT, "
                           "which reads as the check-in ending; the records cannot "
                           "tell a failover from the last manager failing")
        elif (fallback and r.source is State.DOWNLOADING_GUP
              and r.event is Event.CONTENT_RECEIVED):
            out[r.name] = ("a GUP that refuses is invisible, so the checker may always "
                           "explain GUP content as the fallback download from the "
                           "manager")
    return out


def run_wire(interp: Interpretation, client_cmd: str, *, profile: str = "ci",
             seed: int | None = None, time_scale: float = DEFAULT_TIME_SCALE,
             tolerance_ms: int | None = None, max_examples: int | None = None,
             steps: int | None = None, directed: bool = True,
             startup_s: float = STARTUP_S, **kw: Any) -> SuiteResult:
    """Run the suite against ``client_cmd`` over the wire: the profile's
    Hypothesis cases (:data:`WIRE_PROFILES`), then (``directed``) the suite's
    directed cases for rows they missed, except those the wire cannot show. Never
    raises for a non-conformant client. ``kw`` goes to :func:`._run.run` (e.g.
    ``progress``)."""
    if profile not in WIRE_PROFILES:
        raise UsageError(f"profile {profile!r}: expected one of "
                         f"{', '.join(WIRE_PROFILES)}")
    plan = WIRE_PROFILES[profile]
    env = wire_environment(client_cmd, time_scale=time_scale, tolerance_ms=tolerance_ms,
                           startup_s=startup_s)
    if not directed:  # the suite tries no directed case for a row it is told to skip
        env.uncoverable = lambda interp: {
            r.name: uncoverable(interp).get(r.name, "directed cases are off")
            for r in interp.rows()}
    try:
        with _terminate_as_interrupt():
            result = _run.run(interp, factory=env, profile=profile, seed=seed,
                               client=client_cmd, client_cmd=client_cmd,
                               max_examples=max_examples or plan.cases,
                               steps_per_case=steps or plan.steps, shrink=False, **kw)
    finally:
        _cleanup()  # an interrupted case's process and servers, if any
    result = msgspec.structs.replace(result, settings={
        "time scale": _number(time_scale),
        "tolerance": f"{env.tolerance_ms:,} model ms "
                     f"({env.tolerance_ms * time_scale / 1000:g} s of wall time)",
        "start-up wait": f"{startup_s:g} s"})
    return _wire_result(result, env.observations)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first that came
    to the handler it would have met. Around Popen: an interrupt raised inside it,
    after the fork, would orphan the child (no handle left to kill it by). Only on
    the main thread, where Python runs signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def hold(signum: int, frame: object) -> None:
        came.append(signum)

    old = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():  # (None: one set outside Python; the default)
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if came:  # now the usual handler runs (KeyboardInterrupt, or termination)
            signal.raise_signal(came[0])


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a wire run like Ctrl-C: the finally blocks kill the client and
    stop the servers (Python's default SIGTERM exits without running them). Only
    on the main thread, and only where nobody else handles SIGTERM."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wire_result(result: SuiteResult, seen: WireObservations) -> SuiteResult:
    """Add what only the wire measures (sizes) and says (notes) to a result."""
    warnings = list(result.warnings)
    reqs = []
    for r in result.requirements:
        if r.id in _SIZE_SHOWN_BY:
            r = _size_result(r, seen.sizes, result, warnings)
        reqs.append(r)
    warnings += seen.notes
    return msgspec.structs.replace(result, requirements=reqs, warnings=warnings)


#: Which check-ins show each size requirement, for the reason it was not measured.
_SIZE_SHOWN_BY: Final = {
    "REQ-SIZE-IDLE": "a pull check-in that carried nothing but the heartbeat (no logs, "
                     "no content)",
    "REQ-SIZE-MAX": "a pull check-in that uploaded the client's full logs",
}


def _size_result(r: RequirementResult, sizes: list[Size], result: SuiteResult,
                 warnings: list[str]) -> RequirementResult:
    """A size requirement's verdict from the check-ins measured: PASSED when one was
    (a size outside the typical range is a warning: the seed calls the sizes typical,
    A7), else SKIPPED -- whether such a check-in happens depends on the client's own
    logs, which the suite does not control -- or NOT_REACHED after a failure."""
    measured = [s for s in sizes if s.requirement == r.id]
    out = [s for s in measured if not s.bounds[0] <= s.bytes <= s.bounds[1]]
    if out:
        lo, hi = out[0].bounds
        values = sorted(s.bytes for s in out)
        span = (f"{values[0]:,}" if values[0] == values[-1]
                else f"{values[0]:,}-{values[-1]:,}")
        warnings.append(
            f"{r.id}: {len(out)} of {len(measured)} {out[0].kind} check-ins were "
            f"{span} bytes on the wire (first at t={out[0].t} on {out[0].server}); the "
            f"seed's typical range is {lo:,}-{hi:,} bytes (a warning, not a violation: "
            f"the seed calls the sizes typical, A7)")
    if measured:
        return msgspec.structs.replace(r, status=Status.PASSED, hits=len(measured),
                                       reason="")
    if result.failures or result.error:
        return msgspec.structs.replace(
            r, status=Status.NOT_REACHED, reason=r.reason or "the run stopped early")
    return msgspec.structs.replace(
        r, status=Status.SKIPPED,
        reason=f"no check-in of this run could show it: it needs "
               f"{_SIZE_SHOWN_BY[r.id]}, and the client's own logs decide whether one "
               f"happens")
