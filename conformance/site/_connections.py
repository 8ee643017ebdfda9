"""The servers' connections: aiohttp's low-level protocol with four hooks.

A ``_Conn`` (aiohttp's ``RequestHandler``) numbers each connection, counts its bytes
in ``data_received`` and through a counting transport, and reports its start, its
unparsable requests and its end to its :class:`~._server.SimServer` -- what lets the
trace say CONNECT and DISCONNECT with the connection's totals.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server as _AioServer

from sephb.conformance.traces import wire

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


class _Conn(RequestHandler):
    """aiohttp's per-connection protocol, plus what the trace needs to know."""

    def __init__(self, manager: _HttpServer, *, sim: SimServer, **kwargs: Any):
        super().__init__(manager, **kwargs)
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
        #: A request handler is running; the DISCONNECT record waits for it.
        self.busy = False
        self.closed = False
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
        self.closed, self.lost_exc = True, exc
        self.sim.conns.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)
        super().connection_lost(exc)
        if not self.busy:
            self.sim.record_end(self)

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None
                     ) -> web.StreamResponse:
        # aiohttp calls this for requests it could not parse (400) and for handler
        # crashes (500). A client sending garbage is an observation, not a server bug:
        # record it and answer quietly. Real crashes keep aiohttp's logging.
        if status >= 500 or self.closed:
            return super().handle_error(request, status, exc, message)
        self.requests += 1
        self.sim.ensure_connect(self, None)
        self.sim.emit(wire.failure_event(None, first_request=self.requests == 1), self,
                      status=status, error=f"bad request: {message or exc}")
        resp = web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}\n")
        resp.force_close()
        return resp


class _HttpServer(_AioServer):
    """aiohttp's low-level server, making :class:`_Conn` protocols."""

    def __init__(self, sim: SimServer, **kwargs: Any):
        super().__init__(sim.handle, **kwargs)
        self.sim = sim

    def __call__(self) -> RequestHandler:
        return _Conn(self, sim=self.sim, loop=self._loop, **self._kwargs)


class _BodyLost(Exception):
    """The client went away (or broke the framing) in the middle of a request body."""

    def __init__(self, received: int, cause: BaseException):
        super().__init__(received, cause)
        self.received, self.cause = received, cause


def _head_size(request: BaseRequest) -> int:
    """Bytes of the request line and headers as parsed (exact for the usual
    ``Name: value\\r\\n`` spelling)."""
    v = request.version
    line = len(request.method) + len(request.raw_path) + len(f"HTTP/{v.major}.{v.minor}")
    return line + 4 + sum(len(k) + len(val) + 4 for k, val in request.raw_headers) + 2


