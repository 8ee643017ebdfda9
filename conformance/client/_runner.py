"""The reference heartbeat client: the pure core plus a thin asyncio HTTP adapter.

Theory of operation
-------------------
:class:`~sephb.conformance.client.core.ClientCore` decides everything; this module only
carries out its effects over the wire profile (``docs/wire-profile.md``) and turns
what happens into events for it. At any moment there is at most one piece of I/O in
flight (one request, the connect, or the held push request) and one core timer; the
loop waits for whichever comes first. When the timer wins, the I/O is cancelled and
its connection closed, so the client never waits past the session limit.

Durability: logs live in the state directory's queues (:mod:`.store`) and leave them
only when the manager acknowledged their ids; a restart re-sends the same ids and the
manager drops the duplicates. The index copy is saved once its content arrived.

Logs written by others (``--log-dir``, the suite's ``{log_dir}`` spool,
``docs/adapters.md``): right before each ``POST /logs`` the client takes every
``<id>.log`` file of the spool into its queue under that id (:meth:`.LogQueue.ingest`),
and removes the file only once the entry is durable there, so a SIGKILL at any moment
loses none and never gives one a second id.

Identity: without ``--client-id`` the client runs under the id kept in its state
directory (:meth:`.ClientState.client_id`), the same across restarts, so that the
managers recognise a log re-sent after a crash as the one they already have.

Trouble with the state directory never stops the heartbeat. A full disk, an
``index.json`` that is a directory, a queued log that is damaged: each is said once on
stderr (``sephb client: <file>: <what>: <error>``), and the client goes on checking in
with what it has -- the index copy in memory, the queue as it is (a damaged entry is
moved aside by the store, never uploaded, never blocking the rest).

Everything the client does and sees is recorded in model time (``--trace``) with
``by: "client"``; ``sephb client`` also says it on stdout from the same records
(:class:`_Narration`): a line per check-in, and the core stays pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

import msgspec

from sephb.conformance.client import faults
from sephb.conformance.client._http import HttpConnection, HttpError, Response
from sephb.conformance.client.core import ClientCore, Effect, Peer
from sephb.conformance.client.store import (
    ClientState,
    IndexCopy,
    LogEntry,
    LogQueue,
    is_log_id,
    make_logs,
)
from sephb.conformance.traces import wire
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.lines import LineOut
from sephb.conformance.traces.sylink import Sylink
from sephb.conformance.traces.trace import Recorder, TraceWriter
from sephb.model.errors import UsageError
from sephb.model.interpretations import Interpretation
from sephb.model.protocol import Action, Event, State

#: Listings of the spool before one log upload, at most: each takes in what came
#: while the last was written to the queue, so the upload misses only what lands in
#: the moment before it is sent.
SPOOL_ROUNDS = 3

#: Learned applications the client reports each heartbeat (step 6). A real client
#: sends its inventory of seen executables; the size puts an idle heartbeat where the
#: seed says (3-5 KB), see README "Heartbeat sizes".
LEARNED_APPS = 24


@dataclass
class ClientOptions:
    """How to run one reference client (``sephb client``)."""

    sylink: Sylink
    state_dir: Path
    interpretation: Interpretation
    time_scale: float = 1.0
    #: Stop after this many check-ins have ended (None: run until stopped).
    heartbeats: int | None = None
    location: str = "Default"
    #: Sent as X-Sephb-Client; None: the stable id kept in the state directory.
    client_id: str | None = None
    #: Bytes of new log entries the client produces before each heartbeat.
    log_bytes: int = 0
    seed: int | None = None
    #: fsync the state directory (off only for large simulations).
    fsync: bool = True
    #: Run a seeded-fault core (:mod:`.faults`) instead of the reference one; for
    #: testing conformance suites.
    fault: str | None = None
    #: A spool of log entries written by others (``<id>.log`` files), taken into the
    #: queue before each log upload (None: none).
    log_dir: Path | None = None
    #: Test only: keep spool entries in memory (a restart loses them), to show that
    #: the conformance suite catches a client whose log queue is not durable.
    volatile_logs: bool = False
    #: What to say on stdout (:class:`_Narration`): None nothing (a client in a test's
    #: event loop), 0 a line per check-in (``sephb client``), 1 also a line per request
    #: and answer (``-v``), -1 only check-ins that met a failure (``-q``).
    verbosity: int | None = None


@dataclass
class _Outcome:
    """How a piece of I/O ended: an event for the core, or a failure."""

    event: Event | None = None
    timed_out: bool = False
    data: dict[str, Any] = field(default_factory=dict)


class ReferenceClient:
    """One client: the core, its state directory and its connections."""

    def __init__(self, opts: ClientOptions, recorder: Recorder) -> None:
        self.opts = opts
        self.recorder = recorder
        self.clock: Clock = recorder.clock
        self.errors: list[str] = []
        #: Store operations failing now, with the errno last reported for each.
        self._failing: dict[str, int | None] = {}
        self.state = ClientState(opts.state_dir, fsync=opts.fsync)
        self._store_problems()
        self.client_id: str = opts.client_id or self._stable_id()
        sy = opts.sylink
        self.peers = [Peer(s.address, s.port, s.priority) for s in sy.servers]
        index = self._load_index()
        #: The index copy as last saved (or loaded): saved again when the core's differs.
        self._saved_index = (index.serial, index.revision) if index else None
        self.core: ClientCore = faults.core_class(opts.fault)(
            self.peers,
            sy.mode,
            opts.interpretation,
            interval_ms=sy.heartbeat_s * 1000,
            push_interval_ms=sy.push_heartbeat_s * 1000,
            randomization_ms=sy.randomization_s * 1000,
            rng=random.Random(opts.seed),
            index=(index.serial, index.revision) if index else None,
        )
        self.conn: HttpConnection | None = None
        #: Ids of the log upload in flight (narrowed to those the manager acknowledged
        #: once answered), until the core settles them.
        self._inflight: list[str] = []
        #: Whether the I/O in flight uses the session's connection.
        self._io_on_session = True
        #: Check-ins that ended (arrived at IDLE or PUSH_HELD).
        self.checkins = 0
        self._bytes = [0, 0]  # (in, out) of the current check-in, closed connections
        self._rnd = random.Random(opts.seed)
        #: Spool entries of a --volatile-logs client: id -> text, in memory only.
        self._volatile: dict[str, str] = {}
        self._narration = (None if opts.verbosity is None
                           else _Narration(self.core, opts.verbosity, sys.stdout))

    # --- the loop ------------------------------------------------------------------

    async def run(self) -> int:
        """Run until ``heartbeats`` check-ins ended (or forever); return exit status."""
        core, clock = self.core, self.clock
        self._produce_logs()
        core.start(clock.now_ms())
        io: asyncio.Task[_Outcome] | None = None
        try:
            while not self._done():
                timer = core.timer
                now = clock.now_ms()
                wait = (None if timer is None
                        else max(0.0, clock.wall_seconds(timer.at - now)))
                if io is not None and core.state is State.PUSH_HELD and wait is not None:
                    # The manager ends the hold with 204 when the push heartbeat is
                    # due (X-Sephb-Hold-Ms); give it the session limit to do so.
                    wait += clock.wall_seconds(core.session_limit_ms)
                if io is None:
                    if wait is None:
                        return self._stuck()
                    await asyncio.sleep(wait)
                    effects = self._fire_timer()
                else:
                    done, _ = await asyncio.wait({io}, timeout=wait)
                    if io in done:
                        outcome, io = io.result(), None
                        effects = self._apply(outcome)
                    elif timer is not None and clock.now_ms() >= timer.at:
                        io.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await io
                        io = None
                        if self._io_on_session:
                            # A request cut off mid-answer leaves the session
                            # connection unusable; a download from elsewhere (the
                            # GUP) had its own connection, closed with it.
                            self._close()
                        effects = self._fire_timer()
                    else:
                        continue  # woke a little early: the timer is not due yet
                for effect in effects:
                    io = self._start(effect)
        finally:
            if io is not None:
                io.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await io
            self._close()
        return 0

    def _done(self) -> bool:
        limit = self.opts.heartbeats
        return limit is not None and self.checkins >= limit

    def _stuck(self) -> int:
        # Only a seed-interpretation push client whose held connection is gone and
        # that has no timer could get here; the table never leaves it so.
        self.errors.append(f"nothing to wait for in state {self.core.state.value}")
        return 1

    def _fire_timer(self) -> list[Effect]:
        timer = self.core.timer
        if timer is None or self.clock.now_ms() < timer.at:
            return []
        self._record(timer.event)
        return self._after(self.core.expire(max(self.clock.now_ms(), timer.at)))

    def _apply(self, outcome: _Outcome) -> list[Effect]:
        now = self.clock.now_ms()
        if outcome.event is None:
            before = self.core.state
            effects = self.core.fail(now, timed_out=outcome.timed_out)
            assert self.core.path[-1].source is before
            self._record(self.core.path[-1].event, error=outcome.data.get("error"))
            return self._after(effects)
        if self.core.state is State.PUSH_HELD:
            self._new_checkin()  # a push or the push heartbeat starts one
        self._record(outcome.event, **outcome.data)
        kw = {k: outcome.data[k] for k in ("serial", "content", "source", "urls")
              if k in outcome.data}
        return self._after(self.core.handle(outcome.event, now, **kw))

    def _after(self, effects: list[Effect]) -> list[Effect]:
        """Bookkeeping after a move: save a new index copy (until it is saved)."""
        index = self.core.index
        if index is not None and index != self._saved_index:
            try:
                self.state.save_index(IndexCopy(*index))
            except OSError as e:
                self._io_problem("index", "cannot save the index copy", e,
                                 "kept in memory, saved once possible")
            else:
                self._saved_index = index
                self._failing.pop("index", None)
        return effects

    # --- the state directory's troubles (reported, never fatal) --------------------

    def _stable_id(self) -> str:
        try:
            return self.state.client_id()
        except UsageError as e:
            fallback = f"{socket.gethostname()}-{os.getpid()}"
            self._note(f"{e}; running as {fallback} for now (logs re-sent after a "
                       "restart may then be stored twice)")
            return fallback

    def _load_index(self) -> IndexCopy | None:
        try:
            return self.state.load_index()
        except UsageError as e:
            self._note(f"{e}; starting without an index copy (the content is "
                       "downloaded again)")
            return None

    def _io_problem(self, op: str, what: str, exc: OSError, then: str) -> None:
        """An I/O error of a store operation: said once, not at every retry while it
        keeps failing the same way (a new errno, or a failure after a success, is
        said again unless its line is the same)."""
        if op in self._failing and self._failing[op] == exc.errno:
            return
        self._failing[op] = exc.errno
        self._note(f"{exc.filename or self.state.root}: {what}: {exc.strerror or exc}; "
                   f"{then}")

    def _store_problems(self) -> None:
        """Report damage the store found and dealt with (moved aside, skipped)."""
        for text in self.state.take_problems():
            self._note(text)

    def _pending(self, queue: LogQueue, op: str) -> list[LogEntry]:
        """The queue's entries to upload; none when it cannot even be listed."""
        try:
            batch = queue.pending()
        except OSError as e:
            # (os.listdir names the directory in the error)
            self._io_problem(op, "cannot list the queue", e,
                             "this upload carries none of its entries")
            batch = []
        else:
            self._failing.pop(op, None)
        self._store_problems()
        return batch

    def _ack(self, queue: LogQueue, ids: list[str], op: str) -> None:
        try:
            queue.ack(ids)
        except OSError as e:
            self._io_problem(op, "cannot remove acknowledged entries from the queue", e,
                             "they stay queued and are sent again (the manager drops "
                             "them by id)")
        else:
            self._failing.pop(op, None)

    # --- effects -------------------------------------------------------------------

    def _start(self, effect: Effect) -> asyncio.Task[_Outcome] | None:
        if effect.settle_logs:
            # The manager acknowledged the last upload: only now may it leave the queue.
            self._ack(self.state.logs, self._inflight, "ack logs")
            for entry_id in self._inflight:
                self._volatile.pop(entry_id, None)
            self._inflight = []
        fields: dict[str, Any] = {}
        if effect.host is not None:
            fields = {"addr": effect.host, "port": effect.port}
        action = effect.action
        if action is Action.DISCONNECT:
            self._close()
            self._record(action, bytes_in=self._bytes[0], bytes_out=self._bytes[1])
            self._checkin_ended(action)
            return None
        if action is Action.CONNECT:
            self._close()
            if self.core.path[-1].source is State.IDLE:
                self._new_checkin()
        if action is Action.HOLD:
            conn = self.conn
            self._record_size()
            self._record(action, bytes_in=self._bytes[0], bytes_out=self._bytes[1],
                         **fields)
            self._checkin_ended(action)
            assert conn is not None
            if self._done():
                return None  # the last check-in ended held: nothing more to wait for
            return asyncio.create_task(self._guard(self._hold(conn)))
        self._record(action, **fields)
        self._io_on_session = not (
            action in _ELSEWHERE and self.conn is not None
            and self.conn.host != f"{effect.host}:{effect.port}")
        return asyncio.create_task(self._guard(self._do(effect)))

    def _new_checkin(self) -> None:
        self._bytes = [0, 0]

    def _produce_logs(self) -> None:
        # The client's own activity between heartbeats. Writing the queue is durable
        # (fsync) and takes real time, so it happens while the client rests, never
        # inside a check-in whose session limit is running.
        if self.opts.log_bytes:
            try:
                make_logs(self.state.logs, self.opts.log_bytes,
                          seed=self._rnd.getrandbits(32))
            except OSError as e:
                self._io_problem("make logs", "cannot queue new log entries", e,
                                 "the entries not queued are not made; the queue is kept")
            else:
                self._failing.pop("make logs", None)

    def _take_spool(self) -> None:
        """Take the spool's entries into the queue (``--log-dir``): each ``<id>.log``
        file under its id, durably, and only then remove the file. Listed again
        until a listing finds nothing new (at most :data:`SPOOL_ROUNDS`)."""
        spool = self.opts.log_dir
        if spool is None:
            return
        for _ in range(SPOOL_ROUNDS):
            try:
                names = sorted((n for n in os.listdir(spool) if n.endswith(".log")),
                               key=lambda n: (len(n), n))
            except FileNotFoundError:
                return
            taken: list[tuple[str, str, Path]] = []
            for name in names:
                entry_id, path = name[:-len(".log")], spool / name
                if not is_log_id(entry_id):
                    self._note(f"{path}: not a log id; left in the spool")
                    continue
                try:
                    raw = path.read_bytes()
                except FileNotFoundError:
                    continue
                except OSError as e:
                    self._note(f"{path}: cannot read: {e.strerror or e}; left in the spool")
                    continue
                taken.append((entry_id, _spool_text(raw), path))
            if not taken:
                return
            if self.opts.volatile_logs:
                for entry_id, text, _ in taken:
                    self._volatile.setdefault(entry_id, text)
            else:
                try:
                    self.state.logs.ingest((entry_id, text) for entry_id, text, _ in taken)
                except OSError as e:
                    self._io_problem("spool", "cannot take the log spool into the queue",
                                     e, "its files stay in the spool for the next upload")
                    return
                self._failing.pop("spool", None)
            for *_, path in taken:
                path.unlink(missing_ok=True)

    def _note(self, text: str) -> None:
        """A problem worth saying once (on stderr) that does not stop the client."""
        if text not in self.errors:
            self.errors.append(text)
            print(f"sephb client: {text}", file=sys.stderr)

    def _checkin_ended(self, action: Action) -> None:
        """A check-in ended with ``action`` (DISCONNECT, or HOLD in push mode)."""
        self.checkins += 1
        if self._narration is not None:
            self._narration.ended(action, self.clock.now_ms(), *self._bytes)
        self._produce_logs()

    def _record_size(self) -> None:
        # In push mode the check-in ends with the connection kept: its size so far.
        if self.conn is not None:
            self._bytes[0] += self.conn.bytes_in
            self._bytes[1] += self.conn.bytes_out
            self.conn.bytes_in = self.conn.bytes_out = 0

    async def _guard(self, work: Any) -> _Outcome:
        try:
            outcome: _Outcome = await work
            return outcome
        except (HttpError, OSError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _Outcome(data={"error": f"{type(exc).__name__}: {exc}"})

    def _headers(self) -> dict[str, str]:
        return {wire.HEADER_CLIENT: self.client_id,
                wire.HEADER_LOCATION: self.opts.location}

    async def _call(self, effect: Effect, method: str, path: str, body: bytes = b"",
                    headers: dict[str, str] | None = None) -> Response:
        """One request to the session's manager (opening the connection if a client
        goes on without one) or, when the effect targets elsewhere, to that host."""
        assert effect.host is not None and effect.port is not None
        conn = self.conn
        if conn is None or conn.host != f"{effect.host}:{effect.port}":
            if conn is not None and effect.action not in _ELSEWHERE:
                raise HttpError(f"{effect.action.value} aimed at {effect.host}:"
                                f"{effect.port}, not the session's {conn.host}")
            other = await HttpConnection.open(effect.host, effect.port)
            if conn is None and effect.action not in _ELSEWHERE:
                self.conn = other
            else:  # a download from elsewhere: its own connection, closed after
                try:
                    return await self._send(other, method, path, body, headers)
                finally:
                    other.close()
                    self._bytes[0] += other.bytes_in
                    self._bytes[1] += other.bytes_out
        assert self.conn is not None
        return await self._send(self.conn, method, path, body, headers)

    async def _send(self, conn: HttpConnection, method: str, path: str, body: bytes,
                    headers: dict[str, str] | None) -> Response:
        hdrs = self._headers() | (headers or {})
        if body:
            hdrs["Content-Type"] = "application/json"
        resp = await conn.request(method, path, hdrs, body)
        if resp.status >= 300:
            raise HttpError(f"{conn.host}: {method} {path} answered {resp.status}")
        return resp

    async def _do(self, effect: Effect) -> _Outcome:
        action = effect.action
        if action is Action.CONNECT:
            assert effect.host is not None and effect.port is not None
            self.conn = await HttpConnection.open(effect.host, effect.port)
            return _Outcome(Event.CONNECTED)
        if action is Action.GET_INDEX:
            serial = self.core.index[0] if self.core.index else ""
            resp = await self._call(effect, "GET", wire.INDEX_PATH,
                                    headers={wire.HEADER_SERIAL: serial})
            idx = msgspec.json.decode(resp.body, type=wire.IndexAnswer)
            return _Outcome(Event.INDEX_RECEIVED, data={
                "serial": idx.serial, "content": idx.content, "source": idx.source.value,
                "changed": (idx.serial, idx.content) != self.core.index})
        if action is Action.GET_URLS:
            resp = await self._call(effect, "GET", wire.URLS_PATH)
            urls = msgspec.json.decode(resp.body, type=wire.UrlsAnswer)
            return _Outcome(Event.URLS_RECEIVED,
                            data={"source": urls.source.value, "urls": list(urls.urls)})
        if action in _ELSEWHERE:
            # Every URL's path, fetched from where the core aims this download: the
            # GUP, or the manager (its own URLs, or the GUP's ones on fallback, A5).
            for url in self.core.urls:
                parts = urlsplit(url)
                await self._call(effect, "GET", parts.path
                                 + (f"?{parts.query}" if parts.query else ""))
            return _Outcome(Event.CONTENT_RECEIVED)
        if action is Action.UPLOAD_LOGS:
            self._take_spool()
            batch = self._pending(self.state.logs, "list logs") + [
                LogEntry(i, text) for i, text in self._volatile.items()]
            # The whole batch is in flight until answered: the reference settles only
            # after an acknowledgement, a seeded fault may settle on a failure.
            self._inflight = [e.id for e in batch]
            body = msgspec.json.encode(wire.LogsUpload(
                [wire.LogEntry(e.id, e.data) for e in batch]))
            resp = await self._call(effect, "POST", wire.LOGS_PATH, body)
            acked = set(msgspec.json.decode(resp.body, type=wire.LogsAck).acked)
            self._inflight = [e.id for e in batch if e.id in acked]
            return _Outcome(Event.LOGS_ACKED, data={"ids": self._inflight})
        if action is Action.UPLOAD_SENSORS:
            batch = self._pending(self.state.sensors, "list sensors")
            apps = [{"sha256": f"{self._rnd.getrandbits(256):064x}",
                     "path": f"C:\\Program Files\\App{i:02d}\\app{i:02d}.exe"}
                    for i in range(LEARNED_APPS)]
            body = msgspec.json.encode(wire.SensorsUpload(
                [{"id": e.id, "data": e.data} for e in batch], apps))
            await self._call(effect, "POST", wire.SENSORS_PATH, body)
            self._ack(self.state.sensors, [e.id for e in batch], "ack sensors")
            return _Outcome(Event.SENSORS_ACKED)
        raise AssertionError(f"no adapter for {action}")  # ENTRY has no other actions

    async def _hold(self, conn: HttpConnection) -> _Outcome:
        headers = self._headers()
        timer = self.core.timer
        if timer is not None:
            headers[wire.HEADER_HOLD_MS] = str(max(0, timer.at - self.clock.now_ms()))
        resp = await conn.request("GET", wire.PUSH_PATH, headers)
        if resp.status == 204:
            return _Outcome(Event.HEARTBEAT_DUE)
        if resp.status != 200:
            raise HttpError(f"{conn.host}: GET {wire.PUSH_PATH} answered {resp.status}")
        push = msgspec.json.decode(resp.body, type=wire.PushAnswer)
        return _Outcome(Event.POLICY_PUSHED, data={"serial": push.serial})

    def _close(self) -> None:
        if self.conn is not None:
            self._bytes[0] += self.conn.bytes_in
            self._bytes[1] += self.conn.bytes_out
            self.conn.close()
            self.conn = None

    def _record(self, name: Action | Event, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items()
                  if v is not None and k in _RECORD_FIELDS}
        self.recorder.emit(name, self.client_id, by="client", **fields)
        if self._narration is not None:
            self._narration.record(name, self.clock.now_ms(), fields)


class _Narration:
    """What ``sephb client`` says on stdout, from the client's own records: a line per
    check-in when it ends; with verbosity 1 also a line per record (request, answer,
    timer); with -1 only the check-ins that met a failure. It keeps a few strings per
    check-in, so it costs nothing at any rate, and it never raises: once the reader
    is gone (a closed pipe), it falls silent and the heartbeat goes on."""

    def __init__(self, core: ClientCore, verbosity: int, out: TextIO) -> None:
        self.core, self.verbosity = core, verbosity
        self._say = LineOut(out).say
        self.ended_count = 0
        #: The session's manager (a check-in on a held push connection keeps it), and
        #: the host and action of the last request.
        self.manager = self.at = self.step = ""
        self._begin("")

    def _begin(self, why: str) -> None:
        self.why, self.connected, self.completed = why, False, False
        self.done, self.failed = list[str](), list[str]()  # what it did, what failed

    def record(self, name: Action | Event, t: int, fields: dict[str, Any]) -> None:
        if self.verbosity > 0:  # a list is said as its length
            self._say(t, " ".join([">" if isinstance(name, Action) else "<", name.value] + [
                f"{k}={len(v) if isinstance(v, list) else v}" for k, v in fields.items()]))
        held = self.core.state is State.PUSH_HELD
        if name in (Event.HEARTBEAT_DUE, Event.POLICY_PUSHED) or (
                held and name is Event.CONNECTION_LOST):
            self._begin(" (policy pushed)" if name is Event.POLICY_PUSHED else
                        " (push heartbeat)" if held else "")
        if "addr" in fields:
            self.at, self.step = f"{fields['addr']}:{fields['port']}", name.value
            self.manager = self.at if name is Action.CONNECT else self.manager
        self.connected |= name is Event.CONNECTED
        if name is Event.INDEX_RECEIVED:
            self.done.append("new index" if fields.get("changed") else "index unchanged")
        elif name is Event.CONTENT_RECEIVED:
            self.done.append(f"content from {self.at}")
        elif name is Event.LOGS_ACKED:
            n = len(fields.get("ids", ()))
            self.done.append(f"{n:,} log{'' if n == 1 else 's'} uploaded")
        elif name is Event.SENSORS_ACKED:
            self.completed = True
        elif name in _FAILED:
            # No error: the client's own timer fired, no answer came in time.
            limit = (self.core.session_limit_ms if name is Event.SESSION_TIMEOUT
                     else self.core.request_limit_ms or 0)
            self.failed.append(f"{self.at} {_FAILED[name] or self.step + ' failed'} " + (
                f"({fields['error']})" if "error" in fields else f"after {limit:,} ms"))


    def ended(self, name: Action, t: int, bytes_in: int, bytes_out: int) -> None:
        """The runner's check-in ended (it decides when: ``_checkin_ended``)."""
        self.ended_count += 1
        if self.verbosity < 0 and not self.failed:
            return
        failed = ", then ".join(self.failed)
        how = (f"via {self.manager}: completed ({', '.join(self.done)})"
               + (f" after {failed}" if failed else "") if self.completed
               else f"failed: {failed}" if self.connected
               else f"failed to reach a manager: {failed}")
        timer, held = self.core.timer, name is Action.HOLD
        nxt = "waiting for pushes only" if timer is None else (
            f"{'push' if held else 'next'} heartbeat in "
            f"{(timer.at - t) / 1000:,.3f}".rstrip("0").rstrip(".")
            + f" s (t={timer.at:,} ms)")
        self._say(t, f"check-in {self.ended_count}{self.why} {how}; {bytes_in:,} B in, "
                     f"{bytes_out:,} B out{'; connection held for pushes' if held else ''}"
                     f"; {nxt}")


#: Failures a check-in can meet, as its line says them ("": the request's action).
_FAILED: Final = {
    Event.CONNECT_FAILED: "connect failed", Event.SESSION_TIMEOUT: "session timed out",
    Event.REQUEST_FAILED: "", Event.DOWNLOAD_FAILED: "download failed",
    Event.CONNECTION_LOST: "connection lost"}


def _spool_text(raw: bytes) -> str:
    """The text to upload for a spool file: its JSON object's ``text`` (the suite's
    entries, ``docs/adapters.md``), or else the file itself."""
    try:
        entry = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        entry = None
    if isinstance(entry, dict) and isinstance(entry.get("text"), str):
        return str(entry["text"])
    return raw.decode("utf-8", "replace")


#: Downloads may go to another host than the session's manager (the GUP).
_ELSEWHERE = frozenset({Action.DOWNLOAD_MANAGER, Action.DOWNLOAD_GUP})

_RECORD_FIELDS = frozenset({
    "addr", "port", "serial", "content", "source", "changed", "ids", "error", "urls",
    "bytes_in", "bytes_out",
})


#: The ``writer`` of the header of the reference client's own trace (``sephb client
#: --trace``; docs/trace-format.md).
TRACE_WRITER: Final = "client"


async def run_client(opts: ClientOptions, trace: str | os.PathLike[str] | None = None
                     ) -> int:
    """Run one reference client with its own clock and trace (its header says the
    time scale); stop on SIGINT/SIGTERM."""
    writer = TraceWriter(trace, time_scale=opts.time_scale, writer=TRACE_WRITER) \
        if trace else None
    recorder = Recorder(Clock(opts.time_scale), writer=writer, keep=False)
    client = ReferenceClient(opts, recorder)
    task = asyncio.ensure_future(client.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 0
    finally:
        recorder.close()

