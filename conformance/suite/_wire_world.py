"""The wire adapter's world: the :class:`~.world.World` interface over a real
:class:`~sephb.conformance.site.Fleet`.

A :class:`RemoteWorld` runs a fleet (three managers over two priorities on port 8014
and a GUP on 2967, on 127.x addresses of its own) in an asyncio loop on a background
thread; each environment action crosses into that loop and waits for it to be done.
Its clock is the fleet's: model milliseconds at the run's time scale. See
:mod:`._remote` for what the wire can and cannot show.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgspec

from sephb.conformance.site import Fleet, SimServer
from sephb.conformance.site.config import FleetConfig
from sephb.conformance.suite.world import DEFAULT_SITE, Fault, Reply, Site, VServer
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.trace import Record
from sephb.conformance.traces.wire import GUP_PORT, Role
from sephb.model.protocol import (
    FULL_HEARTBEAT_BYTES,
    IDLE_HEARTBEAT_BYTES,
    Action,
    Event,
    Source,
)

T = TypeVar("T")

#: 0.01: the 300 s interval lasts 3 s and the 30,000 ms session limit 0.3 s of wall
#: time, long enough that scheduling jitter stays small in model time.
DEFAULT_TIME_SCALE: Final = 0.01
#: Wall seconds a started client gets to make its first request, and how long the
#: servers must then be quiet before the suite goes on (see ProcessClient.start).
STARTUP_S: Final = 3.0
QUIET_S: Final = 0.1
#: The quiet wait in model time: QUIET_S at the default scale, shorter at a faster
#: one (a check-in's requests are milliseconds apart on loopback), never under
#: QUIET_MIN_S.
QUIET_MS: Final = 10_000
QUIET_MIN_S: Final = 0.02


def quiet_for(time_scale: float) -> float:
    """Wall seconds of quiet that end a client's start at ``time_scale``."""
    return max(QUIET_MIN_S, QUIET_MS / 1000 * time_scale)
#: Wall seconds a client process may take to start (an interpreter, its imports)
#: before its first heartbeat, which is due at once (A10). A client that waits longer
#: breaks REQ-7-PULL; one that makes no request within STARTUP_S is not tested.
#: The reference client's first request comes 0.24 s after its spawn; at the
#: calibrated time scale the interval lasts about a second, so a larger allowance
#: would hide a first heartbeat half an interval late (--start-allowance for a
#: slower starter).
START_ALLOWANCE_S: Final = 0.5
#: Longest a start may wait for quiet (a client that keeps talking).
SETTLE_LIMIT_S: Final = 2.0
#: A log upload at least this large makes a check-in "full" (REQ-SIZE-MAX): half the
#: smallest typical full heartbeat, so that the logs dominate it.
FULL_LOG_BYTES: Final = FULL_HEARTBEAT_BYTES[0] // 2

#: Trace names of requests (what a client sends), as opposed to answers.
_REQUESTS: Final = frozenset(a.value for a in Action) - {Action.CONNECT.value,
                                                        Action.DISCONNECT.value}
_PEER_RE: Final = re.compile(r"^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$")


# --- where the fleet listens ----------------------------------------------------------

_counter = itertools.count()
#: The third octet of this process's worlds (see :func:`use_lane`); None: by count.
_lane: list[int | None] = [None]
#: The second octet of a run's worlds: one per run (by the process id of the run's
#: main process, which every job of it is told), 220-254.
_second: list[int] = [220 + os.getpid() % 35]


def use_lane(lane: int | None, second: int | None = None) -> None:
    """Put the worlds this process makes from now on on 127.S.``lane``.x (S: the
    run's second octet, ``second`` or this process's): concurrent jobs of one run
    each get a lane of their own, so their servers never meet."""
    _lane[0] = None if lane is None else lane % 250
    if second is not None:
        _second[0] = second


def run_octet() -> int:
    """The second octet of this run's addresses (its jobs are told it)."""
    return _second[0]


def _addresses(n: int) -> list[str]:
    """Loopback addresses for one world: the scheme of ``tests/netutil.addresses``
    with a second octet of the run's own (220-254 by process id), so that worlds of
    one run, concurrent runs and the project's tests rarely meet. A job of a
    concurrent run has a third octet of its own (:func:`use_lane`). When two worlds
    meet anyway, a server falls back to an ephemeral port and the sylink.xml says so."""
    out = []
    for _ in range(n):
        i = next(_counter) % (250 * 256)
        third = i // 250 if _lane[0] is None else _lane[0]
        out.append(f"127.{_second[0]}.{third}.{i % 250 + 2}")
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
    """The :class:`~.world.World` interface over a real
    :class:`~sephb.conformance.site.Fleet`.

    ``managers`` and ``gup`` describe the real servers (their bound ports); ``now`` is
    the fleet clock's model time; ``records`` are the servers' records as trace dicts,
    appended as they arrive.
    """

    def __init__(self, site: Site = DEFAULT_SITE, *,
                 time_scale: float = DEFAULT_TIME_SCALE, tolerance_ms: int = 0,
                 poll_ms: int | None = None) -> None:
        self.time_scale = time_scale
        self.tolerance_ms = tolerance_ms
        self.site = site
        #: How often the suite looks at the records while time passes.
        self.poll_ms = poll_ms or max(1, tolerance_ms // 2) or 1_000
        # The drawn site on 127.x addresses of this world: each manager's priority
        # and port, the GUP's port (or none), the locations' policies.
        addrs = _addresses(len(site.managers) + 1)
        cfg = FleetConfig.loopback(addrs[:-1], gup=addrs[-1] if site.gup else None,
                                   gup_port=site.gup or GUP_PORT)
        policies = {loc: Source(src) for loc, src in site.policies}
        cfg = msgspec.structs.replace(cfg, managers=tuple(
            msgspec.structs.replace(m, priority=prio, port=port, locations=policies)
            for m, (prio, port) in zip(cfg.managers, site.managers, strict=True)))
        self.clock = Clock(time_scale)
        self.fleet = Fleet(cfg, clock=self.clock)
        self._records: list[dict[str, Any]] = []
        #: Unused over the wire: the client is a process and gets no calls.
        self.on_answer: Callable[[str, Reply], None] | None = None
        #: Things a report should mention (a client without X-Sephb-Client, ...).
        self.notes: list[str] = []
        self._taken = 0
        self._heard = 0
        #: Model time the client process was last spawned at (the first heartbeat
        #: is due at once from there).
        self.spawned_at: int | None = None
        self._last_heard = 0.0
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
        if (_PEER_RE.match(rec.client) and rec.event != Action.DISCONNECT.value
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


# Whatever a test case leaves (an interrupt in the middle of one), the interpreter's
# exit cleans up: no server outlives the suite (the clients' module registers after
# this one, so its clean-up runs first: clients before their servers).
_LIVE_WORLDS: set[RemoteWorld] = set()


@atexit.register
def close_all_worlds() -> None:
    for w in list(_LIVE_WORLDS):
        with contextlib.suppress(Exception):
            w.close()
