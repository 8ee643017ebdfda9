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
GET     /control/trace              the kept records as NDJSON (``?client=ID``)
======  ==========================  =================================================

Errors answer ``{"error": "..."}`` with 400 (bad body or value) or 404 (no such
server).
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, TypeVar

import msgspec
from aiohttp import web

from sephb.conformance.site._server import Endpoint, SimServer
from sephb.conformance.site.config import ControlSpec
from sephb.conformance.traces.trace import dumps
from sephb.model.errors import ConfigError, UsageError
from sephb.model.protocol import Source

if TYPE_CHECKING:
    from sephb.conformance.site._fleet import Fleet

__all__ = ["ControlApi"]

_T = TypeVar("_T")


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


async def _body(request: web.Request, kind: type[_T]) -> _T:
    raw = await request.read()
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.DecodeError as exc:
        raise web.HTTPBadRequest(
            text=msgspec.json.encode({"error": f"bad body: {exc}"}).decode(),
            content_type="application/json") from None


class ControlApi:
    """The control API of one fleet (started by ``Fleet.start``)."""

    def __init__(self, fleet: Fleet, spec: ControlSpec):
        self.fleet, self.spec = fleet, spec
        self.address, self.port = spec.address, spec.port
        self._runner: web.AppRunner | None = None
        app = web.Application()
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
    def endpoint(self) -> Endpoint:
        return Endpoint("control", "control", self.address, self.port, self.spec.port)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/control"

    async def start(self) -> None:
        sock = self._bind()
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

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
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers --

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
        body = await _body(request, _Fault)
        try:
            await server.set_fault(body.mode, body.path)
        except UsageError as exc:
            return _error(400, str(exc))
        return web.json_response({"server": server.name, **server.state()})

    async def _policy(self, request: web.Request) -> web.Response:
        server = self._server(request)
        body = await _body(request, _Policy)
        try:
            server.set_policy(body.source, body.location)
        except UsageError as exc:
            return _error(400, str(exc))
        return web.json_response({"server": server.name, **server.state()})

    async def _drop(self, request: web.Request) -> web.Response:
        server = self._server(request)
        return web.json_response({"server": server.name, "dropped": server.drop()})

    async def _publish(self, request: web.Request) -> web.Response:
        body = await _body(request, _Publish)
        answer = self.fleet.publish(push=False)
        notified = self.fleet.push() if body.push else 0
        return web.json_response({"serial": answer.serial, "content": answer.content,
                                  "notified": notified})

    async def _push(self, request: web.Request) -> web.Response:
        body = await _body(request, _Push)
        try:
            n = self.fleet.push(body.server)
        except UsageError as exc:
            return _error(404, str(exc))
        return web.json_response({"serial": self.fleet.site.serial, "notified": n})

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.fleet.state())

    async def _trace(self, request: web.Request) -> web.Response:
        client = request.query.get("client")
        records = self.fleet.records
        if client is not None:
            records = [r for r in records if r.client == client]
        return web.Response(body=dumps(records), content_type="application/x-ndjson")
