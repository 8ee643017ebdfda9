"""The JSON control API of a running fleet: faults, policies, publish, push, state.

Theory of operation
-------------------
Everything a test does to a :class:`~sephb.conformance.site._server.Fleet` from Python it
can also do over HTTP, so that a client under test in another process (or a shell
script with curl) can be driven the same way. The API is a small aiohttp
``web.Application`` on its own loopback port; it never binds outside 127.0.0.0/8.

======  ==========================  =================================================
POST    /control/<server>/fault     ``{"mode": "up|refuse|stall|reset|error|garbage",
                                    "path": "/urls"}`` (path optional)
POST    /control/<server>/policy    ``{"source": "manager|gup|none", "location": "X"}``
                                    (no location: the default policy)
POST    /control/<server>/drop      close every connection of that server
POST    /control/publish            ``{"push": true}``: new serial and content revision
POST    /control/push               ``{"server": "m1"}`` (optional): announce the
                                    current serial on held push requests
GET     /control/state              serial, content, servers, accepted logs per client
                                    (id, size, SHA-256: never their data), streamed
GET     /control/trace              the kept records as NDJSON (``?client=ID``), streamed
======  ==========================  =================================================

Errors answer ``{"error": "..."}`` with 400 (bad body or value), 403 (not addressed to
the control API: see below) or 404 (no such server).

Who may call it
---------------
Anything that can reach the loopback port can. What must not is a web page in a
browser on the same machine: it can make the browser send a POST to 127.0.0.1 (a
form, ``fetch`` in ``no-cors`` mode), or rebind a DNS name of its own to 127.0.0.1.
Such requests carry the page's name in ``Host`` or its origin in ``Origin`` /
``Sec-Fetch-Site``, so the API answers 403 to any request whose ``Host`` is not its
own ``address:port``, whose ``Origin`` (when sent) is not ``http://address:port``, or
whose ``Sec-Fetch-Site`` (when sent) is not ``same-origin`` or ``none``. curl, urllib
and aiohttp send the right ``Host`` by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Final, TypeVar

import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from sephb.conformance.site._connections import _TimedConn
from sephb.conformance.site._server import Endpoint, SimServer
from sephb.conformance.site.config import ControlSpec
from sephb.conformance.traces.trace import dumps
from sephb.model.errors import ConfigError, UsageError
from sephb.model.protocol import Source

if TYPE_CHECKING:
    from sephb.conformance.site._fleet import Fleet

__all__ = ["ControlApi"]

_T = TypeVar("_T")
#: Bytes a streamed answer gathers before it writes them and lets others run.
_CHUNK: Final = 64 * 1024
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Fault(msgspec.Struct, forbid_unknown_fields=True):
    mode: str
    path: str | None = None


class _Policy(msgspec.Struct, forbid_unknown_fields=True):
    source: Source
    location: str | None = None


class _Publish(msgspec.Struct, forbid_unknown_fields=True):
    push: bool = True


class _Push(msgspec.Struct, forbid_unknown_fields=True):
    server: str | None = None


def _error(status: int, what: str) -> web.Response:
    return web.json_response({"error": what}, status=status)


async def _body(request: web.Request, kind: type[_T], wait: float) -> _T:
    """The JSON body of a control request, read within ``wait`` seconds."""
    try:
        async with asyncio.timeout(wait):
            raw = await request.read()
    except TimeoutError:
        raise _BodyFailed(408, f"request body not received within {wait:g} s") from None
    except RequestPayloadError as exc:
        raise _BodyFailed(400, f"request body not received: {exc}") from None
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.DecodeError as exc:
        what = f"bad body: {exc}"
    except RecursionError:
        what = "bad body: JSON nested too deeply"
    raise web.HTTPBadRequest(text=msgspec.json.encode({"error": what}).decode(),
                             content_type="application/json")


class _BodyFailed(Exception):
    """A control request's body broke off or stopped coming: answered, then closed."""

    def __init__(self, status: int, what: str):
        super().__init__(status, what)
        self.status, self.what = status, what


async def _stream(request: web.Request, content_type: str, pieces: Iterable[bytes]
                  ) -> web.StreamResponse:
    """Answer ``pieces`` as they are produced, a chunk at a time, letting the other
    connections run between chunks: a big site is never built in memory, and never
    stalls the servers while it is written."""
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    await resp.prepare(request)
    buf = bytearray()
    try:
        for piece in pieces:
            buf += piece
            if len(buf) >= _CHUNK:
                await resp.write(bytes(buf))
                buf.clear()
                await asyncio.sleep(0)
        await resp.write(bytes(buf))
        await resp.write_eof()
    except ConnectionError:
        pass  # the caller went away: nothing to answer
    return resp


class ControlApi:
    """The control API of one fleet (started by ``Fleet.start``)."""

    def __init__(self, fleet: Fleet, spec: ControlSpec):
        self.fleet, self.spec = fleet, spec
        self.address, self.port = spec.address, spec.port
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        app = web.Application(middlewares=[self._in_progress, self._addressed_to_us])
        app.add_routes([
            web.get("/control/state", self._state),
            web.get("/control/trace", self._trace),
            web.post("/control/publish", self._publish),
            web.post("/control/push", self._push),
            web.post("/control/{server}/fault", self._fault),
            web.post("/control/{server}/policy", self._policy),
            web.post("/control/{server}/drop", self._drop),
        ])
        self.app = app

    @property
    def _wait(self) -> float:
        return self.fleet.config.body_timeout

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint("control", "control", self.address, self.port, self.spec.port)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/control"

    async def start(self) -> None:
        sock = self._bind()
        self.port = sock.getsockname()[1]
        cfg = self.fleet.config
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        # The servers' timeouts and quiet 400s, on aiohttp's app server: the listener is
        # ours (not a SockSite) so that its connections are _TimedConn. aiohttp's
        # keep-alive timeout is the backstop, as on the servers.
        self._listener = await loop.create_server(
            lambda: _TimedConn(server, loop=loop, access_log=None,
                               keepalive_timeout=cfg.idle_timeout + cfg.header_timeout + 1,
                               lingering_time=cfg.body_timeout,
                               header_timeout=cfg.header_timeout,
                               idle_timeout=cfg.idle_timeout),
            sock=sock)

    def _bind(self) -> socket.socket:
        for port in (self.spec.port, 0) if self.spec.port else (0,):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.address, port))
                return sock
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or port == 0:
                    raise ConfigError(self.fleet.config.path, None, "control",
                                      f"cannot listen on {self.address}:{port}: "
                                      f"{exc.strerror}") from None
        raise AssertionError("unreachable: port 0 always binds or raises")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()  # (its connections: the runner's cleanup ends them)
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers --

    @web.middleware
    async def _in_progress(self, request: web.Request, handler: _Handler
                           ) -> web.StreamResponse:
        conn = request.protocol
        assert isinstance(conn, _TimedConn)
        conn.request_started()
        resp: web.StreamResponse | None = None
        try:
            resp = await handler(request)
            return resp
        except web.HTTPException as exc:  # an answer too (400, 404)
            resp = exc
            raise
        except _BodyFailed as exc:
            # Answer now and close at once: aiohttp would otherwise wait for (or trip
            # over) the rest of a body that is broken or may never come.
            resp = _error(exc.status, exc.what)
            resp.force_close()
            with contextlib.suppress(ConnectionError):
                await resp.prepare(request)
                await resp.write_eof()
            conn.force_close()
            return resp
        finally:
            conn.request_ended(resp is not None and request.keep_alive
                               and resp.keep_alive is not False)

    @web.middleware
    async def _addressed_to_us(self, request: web.Request, handler: _Handler
                               ) -> web.StreamResponse:
        own = f"{self.address}:{self.port}"
        hosts = {own, self.address} if self.port == 80 else {own}
        host = request.headers.get("Host")
        origin = request.headers.get("Origin")
        site = request.headers.get("Sec-Fetch-Site")
        if host is None or host.lower() not in hosts:
            why = f"Host {host!r}" if host is not None else "no Host header"
        elif origin is not None and origin.lower() != f"http://{own}":
            why = f"Origin {origin!r}"
        elif site is not None and site.lower() not in ("same-origin", "none"):
            why = f"Sec-Fetch-Site {site!r}"
        else:
            return await handler(request)
        return _error(403, f"{why}: the control API answers only requests addressed "
                           f"to it, with Host {own} (and no other origin); a web page "
                           f"cannot drive it")

    def _server(self, request: web.Request) -> SimServer:
        name = request.match_info["server"]
        if name not in self.fleet.servers:
            raise web.HTTPNotFound(
                text=msgspec.json.encode({"error": f"no server named {name!r} (have: "
                                          f"{', '.join(self.fleet.servers)})"}).decode(),
                content_type="application/json")
        return self.fleet.servers[name]

    async def _fault(self, request: web.Request) -> web.Response:
        server = self._server(request)
        body = await _body(request, _Fault, self._wait)
        try:
            await server.set_fault(body.mode, body.path)
        except UsageError as exc:
            return _error(400, str(exc))
        return web.json_response({"server": server.name, **server.state()})

    async def _policy(self, request: web.Request) -> web.Response:
        server = self._server(request)
        body = await _body(request, _Policy, self._wait)
        try:
            server.set_policy(body.source, body.location)
        except UsageError as exc:
            return _error(400, str(exc))
        return web.json_response({"server": server.name, **server.state()})

    async def _drop(self, request: web.Request) -> web.Response:
        server = self._server(request)
        return web.json_response({"server": server.name, "dropped": server.drop()})

    async def _publish(self, request: web.Request) -> web.Response:
        body = await _body(request, _Publish, self._wait)
        answer = self.fleet.publish(push=False)
        notified = self.fleet.push() if body.push else 0
        return web.json_response({"serial": answer.serial, "content": answer.content,
                                  "notified": notified})

    async def _push(self, request: web.Request) -> web.Response:
        body = await _body(request, _Push, self._wait)
        try:
            n = self.fleet.push(body.server)
        except UsageError as exc:
            return _error(404, str(exc))
        return web.json_response({"serial": self.fleet.site.serial, "notified": n})

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return await _stream(request, "application/json", self.fleet.state_json())

    async def _trace(self, request: web.Request) -> web.StreamResponse:
        client = request.query.get("client")
        records = list(self.fleet.records)  # a snapshot: records go on arriving
        pieces = (dumps([r]) for r in records if client is None or r.client == client)
        return await _stream(request, "application/x-ndjson", pieces)
