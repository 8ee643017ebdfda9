"""The servers' connections: aiohttp's low-level protocol with a few hooks.

A ``_Conn`` (aiohttp's ``RequestHandler``, by way of ``_TimedConn``) numbers each
connection, counts its bytes in ``data_received`` and through a counting transport,
and reports its start, its unparsable requests and its end to its
:class:`~._server.SimServer` -- what lets the trace say CONNECT and DISCONNECT with
the connection's totals. The control API's connections are plain ``_TimedConn``.

Timeouts
--------
aiohttp's own ``keepalive_timeout`` closes a connection that has not delivered a
whole request some time after its last answer; it cannot tell a silent connection
from one trickling a request head a byte at a time, and records nothing. A
``_TimedConn`` therefore keeps one timer of its own while no request is in progress:

* ``idle_timeout`` from the connect or the end of the last answer, until a byte comes:
  then the server closes it (a server's DISCONNECT says why);
* ``header_timeout`` from that first byte until the head is whole (later bytes do not
  restart it): then the server answers ``408`` and closes, and a server records the
  failure like an unparsable request.

While a request is in progress the timer is off: a request the server holds on
purpose (a push hold, the ``stall`` fault) is the server's doing, never the
client's idleness. A request body has its own limit, ``body_timeout`` between two
reads (:meth:`~._server.SimServer._read_body`). aiohttp's ``keepalive_timeout`` stays
as a backstop, longer than both.

Request text
------------
aiohttp decodes header bytes that are not UTF-8 as lone surrogates, which no JSON
encoder writes. :func:`text` escapes them for the trace; :func:`bad_headers` refuses
them in the profile's headers, with an ``X-Sephb-Hold-Ms`` that is not a number.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server as _AioServer

from sephb.conformance.traces import wire
from sephb.model.protocol import Action

if TYPE_CHECKING:
    from sephb.conformance.site._server import SimServer


# --- connections ----------------------------------------------------------------------


class _CountingTransport(asyncio.Transport):
    """Delegates to the socket transport and counts the bytes written to it."""

    def __init__(self, inner: asyncio.Transport, conn: _Conn):
        super().__init__()
        self._inner, self._conn = inner, conn

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._conn.bytes_out += len(data)
        self._inner.write(data)

    def writelines(self, list_of_data: Any) -> None:
        chunks = list(list_of_data)
        self._conn.bytes_out += sum(len(c) for c in chunks)
        self._inner.writelines(chunks)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def close(self) -> None:
        self._inner.close()

    def abort(self) -> None:
        self._inner.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._inner.get_protocol()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None
                                ) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def write_eof(self) -> None:
        self._inner.write_eof()

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()


class _TimedConn(RequestHandler):
    """aiohttp's per-connection protocol with the header and idle timeouts (see the
    module's docstring) and quiet answers to requests it cannot parse. The control
    API's connections are these; a server's are :class:`_Conn`.

    Whoever handles a request calls :meth:`request_started` and :meth:`request_ended`
    around it: the timers run only between requests."""

    def __init__(self, manager: _AioServer, *, header_timeout: float,
                 idle_timeout: float, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self.header_timeout, self.idle_timeout = header_timeout, idle_timeout
        #: A request handler is running (a server's DISCONNECT record waits for it).
        self.busy = False
        self.closed = False
        #: Why the server closed it, for its DISCONNECT record (idle timeout).
        self.close_reason: str | None = None
        #: The last answer closes the connection: aiohttp ends it, no timer runs.
        self.closing = False
        #: A byte of the next request's head came: the header timer runs.
        self._head_started = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm(self.idle_timeout, self._idle)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.busy:
            self._body_broken()
        if self.busy or self.closing or self.closed or not data:
            return  # body bytes, or bytes aiohttp reads and drops before it closes
        if self._messages:
            # A whole head came (or one aiohttp could not parse, answered 400 next).
            self._disarm()
            self._head_started = False
        elif not self._head_started:
            self._head_started = True
            self._arm(self.header_timeout, self._head_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._disarm()
        super().connection_lost(exc)

    def _body_broken(self) -> None:
        # aiohttp's parser, fed a broken chunked body while a handler reads it, queues
        # a 400 for after that handler and leaves the handler's body waiting for ever.
        # Tell the body instead: the handler answers 400 at once.
        req = self._current_request
        if (req is None or not self._messages or req.content.is_eof()
                or not isinstance(self._messages[-1][0], _ErrInfo)):
            return
        err = self._messages[-1][0]
        req.content.set_exception(RequestPayloadError(text(err.message)))

    # -- requests and timers --

    def request_started(self) -> None:
        self.busy = True
        self._head_started = False
        self._disarm()

    def request_ended(self, keep_alive: bool) -> None:
        self.busy = False
        if self.closed:
            return
        if not keep_alive:
            self.closing = True
        elif not self._messages:  # else a pipelined request's handler starts next
            self._arm(self.idle_timeout, self._idle)

    def _arm(self, seconds: float, fire: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self._loop.call_later(seconds, fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle(self) -> None:
        self._timer = None
        if self.busy or self.closed or self.closing:
            return
        self.close_reason = f"idle for {self.idle_timeout:g} s: closed by the server"
        self.force_close()

    def _head_timeout(self) -> None:
        self._timer = None
        if self.busy or self.closed or self.closing or self._messages:
            return
        error = f"request head not received within {self.header_timeout:g} s"
        body = msgspec.json.encode({"error": error})
        n = 0
        if self.transport is not None:
            answer = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json"
                      b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                      % (len(body), body))
            self.transport.write(answer)
            n = len(answer)
        self.bad_request(408, error, n)
        self.force_close()

    def bad_request(self, status: int, error: str, bytes_out: int | None) -> None:
        """A request that never reached a handler: unparsable, or its head timed out
        (a server records it)."""

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None
                     ) -> web.StreamResponse:
        # aiohttp calls this for requests it could not parse (400) and for handler
        # crashes (5xx). A client sending garbage is an observation, not a server bug:
        # answer it quietly (aiohttp would log a traceback). A crash is a bug of ours:
        # it keeps aiohttp's logging, with the traceback.
        if status >= 500 or self.closed:
            return super().handle_error(request, status, exc, message)
        self.closing = True
        self._disarm()
        error = text(f"bad request: {message or exc}")
        self.bad_request(status, error, None)
        resp = web.json_response({"error": error}, status=status)
        resp.force_close()
        return resp


class _Conn(_TimedConn):
    """A server's connection: a :class:`_TimedConn`, plus what the trace needs."""

    def __init__(self, manager: _HttpServer, *, sim: SimServer, **kwargs: Any):
        cfg = sim.fleet.config
        super().__init__(manager, header_timeout=cfg.header_timeout,
                         idle_timeout=cfg.idle_timeout, **kwargs)
        self.sim = sim
        self.id = 0
        self.peer = "?"
        self.local: tuple[str, int] = (sim.address, sim.port)
        self.accepted_t = 0
        #: The client id, known from the first request (peer "ip:port" if none).
        self.client: str | None = None
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        #: The server closed it on purpose (drop); held pushes record CONNECTION_LOST.
        self.dropped = False
        self.lost_exc: BaseException | None = None
        self.ended = False
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.done: asyncio.Future[None] = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.id = self.sim.next_conn_id()
        self.accepted_t = self.sim.fleet.recorder.now()
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        local = transport.get_extra_info("sockname")
        if local:
            self.local = (str(local[0]), int(local[1]))
        self.sim.conns.add(self)
        super().connection_made(_CountingTransport(transport, self))

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost_exc = exc
        self.sim.conns.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)
        super().connection_lost(exc)
        if not self.busy:
            self.sim.record_end(self)

    def bad_request(self, status: int, error: str, bytes_out: int | None) -> None:
        self.requests += 1
        self.sim.ensure_connect(self, None)
        self.sim.emit(wire.failure_event(None, first_request=self.requests == 1), self,
                      status=status, error=error, bytes_out=bytes_out)


def text(raw: str) -> str:
    """Request text (a header, a path) fit for the trace. aiohttp decodes bytes that
    are not UTF-8 as lone surrogates, which no JSON encoder writes: they become
    ``\\xff`` escapes, so the trace still says what came."""
    try:
        raw.encode()
        return raw
    except UnicodeEncodeError:
        try:
            raw_bytes = raw.encode("utf-8", "surrogateescape")
            return raw_bytes.decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return raw.encode("utf-8", "backslashreplace").decode()


def is_text(raw: str) -> bool:
    """The value was UTF-8 on the wire (see :func:`text`)."""
    try:
        raw.encode()
    except UnicodeEncodeError:
        return False
    return True


#: The profile's headers: their values must be UTF-8 text (they reach the trace).
_PROFILE_HEADERS: Final = (wire.HEADER_CLIENT, wire.HEADER_SERIAL, wire.HEADER_LOCATION,
                           wire.HEADER_HOLD_MS)
#: ``X-Sephb-Hold-Ms``: model milliseconds, at most 15 digits (31,000 years at time
#: scale 1; a longer one is no number a client means, and would overflow a float).
_HOLD_MS_RE: Final = re.compile(r"[0-9]{1,15}")


def bad_headers(request: BaseRequest, route: wire.Route | None) -> str | None:
    """What is wrong with the profile's headers of ``request``, or None."""
    for name in _PROFILE_HEADERS:
        value = request.headers.get(name)
        if value is not None and not is_text(value):
            return f"header {name}: not UTF-8 text ({text(value)[:60]!r})"
    hold = request.headers.get(wire.HEADER_HOLD_MS)
    if (route is not None and route.action is Action.HOLD and hold is not None
            and not _HOLD_MS_RE.fullmatch(hold)):
        shown = repr(hold[:40]) + (f" ({len(hold)} characters)" if len(hold) > 40
                                   else "")
        return (f"header {wire.HEADER_HOLD_MS}: expected model milliseconds, an "
                f"integer of at most 15 digits, got {text(shown)}")
    return None


class _HttpServer(_AioServer):
    """aiohttp's low-level server, making :class:`_Conn` protocols."""

    def __init__(self, sim: SimServer, **kwargs: Any):
        super().__init__(sim.handle, **kwargs)
        self.sim = sim

    def __call__(self) -> RequestHandler:
        return _Conn(self, sim=self.sim, loop=self._loop, **self._kwargs)


class _BodyLost(Exception):
    """The client went away, broke the framing or went silent in the middle of a
    request body; ``status`` is what to answer if the connection is still open."""

    def __init__(self, received: int, cause: BaseException, status: int = 400):
        super().__init__(received, cause, status)
        self.received, self.cause, self.status = received, cause, status


def _head_size(request: BaseRequest) -> int:
    """Bytes of the request line and headers as parsed (exact for the usual
    ``Name: value\\r\\n`` spelling)."""
    v = request.version
    line = len(request.method) + len(request.raw_path) + len(f"HTTP/{v.major}.{v.minor}")
    return line + 4 + sum(len(k) + len(val) + 4 for k, val in request.raw_headers) + 2


