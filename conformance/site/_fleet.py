"""A fleet: the managers, the GUP and the control API of one config, the site they
share, and the ``sephb manager`` process that serves them.

The fleet owns what its servers share: the :class:`Site` (one database), the
:class:`~sephb.conformance.traces.trace.Recorder` and its clock. The control API
(:mod:`._control`) drives a fleet; a server only reads its fleet's config, site and
recorder.

The site's database
-------------------
A real SEPM site keeps what its clients upload in one database; so does a
:class:`Site`: a private SQLite database in a temporary file (``sqlite3.connect("")``:
unlinked at once, gone when the site is), holding every accepted log -- its bytes,
size and SHA-256 -- and the sensor counts per client. Memory stays bounded by
SQLite's page cache however much is uploaded, and nothing is left on disk after a
crash. Readers page through it (by sequence number, by client id), so that
``GET /control/state`` streams its answer instead of building it.

The ``sephb manager`` process says on stderr what its servers serve
(:class:`RequestLog`, a listener on the fleet's recorder): a line per request. A
fleet in a test or in the suite has no such listener, and says nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import signal
import sqlite3
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

import msgspec

from sephb.conformance.site._control import ControlApi
from sephb.conformance.site._server import Endpoint, SimServer, SiteError
from sephb.conformance.site.config import FleetConfig, apply_listen, load_config
from sephb.conformance.traces import wire
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.lines import LineOut
from sephb.conformance.traces.trace import Record, Recorder, TraceWriter
from sephb.conformance.traces.wire import IndexAnswer, LogEntry, Role
from sephb.model.errors import UsageError
from sephb.model.protocol import Action

# --- the site ---------------------------------------------------------------------------

#: SQLite's page cache of a site's database, in KiB: what its memory is bounded by.
_CACHE_KIB: Final = 4096
#: Rows a reader takes per query: the unit of work between two writes of a stream.
_PAGE: Final = 512
_SCHEMA: Final = (
    # Ids and client ids are stored as UTF-8 BLOBs: compared byte for byte (a NUL in
    # an id is just a byte) and ordered like Python orders the strings.
    """CREATE TABLE logs (
        seq INTEGER PRIMARY KEY,
        client BLOB NOT NULL,
        id BLOB NOT NULL,
        server TEXT NOT NULL,
        t INTEGER NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        differing INTEGER NOT NULL DEFAULT 0,
        data BLOB NOT NULL,
        UNIQUE (client, id))""",
    """CREATE TABLE sensors (
        client BLOB PRIMARY KEY,
        uploads INTEGER NOT NULL,
        lan_sensor INTEGER NOT NULL,
        learned_apps INTEGER NOT NULL)""",
)


def _b(text: str) -> bytes:
    # 'surrogatepass': a str that came from the Python API, not the wire, still stores.
    return text.encode("utf-8", "surrogatepass")


def _s(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class StoredLog:
    """A log the site accepted: from which client (the key), through which manager,
    when, its size in bytes and SHA-256 (of its UTF-8 data). ``data`` is read from the
    site's database when asked for."""

    id: str
    server: str
    t: int
    size: int
    sha256: str
    #: Later uploads of this id under the same client id whose data differed (they
    #: were acknowledged and dropped; docs/wire-profile.md, "Client identity").
    differing: int = 0
    site: Site | None = field(default=None, repr=False, compare=False)
    seq: int = field(default=0, repr=False, compare=False)

    @property
    def data(self) -> str:
        if self.site is None:
            raise UsageError(f"log {self.id!r} has no site to read its data from")
        return self.site.log_data(self.seq)

    def summary(self) -> dict[str, Any]:
        """What ``GET /control/state`` lists: everything but the data."""
        out: dict[str, Any] = {"id": self.id, "server": self.server, "t": self.t,
                               "size": self.size, "sha256": self.sha256}
        if self.differing:
            out["differing"] = self.differing
        return out


class Site:
    """What the managers of a site share: policy serial, content revision, and the
    database of accepted logs and sensor counts (see the module's docstring).

    Safe to call from any thread (the suite's wire world serves on a thread of its
    own while tests read): every call holds the site's lock for one short query."""

    def __init__(self, serial: str, content: int, files: tuple[str, ...],
                 content_size: int):
        self.serial = serial
        self.content = content
        self.files = files
        self.content_size = content_size
        #: Content revisions from this one on are served (older URLs still work).
        self.first_content = content
        self._lock = threading.Lock()
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        # The database goes when the site does, whoever still holds a StoredLog.
        weakref.finalize(self, self._db.close)
        for pragma in (f"cache_size = -{_CACHE_KIB}", "synchronous = OFF",
                       "journal_mode = MEMORY", "temp_store = FILE"):
            self._db.execute(f"PRAGMA {pragma}")
        for table in _SCHEMA:
            self._db.execute(table)

    def index(self) -> IndexAnswer:
        return IndexAnswer(self.serial, self.content)

    def publish(self) -> IndexAnswer:
        """New content: a new serial and the next revision."""
        self.serial = wire.next_serial(self.serial)
        self.content += 1
        return self.index()

    def has_content(self, revision: int, file: str) -> bool:
        return self.first_content <= revision <= self.content and file in self.files

    # -- writing --

    def accept_logs(self, client: str, logs: Iterable[LogEntry], server: str, t: int
                    ) -> list[str]:
        """Store the new logs; return the ids that were accepted before (each is
        dropped, and counted as ``differing`` when its data is not the stored one).
        Raises :class:`SiteError` when the database cannot store them."""
        dups = []
        with self._lock:
            try:
                self._db.execute("BEGIN")
                for log in logs:
                    raw = _b(log.data)
                    digest = hashlib.sha256(raw).hexdigest()
                    key = (_b(client), _b(log.id))
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO logs (client, id, server, t, size, sha256,"
                        " data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (*key, server, t, len(raw), digest, raw))
                    if cur.rowcount == 0:
                        dups.append(log.id)
                        self._db.execute(
                            "UPDATE logs SET differing = differing + 1"
                            " WHERE client = ? AND id = ? AND sha256 != ?", (*key, digest))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise SiteError(f"the site's database cannot store logs: {exc}") from None
        return dups

    def count_sensors(self, client: str, lan_sensor: int, learned_apps: int) -> None:
        """Count one sensors upload of ``client``. Raises :class:`SiteError`."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO sensors VALUES (?, 1, ?, ?) ON CONFLICT (client)"
                    " DO UPDATE SET uploads = uploads + 1,"
                    " lan_sensor = lan_sensor + excluded.lan_sensor,"
                    " learned_apps = learned_apps + excluded.learned_apps",
                    (_b(client), lan_sensor, learned_apps))
            except sqlite3.Error as exc:
                raise SiteError(f"the site's database cannot count sensors: {exc}"
                                ) from None

    # -- reading --

    def logs(self, client: str, *, after: int = 0, limit: int | None = None
             ) -> list[StoredLog]:
        """The logs accepted from ``client`` in order of acceptance (those after
        sequence number ``after``; at most ``limit``). Their data stays on disk."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, server, t, size, sha256, differing FROM logs"
                " WHERE client = ? AND seq > ? ORDER BY seq LIMIT ?",
                (_b(client), after, -1 if limit is None else limit)).fetchall()
        return [StoredLog(_s(i), server, t, size, sha, differing, self, seq)
                for seq, i, server, t, size, sha, differing in rows]

    def log_data(self, seq: int) -> str:
        with self._lock:
            row = self._db.execute("SELECT data FROM logs WHERE seq = ?", (seq,)
                                   ).fetchone()
        if row is None:
            raise UsageError(f"no stored log number {seq}")
        return _s(row[0])

    def sensors(self, client: str) -> dict[str, int] | None:
        """Uploads and entry counts of ``client``'s sensor uploads, None if none."""
        with self._lock:
            row = self._db.execute(
                "SELECT uploads, lan_sensor, learned_apps FROM sensors WHERE client = ?",
                (_b(client),)).fetchone()
        return None if row is None else dict(zip(
            ("uploads", "lan_sensor", "learned_apps"), row, strict=True))

    def clients(self) -> Iterator[str]:
        """Every client id with a log or a sensors upload, in order, a page at a
        time (clients that arrive meanwhile after the current one are included)."""
        last = b""
        while True:
            with self._lock:
                page = [r[0] for r in self._db.execute(
                    "SELECT client FROM logs WHERE client > ? UNION"
                    " SELECT client FROM sensors WHERE client > ? ORDER BY 1 LIMIT ?",
                    (last, last, _PAGE))]
            yield from map(_s, page)
            if len(page) < _PAGE:
                return
            last = page[-1]

    def all_logs(self, client: str) -> Iterator[StoredLog]:
        """:meth:`logs` a page at a time."""
        after = 0
        while page := self.logs(client, after=after, limit=_PAGE):
            yield from page
            after = page[-1].seq


# --- the fleet ------------------------------------------------------------------------

#: The ``writer`` of the header of a trace the servers write (``sephb manager
#: --trace``; docs/trace-format.md).
TRACE_WRITER: Final = "manager"


class Fleet:
    """Managers, an optional GUP and the control API of one config, started together.

    ``async with Fleet(config) as fleet:`` starts and stops it. ``trace`` (a path or a
    :class:`~sephb.conformance.traces.trace.TraceWriter`) also writes every record to a file
    (a path gets a header naming the clock's time scale and :data:`TRACE_WRITER`);
    records are always kept in memory (``maxlen`` bounds them) for tests and for
    ``GET /control/trace``.
    """

    def __init__(
        self,
        config: FleetConfig,
        *,
        clock: Clock | None = None,
        trace: TraceWriter | str | os.PathLike[str] | None = None,
        listen: str | None = None,
        maxlen: int | None = None,
        recorder: Recorder | None = None,
    ):
        self.config = apply_listen(config, listen)
        if recorder is not None and (trace is not None or clock is not None):
            raise UsageError("give a Fleet either a recorder or a clock and a trace")
        self.clock = recorder.clock if recorder else (clock or Clock())
        # A shared recorder (e.g. the reference client's) stays open after stop().
        self._own_recorder = recorder is None
        if recorder is None:
            writer = TraceWriter(trace, time_scale=self.clock.time_scale,
                                 writer=TRACE_WRITER) \
                if isinstance(trace, (str, os.PathLike)) else trace
            recorder = Recorder(self.clock, writer=writer, maxlen=maxlen)
        self.recorder = recorder
        self.site = Site(self.config.serial, self.config.content, self.config.files,
                         self.config.content_size)
        self.servers: dict[str, SimServer] = {
            s.name: SimServer(self, s) for s in self.config.servers
        }
        self.control: Any = None  # a control.ControlApi once started
        self._started = False

    # -- access --

    def __getitem__(self, name: str) -> SimServer:
        try:
            return self.servers[name]
        except KeyError:
            raise UsageError(f"no server named {name!r} (have: "
                             f"{', '.join(self.servers)})") from None

    @property
    def managers(self) -> list[SimServer]:
        """Managers in priority order, then config order."""
        ms = [s for s in self.servers.values() if s.role is Role.MANAGER]
        return sorted(ms, key=lambda s: s.spec.priority)

    @property
    def gup(self) -> SimServer | None:
        return next((s for s in self.servers.values() if s.role is Role.GUP), None)

    @property
    def endpoints(self) -> list[Endpoint]:
        return [s.endpoint for s in self.servers.values()]

    @property
    def records(self) -> list[Record]:
        return self.recorder.records

    def logs(self, client: str) -> list[StoredLog]:
        """The logs the site accepted from ``client``, in order of acceptance (their
        ``data`` is read from the site's database when asked for)."""
        return self.site.logs(client)

    def describe(self) -> list[str]:
        """One line per server (and the control API): name, role, address:port."""
        lines = [e.line() for e in self.endpoints]
        if self.control is not None:
            lines.append(self.control.endpoint.line())
        return lines

    # -- lifecycle --

    async def start(self) -> Fleet:
        if self._started:
            return self
        self._started = True
        try:
            for s in self.servers.values():
                await s.start()
            if self.config.control is not None:
                self.control = ControlApi(self, self.config.control)
                await self.control.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
            self.control = None
        for s in self.servers.values():
            await s.stop()
        if self._own_recorder:
            self.recorder.close()
        self._started = False

    async def __aenter__(self) -> Fleet:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- run-time control --

    def publish(self, *, push: bool = True) -> IndexAnswer:
        """Publish new content (new serial, next revision); by default announce it to
        every held push connection, as a real manager does in push mode."""
        answer = self.site.publish()
        if push:
            self.push()
        return answer

    def push(self, server: str | None = None) -> int:
        """Announce the current serial on held push requests (of one server or all);
        return how many were answered."""
        targets = [self[server]] if server else list(self.servers.values())
        return sum(s.push(self.site.serial) for s in targets)

    def state(self) -> dict[str, Any]:
        """Everything a test may want to assert on, as JSON-ready data: what
        ``GET /control/state`` answers."""
        return msgspec.json.decode(b"".join(self.state_json()), type=dict[str, Any])

    def state_json(self) -> Iterator[bytes]:
        """The state as pieces of one JSON document, produced as they are read: the
        site's logs are listed by id, size and SHA-256 (never their data), a page of
        the database at a time, so that the document costs no memory however many
        logs the site holds."""
        enc = msgspec.json.encode
        servers = {n: s.state() for n, s in self.servers.items()}
        yield (b'{"serial":' + enc(self.site.serial) + b',"content":'
               + enc(self.site.content) + b',"servers":' + enc(servers) + b',"clients":{')
        for i, client in enumerate(self.site.clients()):
            yield (b"," if i else b"") + enc(client) + b':{"logs":['
            for j, log in enumerate(self.site.all_logs(client)):
                yield (b"," if j else b"") + enc(log.summary())
            yield b'],"sensors":' + enc(self.site.sensors(client)) + b"}"
        yield b"}}"


# --- the `sephb manager` process -------------------------------------------------------


class RequestLog:
    """What ``sephb manager`` says on ``out`` (stderr), from its servers' records:
    with verbosity 0 a line per request when it ended (``[t=MODEL_MS ms] server
    client: method path status event, bytes in and out``, and the error), with -1
    only the requests that failed, with 1 also a line per request as it arrives and
    per connection opened or closed. It never raises: once the reader is gone (a
    closed pipe), it falls silent and the servers go on."""

    def __init__(self, verbosity: int, out: TextIO) -> None:
        self.verbosity = verbosity
        self._say = LineOut(out).say
        #: Bytes of the request running on (server, connection), from its head.
        self._in: dict[tuple[str | None, int | None], int] = {}

    def __call__(self, rec: Record) -> None:
        key = (rec.server, rec.conn)
        who = f"{rec.server} {rec.client}:"
        if rec.event in _CONNECTION:  # CONNECT, DISCONNECT
            self._in.pop(key, None)
            if self.verbosity > 0:
                self._say(rec.t, f"{who} connection {rec.conn} to {rec.addr}:{rec.port} "
                          + ("opened" if rec.event == "CONNECT" else
                             f"closed, {rec.bytes_in or 0:,} B in, {rec.bytes_out or 0:,} "
                             f"B out" + (f": {rec.error}" if rec.error else "")))
        elif rec.event in _ACTIONS:  # a request's head came
            self._in[key] = rec.bytes_in or 0
            if self.verbosity > 0:
                self._say(rec.t, f"{who} {rec.method} {rec.path} arrived ({rec.event}), "
                                 f"{rec.bytes_in or 0:,} B")
        else:  # answered, or failed
            got = self._in.pop(key, None)
            failed = rec.error is not None or not rec.status or rec.status >= 400
            if self.verbosity >= 0 or failed:
                self._say(rec.t, f"{who} {rec.method or '-'} {rec.path or '-'} "
                                 f"{rec.status or '-'} {rec.event}, "
                                 f"{'-' if got is None else f'{got:,}'} B in, "
                                 f"{rec.bytes_out or 0:,} B out"
                                 + (f": {rec.error}" if rec.error else ""))


_CONNECTION: Final = frozenset({Action.CONNECT.value, Action.DISCONNECT.value})
_ACTIONS: Final = frozenset(a.value for a in Action) - _CONNECTION


def run_manager_process(config_path: str, *, listen: str | None, time_scale: float,
                        trace_path: str | os.PathLike[str] | None,
                        verbosity: int | None = None) -> int:
    """Run the fleet of ``config_path`` until SIGINT or SIGTERM; return 0.

    Prints one line per server on stdout (name, role, address:port, and a note when
    the port was taken); with a ``verbosity`` (:class:`RequestLog`), a line per
    request on stderr. Raises ConfigError / UsageError for a bad config, a bad
    argument or a port that cannot be bound.
    """
    if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale)
            and time_scale > 0):
        raise UsageError(f"--time-scale {time_scale!r}: expected a number > 0")
    config = load_config(config_path)
    apply_listen(config, listen)  # fail before starting anything
    return asyncio.run(_serve(config, listen, time_scale, trace_path, verbosity))


async def _serve(config: FleetConfig, listen: str | None, time_scale: float,
                 trace_path: str | os.PathLike[str] | None, verbosity: int | None
                 ) -> int:
    # Bounded memory: a long-running process keeps the last 100,000 records for
    # GET /control/trace; the trace file has them all.
    fleet = Fleet(config, clock=Clock(time_scale), trace=trace_path, listen=listen,
                  maxlen=100_000)
    if verbosity is not None:
        fleet.recorder.listen(RequestLog(verbosity, sys.stderr))
    await fleet.start()
    try:
        for line in fleet.describe():
            print(line, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    finally:
        await fleet.stop()
    return 0
