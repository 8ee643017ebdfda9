"""Simulated SEP managers and a Group Update Provider, over real HTTP on loopback.

Theory of operation
-------------------
A :class:`Fleet` starts one :class:`SimServer` per manager and one for the GUP of a
:class:`~sephb.conformance.site.config.FleetConfig`, each on its own loopback address
and the seed's port (8014 for managers, 2967 for the GUP; an ephemeral port when that
one is taken). They speak the wire profile of :mod:`sephb.conformance.traces.wire`
and record what they observe through one
:class:`~sephb.conformance.traces.trace.Recorder`, stamped with one
:class:`~sephb.conformance.traces.clock.Clock`.

The HTTP layer is aiohttp's low-level server (``aiohttp.web_server.Server``), not
``web.Application``: the servers must see connections, not only requests. A
``_Conn`` (aiohttp's ``RequestHandler`` with four hooks: connection made and lost,
data received, unparsable request) numbers each connection, counts its bytes in
``data_received`` and through a counting transport, and reports its end. That is
what lets the trace say CONNECT when a connection's first request names the client,
and DISCONNECT with the connection's totals when it closes -- after the record of any
request still running on it.

The managers share a :class:`~._fleet.Site` (a real SEPM site shares one database):
the policy serial, the content revision, and every log accepted from every client, so
that a log uploaded twice -- to one manager or across a failover -- is stored once.

Faults are per server, for all requests or for one path, and change at run time
(:meth:`SimServer.set_fault`, or the JSON control API in
:mod:`sephb.conformance.site._control`). ``refuse`` closes the listening socket, so that
connects are refused by the kernel; the others act on a request once its head is
read: ``stall`` never answers (until the client gives up), ``reset`` aborts with an
RST, ``error`` answers 503, ``garbage`` answers bytes that are not HTTP.

Request bodies above ``max_upload`` are answered 413 without being buffered; aiohttp
then reads and discards the rest ("lingering", for at most ``body_timeout``: 10 s by
default), so a 100 MB upload costs no memory and the client still reads its answer.

Hostile input
-------------
Every request gets one answer below 500 and one record, whatever its bytes: a head
aiohttp cannot parse is 400 (``_Conn.handle_error``); a profile header that is not
UTF-8, an ``X-Sephb-Hold-Ms`` that is not a plain number, a body that is not the
profile's JSON (nested too deeply included) are 400; a body broken off mid-way is
400, one that stops coming is 408, a head that stops coming is 408 (the timeouts of
:mod:`._connections`). Text from the request reaches the trace with its non-UTF-8
bytes escaped (``_connections.text``), so that the trace always writes and reads back.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from aiohttp.web_request import BaseRequest

from sephb.conformance.site._connections import (
    _BodyLost,
    _Conn,
    _head_size,
    _HttpServer,
    bad_headers,
    text,
)
from sephb.conformance.site.config import ServerSpec
from sephb.conformance.traces import wire
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.trace import Record
from sephb.conformance.traces.wire import Role, Route
from sephb.model.errors import ConfigError, UsageError
from sephb.model.protocol import Action, Event, Source, failure_of

if TYPE_CHECKING:
    from sephb.conformance.site._fleet import Fleet

__all__ = [
    "GARBAGE",
    "Endpoint",
    "Fault",
    "SimServer",
    "SiteError",
]


class Fault(enum.Enum):
    """How a server misbehaves: one vocabulary for the real servers, the suite's
    virtual ones (:mod:`sephb.conformance.suite.world`) and the control API."""

    #: Normal service (clears faults; listens again after ``refuse``).
    UP = "up"
    #: Stop listening: connects are refused. Open connections go on.
    REFUSE = "refuse"
    #: Read the request, never answer, until the client gives up.
    STALL = "stall"
    #: Abort the connection with an RST (SO_LINGER 0) mid-request.
    RESET = "reset"
    #: Answer 503 Service Unavailable.
    ERROR = "error"
    #: Answer bytes that are not HTTP, then close.
    GARBAGE = "garbage"
    #: Drop connection attempts: the connect never completes. Virtual servers only:
    #: on loopback a connect always completes or is refused at once, so a real server
    #: refuses this mode (the wire suite serves it as ``stall`` on every path).
    BLACKHOLE = "blackhole"


#: The faults a real server can serve.
SERVED: Final = tuple(f for f in Fault if f is not Fault.BLACKHOLE)
#: What ``garbage`` answers: not a status line, a NUL and invalid UTF-8.
GARBAGE: Final = b"\x00\xffSEPHB-GARBAGE this is not HTTP \x8f\x00\r\n\r\n"
_FAULT_TEXT: Final = {
    Fault.STALL: f"fault stall: request read, never answered; {wire.GAVE_UP}",
    Fault.RESET: "fault reset: connection aborted with RST",
    Fault.ERROR: "fault error: answered 503 Service Unavailable",
    Fault.GARBAGE: "fault garbage: answered bytes that are not HTTP, then closed",
}
#: A stalled request that the server's drop ended (not the client).
_DROPPED_STALL: Final = "fault stall: request read, never answered; dropped by the server"


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens, for printing and for a client's sylink.xml."""

    name: str
    role: str
    address: str
    port: int
    #: The configured port; differs from ``port`` after a fallback.
    requested_port: int
    priority: int = 0

    @property
    def fell_back(self) -> bool:
        return self.requested_port != 0 and self.port != self.requested_port

    def line(self) -> str:
        prio = f"  priority {self.priority}" if self.priority else ""
        note = (f"  (port {self.requested_port} was taken; using an ephemeral port)"
                if self.fell_back else "")
        return f"{self.name:<8} {self.role:<8} {self.address}:{self.port}{prio}{note}"


class SiteError(Exception):
    """The site's database failed (a full disk): the upload is answered 503, and the
    client keeps its data for a later try."""


# --- one server -----------------------------------------------------------------------


class SimServer:
    """One simulated manager or GUP: its listener, faults, policies and connections."""

    def __init__(self, fleet: Fleet, spec: ServerSpec):
        self.fleet, self.spec = fleet, spec
        self.name, self.role = spec.name, spec.role
        self.address = spec.address
        #: The bound port (the configured one until started).
        self.port = spec.port
        #: LiveUpdate policy: the default source and one per location.
        self.source: Source = spec.source
        self.locations: dict[str, Source] = dict(spec.locations)
        #: Fault per path; the key None applies to every request.
        self.faults: dict[str | None, Fault] = {}
        self.conns: set[_Conn] = set()
        self._held: set[asyncio.Future[str]] = set()
        self._listener: asyncio.Server | None = None
        self._http: _HttpServer | None = None
        self._conn_ids = 0

    def __repr__(self) -> str:
        return f"<SimServer {self.name} {self.role.value} {self.address}:{self.port}>"

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.name, self.role.value, self.address, self.port,
                        self.spec.port, self.spec.priority)

    @property
    def listening(self) -> bool:
        return self._listener is not None

    @property
    def held(self) -> int:
        """Push requests being held open."""
        return len(self._held)

    def next_conn_id(self) -> int:
        self._conn_ids += 1
        return self._conn_ids

    # -- lifecycle --

    async def start(self) -> None:
        cfg = self.fleet.config
        # aiohttp's keep-alive timeout is only a backstop: _Conn's own timers come first
        # and say what happened (_connections' docstring).
        # After a 413 aiohttp reads and drops the rest of the body ("lingering") so that
        # the client reads its answer; body_timeout bounds that as it bounds a body.
        self._http = _HttpServer(self, access_log=None, keepalive_timeout=(
            cfg.idle_timeout + cfg.header_timeout + 1), lingering_time=cfg.body_timeout)
        try:
            self._listener = await self._listen(self.spec.port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or self.spec.port == 0:
                raise self._bind_error(self.spec.port, exc) from None
            try:
                # The seed's port is taken (another fleet, a real service): fall back
                # to an ephemeral one on the same address and say so (Endpoint.line).
                self._listener = await self._listen(0)
            except OSError as exc2:
                raise self._bind_error(0, exc2) from None
        self.port = self._listener.sockets[0].getsockname()[1]

    async def _listen(self, port: int) -> asyncio.Server:
        assert self._http is not None
        loop = asyncio.get_running_loop()
        return await loop.create_server(self._http, self.address, port, backlog=1024,
                                        reuse_address=True)

    def _bind_error(self, port: int, exc: OSError) -> ConfigError:
        return self.fleet.config.error(
            self.spec, None, f"cannot listen on {self.address}:{port}: {exc.strerror}")

    async def stop(self) -> None:
        if self._listener is not None:
            # Server.wait_closed() is not awaited: from Python 3.12 on it waits for
            # every connection, and we close those ourselves below.
            self._listener.close()
            self._listener = None
        pending = [c.done for c in self.conns]
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.abort()
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self._http is not None:
            await self._http.shutdown(1.0)

    # -- run-time control --

    async def set_fault(self, mode: Fault | str, path: str | None = None) -> None:
        """Misbehave on every request, or on requests for ``path`` (exact, or every
        path below it: ``/content`` covers ``/content/3/avdefs.zip``). ``up`` clears
        the fault of ``path``, or with no path every fault, listening again after
        ``refuse`` on the same port."""
        fault = next((f for f in SERVED if mode in (f, f.value)), None)
        if fault is None:
            raise UsageError(
                f"fault mode {getattr(mode, 'value', mode)!r}: expected one of "
                f"{', '.join(m.value for m in SERVED)}")
        mode = fault
        if path is not None and not path.startswith("/"):
            raise UsageError(f"fault path {path!r}: expected a path starting with '/'")
        if mode is Fault.REFUSE:
            if path is not None:
                raise UsageError("fault refuse applies to the whole server: give no path")
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self.faults[None] = mode
            return
        if mode is Fault.UP:
            if path is not None:
                self.faults.pop(path, None)
                return
            self.faults.clear()
            if self._listener is None and self._http is not None:
                try:
                    self._listener = await self._listen(self.port)
                except OSError as exc:
                    raise UsageError(
                        f"{self.name}: cannot listen again on {self.address}:{self.port}: "
                        f"{exc.strerror}") from None
            return
        if self.faults.get(None) is Fault.REFUSE and path is None:
            raise UsageError(f"{self.name} refuses connections; set it up first")
        self.faults[path] = mode

    def fault_for(self, path: str) -> Fault | None:
        for key, mode in self.faults.items():
            if key is not None and (path == key or path.startswith(key.rstrip("/") + "/")):
                return mode
        every = self.faults.get(None)
        return None if every is Fault.REFUSE else every

    def set_policy(self, source: Source | str, location: str | None = None) -> None:
        """Set the LiveUpdate source of ``location`` (None: the default policy)."""
        try:
            source = Source(source)
        except ValueError:
            raise UsageError(
                f"source {source!r}: expected one of "
                f"{', '.join(s.value for s in Source)}") from None
        if self.role is not Role.MANAGER:
            raise UsageError(f"{self.name} is a GUP: only managers have policies")
        if source is Source.GUP and self.fleet.gup is None:
            raise UsageError("source 'gup' needs a GUP, and this fleet has none")
        if location is None:
            self.source = source
        else:
            self.locations[location] = source

    def source_for(self, location: str | None) -> Source:
        return self.locations.get(location, self.source) if location else self.source

    def push(self, serial: str) -> int:
        """Answer every held push request with ``serial``; return how many."""
        n = 0
        for fut in list(self._held):
            if not fut.done():
                fut.set_result(serial)
                n += 1
        return n

    def drop(self) -> int:
        """Close every open connection (a held push sees CONNECTION_LOST)."""
        conns = list(self.conns)
        for c in conns:
            c.dropped = True
            if c.transport is not None:
                c.transport.close()
        return len(conns)

    def state(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "address": self.address,
            "port": self.port,
            "requested_port": self.spec.port,
            "priority": self.spec.priority,
            "listening": self.listening,
            "faults": {k or "*": v.value for k, v in self.faults.items()},
            "policy": ({"default": self.source.value,
                        "locations": {k: v.value for k, v in self.locations.items()}}
                       if self.role is Role.MANAGER else None),
            "connections": len(self.conns),
            "held": self.held,
        }

    # -- recording --

    def emit(self, name: Action | Event, conn: _Conn, *, t: int | None = None,
             **fields: Any) -> Record:
        return self.fleet.recorder.emit(
            name, conn.client or conn.peer, t=t, by="server", server=self.name,
            role=self.role, conn=conn.id, addr=conn.local[0], port=conn.local[1], **fields)

    def ensure_connect(self, conn: _Conn, client: str | None) -> None:
        """Record CONNECT, at the accept time, once the client is known."""
        if conn.client is None:
            conn.client = client or conn.peer
            self.emit(Action.CONNECT, conn, t=conn.accepted_t)

    def record_end(self, conn: _Conn) -> None:
        if conn.ended:
            return
        conn.ended = True
        self.ensure_connect(conn, None)
        exc = conn.lost_exc
        self.emit(Action.DISCONNECT, conn, bytes_in=conn.bytes_in,
                  bytes_out=conn.bytes_out,
                  error=text(str(exc)) if exc else conn.close_reason)
        if not conn.done.done():
            conn.done.set_result(None)

    # -- serving --

    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        conn = request.protocol
        assert isinstance(conn, _Conn)
        conn.request_started()
        resp: web.StreamResponse | None = None
        try:
            resp = await self._serve(conn, request)
            return resp
        except Exception as exc:
            # A bug of ours: aiohttp answers 500 and logs the traceback; the trace
            # shows the request failed, so that a test sees it.
            self.emit(wire.failure_event(None, first_request=conn.requests == 1), conn,
                      status=500, error=text(f"server error: {exc!r}"),
                      method=text(request.method), path=text(request.path))
            raise
        finally:
            conn.request_ended(resp is not None and resp.prepared
                               and bool(resp.keep_alive))
            if conn.closed:
                self.record_end(conn)

    async def _serve(self, conn: _Conn, request: BaseRequest) -> web.StreamResponse:
        t0 = self.fleet.recorder.now()
        conn.requests += 1
        first = conn.requests == 1
        client = request.headers.get(wire.HEADER_CLIENT)
        self.ensure_connect(conn, text(client) if client else None)
        route = wire.route_for(self.role, request.method, request.path)
        failed = wire.failure_event(route, first_request=first)
        req: dict[str, Any] = {"method": text(request.method), "path": text(request.path)}
        fault = self.fault_for(request.path)
        head = _head_size(request)

        if fault is Fault.RESET:
            if route:
                self.emit(route.action, conn, t=t0, bytes_in=head, **req,
                          **self._action_fields(route, request, None))
            self._reset(request)
            self.emit(failed, conn, error=_FAULT_TEXT[fault], **req)
            return web.Response()

        try:
            body, too_big = await self._read_body(request)
        except _BodyLost as lost:
            # The client did act (it sent the head): record that, then the failure.
            if route:
                self.emit(route.action, conn, t=t0, bytes_in=head + lost.received, **req,
                          **self._action_fields(route, request, None))
            error = text(f"request body not received: {lost.cause}")
            if conn.closed:
                self.emit(failed, conn, error=error, **req)
                return web.Response()
            # Still open (broken framing, a body that stopped coming): answer, and
            # close at once rather than read what may never end.
            resp = await self._fail(conn, request, failed, req, lost.status, error,
                                    close=True)
            conn.force_close()
            return resp
        parsed: Any = None
        bad = bad_headers(request, route)
        if route and route.body is not None and not too_big and bad is None:
            try:
                parsed = msgspec.json.decode(body, type=route.body)
            except msgspec.DecodeError as exc:
                bad = text(f"bad {route.body.__name__} body: {exc}")
            except RecursionError:
                # msgspec follows nesting with the C stack: deep JSON anywhere, even in
                # a field the profile ignores, is refused like any malformed body.
                bad = f"bad {route.body.__name__} body: JSON nested too deeply"
        if route:
            self.emit(route.action, conn, t=t0, bytes_in=head + len(body), **req,
                      **self._action_fields(route, request, parsed))

        if fault is not None:
            return await self._fault(fault, conn, request, failed, req, route)
        if too_big:
            cap = self.fleet.config.max_upload
            return await self._fail(conn, request, failed, req, 413,
                                    f"request body larger than {cap} bytes", close=True)
        if route is None:
            return await self._fail(conn, request, failed, req, 404,
                                    f"no {request.method} {request.path} on a "
                                    f"{self.role.value}")
        if bad is not None:
            return await self._fail(conn, request, failed, req, 400, bad)
        return await self._answer_route(route, conn, request, parsed, failed, req)

    def _action_fields(self, route: Route, request: BaseRequest, parsed: Any
                       ) -> dict[str, Any]:
        if route.action is Action.GET_INDEX:
            fields = {}
            serial = request.headers.get(wire.HEADER_SERIAL)
            if serial is not None:
                fields["serial"] = text(serial)
            loc = request.headers.get(wire.HEADER_LOCATION)
            if loc is not None:
                fields["location"] = text(loc)
            return fields
        if route.action is Action.GET_URLS:
            loc = request.headers.get(wire.HEADER_LOCATION)
            return {} if loc is None else {"location": text(loc)}
        if route.action is Action.UPLOAD_LOGS and isinstance(parsed, wire.LogsUpload):
            return {"ids": [log.id for log in parsed.logs]}
        return {}

    async def _read_body(self, request: BaseRequest) -> tuple[bytes, bool]:
        """The body, or (b"", True) when it exceeds max_upload (not buffered).
        Raises _BodyLost when it breaks off, or when no byte of it comes for
        ``body_timeout`` seconds (a body trickled slowly enough still arrives)."""
        cap = self.fleet.config.max_upload
        wait = self.fleet.config.body_timeout
        if request.content_length is not None and request.content_length > cap:
            return b"", True
        if not request.body_exists:
            return b"", False
        buf = bytearray()
        try:
            while True:
                async with asyncio.timeout(wait):
                    chunk = await request.content.readany()
                if not chunk:
                    break
                buf += chunk
                if len(buf) > cap:
                    return b"", True
        except (ConnectionError, RequestPayloadError) as exc:
            raise _BodyLost(len(buf), exc) from None
        except TimeoutError:
            raise _BodyLost(len(buf), TimeoutError(f"no byte of it for {wait:g} s"),
                            status=408) from None
        return bytes(buf), False

    async def _send(self, conn: _Conn, request: BaseRequest, resp: web.StreamResponse,
                    chunks: Iterable[bytes] = ()) -> int | None:
        """Write ``resp`` now (so that its size is known); None if the client left."""
        before = conn.bytes_out
        try:
            await resp.prepare(request)
            for chunk in chunks:
                await resp.write(chunk)
            await resp.write_eof()
        except ConnectionError:
            return None
        return conn.bytes_out - before

    async def _fail(self, conn: _Conn, request: BaseRequest, failed: Event,
                    req: dict[str, Any], status: int, error: str, *, close: bool = False
                    ) -> web.StreamResponse:
        resp = web.json_response({"error": error}, status=status)
        if close:
            resp.force_close()
        n = await self._send(conn, request, resp)
        self.emit(failed, conn, status=status, bytes_out=n, error=error, **req)
        return resp

    def _reset(self, request: BaseRequest) -> None:
        tr = request.transport
        if tr is None:
            return
        sock = tr.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER on, 0 s: close() sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tr.abort()

    async def _fault(self, fault: Fault, conn: _Conn, request: BaseRequest,
                     failed: Event, req: dict[str, Any], route: Route | None
                     ) -> web.StreamResponse:
        if fault is Fault.ERROR:
            resp = web.Response(status=503, text="503 Service Unavailable (fault)\n")
            n = await self._send(conn, request, resp)
            self.emit(failed, conn, status=503, bytes_out=n, error=_FAULT_TEXT[fault],
                      **req)
            return resp
        if fault is Fault.GARBAGE:
            tr = request.transport
            if tr is not None:
                tr.write(GARBAGE)
                tr.close()
            self.emit(failed, conn, bytes_out=len(GARBAGE), error=_FAULT_TEXT[fault],
                      **req)
            return web.Response()
        if fault is Fault.STALL:
            await conn.lost
            # Whose close ended it: the server's drop is its failure; the client's,
            # its timer running out -- the table's timeout of the request
            # (SESSION_TIMEOUT for index.dat), as the exchange reading records it.
            event = failed if conn.dropped or route is None \
                else failure_of(route.action, timed_out=True)
            self.emit(event, conn, error=_DROPPED_STALL if conn.dropped
                      else _FAULT_TEXT[fault], **req)
            return web.Response()
        raise AssertionError(f"unhandled fault {fault}")  # RESET is handled earlier

    async def _answer_route(self, route: Route, conn: _Conn, request: BaseRequest,
                            parsed: Any, failed: Event, req: dict[str, Any]
                            ) -> web.StreamResponse:
        site = self.fleet.site
        action = route.action
        fields: dict[str, Any] = {}
        chunks: Iterable[bytes] = ()
        if action is Action.GET_INDEX:
            location = request.headers.get(wire.HEADER_LOCATION)
            current = site.index()
            answer: Any = wire.IndexAnswer(current.serial, current.content,
                                           self.source_for(location))
            client_serial = request.headers.get(wire.HEADER_SERIAL)
            fields = {"serial": answer.serial, "content": answer.content,
                      "changed": client_serial != answer.serial,
                      "source": answer.source}
            if location is not None:
                fields["location"] = location
        elif action is Action.GET_URLS:
            location = request.headers.get(wire.HEADER_LOCATION)
            source = self.source_for(location)
            answer = wire.UrlsAnswer(source, self._urls(conn, source))
            fields = {"source": source, "urls": answer.urls}
            if location is not None:
                fields["location"] = location
        elif action in (Action.DOWNLOAD_MANAGER, Action.DOWNLOAD_GUP):
            rev_file = wire.parse_content_path(request.path)
            if rev_file is None or not site.has_content(*rev_file):
                return await self._fail(
                    conn, request, failed, req, 404,
                    f"no content {request.path} (revisions {site.first_content}.."
                    f"{site.content} of {', '.join(site.files)})")
            answer = None
            chunks = wire.content_chunks(rev_file[0], rev_file[1], site.content_size)
        elif action is Action.UPLOAD_LOGS:
            assert isinstance(parsed, wire.LogsUpload)
            ids = [log.id for log in parsed.logs]
            try:
                dups = site.accept_logs(conn.client or conn.peer, parsed.logs, self.name,
                                        self.fleet.recorder.now())
            except SiteError as exc:
                # Not stored, not acknowledged: the client keeps its logs for later.
                return await self._fail(conn, request, failed, req, 503, str(exc))
            answer = wire.LogsAck(ids)
            fields = {"ids": ids, "duplicates": dups}
        elif action is Action.UPLOAD_SENSORS:
            assert isinstance(parsed, wire.SensorsUpload)
            try:
                site.count_sensors(conn.client or conn.peer, len(parsed.lan_sensor),
                                   len(parsed.learned_apps))
            except SiteError as exc:
                return await self._fail(conn, request, failed, req, 503, str(exc))
            answer = wire.SensorsAck(True)
        elif action is Action.HOLD:
            return await self._hold(conn, request, route, failed, req)
        else:  # pragma: no cover - ROUTES and this dispatch are kept in step by tests
            raise AssertionError(f"no handler for {action}")

        if answer is None:
            resp = web.StreamResponse(status=200)
            resp.content_type = "application/octet-stream"
            resp.content_length = site.content_size
        else:
            resp = web.Response(body=msgspec.json.encode(answer),
                                content_type="application/json")
        n = await self._send(conn, request, resp, chunks)
        if n is None:
            self.emit(failed, conn, error="connection lost while answering", **req)
        else:
            self.emit(route.answer, conn, status=200, bytes_out=n, **req, **fields)
        return resp

    def _urls(self, conn: _Conn, source: Source) -> list[str]:
        site = self.fleet.site
        if source is Source.NONE:
            return []
        if source is Source.MANAGER:
            host, port = conn.local[0], self.port
        else:
            gup = self.fleet.gup
            assert gup is not None  # set_policy and the config check it
            # A GUP bound to every address is reached the way the client reached us.
            host = conn.local[0] if gup.address == "0.0.0.0" else gup.address
            port = gup.port
        return [wire.content_url(host, port, site.content, f) for f in site.files]

    async def _hold(self, conn: _Conn, request: BaseRequest, route: Route, failed: Event,
                    req: dict[str, Any]) -> web.StreamResponse:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._held.add(fut)
        hold = _hold_seconds(request, self.fleet.clock)
        try:
            either: list[asyncio.Future[Any]] = [fut, conn.lost]
            await asyncio.wait(either, timeout=hold, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._held.discard(fut)
        if hold is not None and not fut.done() and not conn.closed:
            # The client's push heartbeat is due: end the hold so that it can check in
            # on this same connection (HTTP/1.1 has one request in flight at a time).
            fut.cancel()
            resp = web.Response(status=204)
            n = await self._send(conn, request, resp)
            if n is None:
                self.emit(failed, conn, error="connection lost while answering", **req)
            else:
                self.emit(Event.HEARTBEAT_DUE, conn, status=204, bytes_out=n, **req)
            return resp
        if conn.closed or not fut.done():
            if conn.dropped:
                self.emit(failed, conn, error="held connection closed by the server",
                          **req)
            # Closed by the client: DISCONNECT tells it.
            return web.Response()
        serial = fut.result()
        resp = web.Response(body=msgspec.json.encode(
            wire.PushAnswer("policy_changed", serial)), content_type="application/json")
        n = await self._send(conn, request, resp)
        if n is None:
            self.emit(failed, conn, error="connection lost while answering", **req)
        else:
            self.emit(route.answer, conn, status=200, bytes_out=n, serial=serial, **req)
        return resp


def _hold_seconds(request: BaseRequest, clock: Clock) -> float | None:
    """Wall seconds a push hold may last (``X-Sephb-Hold-Ms``, checked by
    ``bad_headers``), None for no limit."""
    raw = request.headers.get(wire.HEADER_HOLD_MS)
    return None if raw is None else clock.wall_seconds(int(raw))
