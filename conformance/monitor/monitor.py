"""``sephb monitor``: judge the heartbeats of running clients against running managers.

Theory of operation
-------------------
For every manager and the GUP of the upstream sylink.xml the monitor starts a relay
(:class:`~._relay.Relay`) on its own loopback address -- ``--listen-base``'s network,
one host number each, the upstream's port (8014, 2967) or an ephemeral one when that
is taken -- and writes the sylink.xml the clients should use: the same priorities,
mode and intervals, with each server replaced by its relay. A relay forwards bytes,
unchanged, both ways; the one exception is a ``GET /urls`` answer, whose download URLs
name upstream servers: they are rewritten to the relays' addresses (and the length
with them), or the clients would fetch content past the monitor, unseen.

A relay reads the HTTP exchanges off the bytes it forwards, and the monitor turns
them into the trace records a server writes (``by: "server"``): ``CONNECT`` when a
connection's first request names its client (stamped at the accept), the request's
action, the answer's event (:mod:`sephb.conformance.traces.exchanges`, shared with
the HAR reader), ``DISCONNECT`` when it closes. Each record is written to ``--trace``
and judged at once by :class:`~sephb.conformance.traces.live.LiveValidation`, the
engine of ``sephb validate --data``: a violation is said the moment the record that
proves it arrives, with its requirement id. Deadlines need no record to be broken: a
timer looks every tenth of a second for one past due plus tolerance and says it,
*presumptively* (the client may yet act; offline, a deadline open at the end of a
trace is pending, not broken). At the end (Ctrl-C, SIGTERM) the monitor prints the
same summary ``sephb validate`` prints for the written trace, and exits as it does.

Model time is the clients': wall seconds since the monitor started, divided by
``--time-scale`` (1 for a real client; 0.01 for the reference client at that scale).

What it shows while it runs is :meth:`Monitor.view` (rows made by
:func:`~._view.rows`): on a terminal a table redrawn four times a second, and with
``--web`` a page and ``/state`` served by an aiohttp server in the same event loop.
Findings are also said one line each, on a terminal above the table.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import msgspec
from aiohttp import web

from sephb.conformance.monitor._relay import ConnEvent, Exchange, Relay
from sephb.conformance.monitor._upstream import server_finding
from sephb.conformance.monitor._view import RelayRow, Seen, View, page, rows, table
from sephb.conformance.traces import sylink as sylinks
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.exchanges import answer_of, json_object, log_ids
from sephb.conformance.traces.files import atomic_write
from sephb.conformance.traces.har import trace_to_har
from sephb.conformance.traces.live import LiveValidation
from sephb.conformance.traces.properties import ClientConfig
from sephb.conformance.traces.trace import Record, Recorder, TraceTarget, TraceWriter
from sephb.conformance.traces.wire import (
    GAVE_UP,
    HEADER_CLIENT,
    HEADER_SERIAL,
    URLS_PATH,
    Role,
    Route,
    failure_event,
    route_for,
)
from sephb.model.deadlines import HEARTBEAT_STARTS
from sephb.model.errors import UsageError
from sephb.model.interpretations import get
from sephb.model.protocol import Action, Event

__all__ = ["Monitor", "Upstream", "run_monitor", "upstreams_of"]

#: How a relay says the client ended an exchange (closed or reset its connection).
_CLIENT_ENDED: Final = frozenset({"client closed", "client reset"})
#: How often the monitor looks for deadlines past due (wall seconds).
TICK_S: Final = 0.1
#: How often the terminal table is redrawn (wall seconds).
DRAW_S: Final = 0.25
_WRITER: Final = "sephb monitor"


@dataclass(frozen=True)
class Upstream:
    """One server the clients really talk to, and the relay in front of it."""

    name: str
    role: Role
    address: str
    port: int
    #: The manager's ServerPriorityBlock (0: the GUP).
    priority: int = 0
    index: int = 0


def upstreams_of(s: sylinks.Sylink) -> list[Upstream]:
    """The managers (``m1``, ``m2``, ... in priority order) and the GUP of a sylink."""
    out = [Upstream(f"m{i}", Role.MANAGER, m.address, m.port, m.priority, m.index)
           for i, m in enumerate(s.servers, 1)]
    if s.gup is not None:
        out.append(Upstream("gup", Role.GUP, s.gup.address, s.gup.port))
    return out


def listen_addresses(base: str, n: int) -> list[str]:
    """``n`` loopback addresses from ``base`` (``127.x.y.0``: ``.1``, ``.2``, ...)."""
    try:
        start = ipaddress.IPv4Address(base)
    except ValueError:
        raise UsageError(f"--listen-base {base!r}: expected an IPv4 address like "
                         "127.0.9.0") from None
    last = start + n
    if start not in _LOOPBACK or last not in _LOOPBACK:
        raise UsageError(f"--listen-base {base}: the relays listen on loopback only "
                         f"(127.0.0.0/8), and {n} addresses after it must be too")
    return [str(start + i) for i in range(1, n + 1)]


_LOOPBACK: Final = ipaddress.IPv4Network("127.0.0.0/8")



@dataclass
class _Conn:
    upstream: Upstream
    #: The relay's number for the connection (the records' ``conn``).
    number: int
    accepted: int
    peer: tuple[str, int]
    local: tuple[str, int]
    client: str | None = None
    requests: int = 0
    #: Route of each request not yet answered, by the exchange object's id.
    routes: dict[int, tuple[Route | None, bool]] = field(default_factory=dict)


class Monitor:
    """Relays for the upstream servers, the records they observe, their judgement."""

    def __init__(self, upstream: sylinks.Sylink, *, listen_base: str = "127.0.9.0",
                 interpretation: str = "seed", time_scale: float = 1.0,
                 trace: TraceTarget | None = None, tolerance_ms: int | None = None,
                 har: Path | None = None,
                 say: Callable[[str], None] = print) -> None:
        self.upstream = upstream
        #: Where the exchanges go as an HTTP Archive at the end (the records are kept
        #: for it: a long run with --har holds them all).
        self.har = har
        #: What the upstream servers' answers broke of the wire profile, in order:
        #: (server, message). Not the clients' findings.
        self.server_findings: list[tuple[str, str]] = []
        self.servers = upstreams_of(upstream)
        self.addresses = listen_addresses(listen_base, len(self.servers))
        self.time_scale = time_scale
        self.clock = Clock(time_scale)
        self.say = say
        writer = None if trace is None else TraceWriter(trace, time_scale=time_scale,
                                                        writer=_WRITER)
        self.recorder = Recorder(self.clock, writer=writer, keep=har is not None)
        self._judge_with = (interpretation, tolerance_ms, str(trace or "<live>"))
        self.live = self._validation(None)
        self.recorder.listen(self._judge)
        self.relays: list[Relay] = []
        #: Where each relay listens, by upstream name.
        self.bound: dict[str, tuple[str, int]] = {}
        self._conns: dict[tuple[str, int], _Conn] = {}
        self._said: set[tuple[str, str]] = set()
        self._ticker: asyncio.Task[None] | None = None
        #: Per client id: its last record (for the view).
        self.seen: dict[str, Seen] = {}
        #: Per client id: the presumptive findings said, (requirement, message).
        self.presumed: dict[str, list[tuple[str, str]]] = {}
        self._web: web.AppRunner | None = None

    # -- lifecycle --

    def _validation(self, client_sylink: sylinks.Sylink | None) -> LiveValidation:
        """The live judge: ``sephb validate --data`` with the header the trace file
        starts with and, once the relays are bound, ``--sylink`` the clients' own
        sylink.xml -- what the docs tell a user to validate the trace with offline,
        so that the two give the same verdicts."""
        interpretation, tolerance_ms, name = self._judge_with
        config = None if client_sylink is None else ClientConfig.of(
            get(interpretation), client_sylink)
        live = LiveValidation(interpretation, data=True, tolerance_ms=tolerance_ms,
                              time_scale=self.time_scale, config=config, name=name)
        live.header(self.time_scale, _WRITER)
        return live

    async def start(self) -> sylinks.Sylink:
        """Start every relay; the sylink.xml the clients should use."""
        for up, addr in zip(self.servers, self.addresses, strict=True):
            relay = await self._start_relay(up, addr)
            self.relays.append(relay)
        mine = self.client_sylink()
        # (Before the clients can know where the relays are: no record yet.)
        self.live = self._validation(mine)
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        return mine

    async def _start_relay(self, up: Upstream, addr: str) -> Relay:
        for port in (up.port, 0):  # the upstream's port, else an ephemeral one
            relay = Relay((addr, port), (up.address, up.port),
                          on_request=functools.partial(self._request, up),
                          on_exchange=functools.partial(self._answer, up),
                          on_conn=functools.partial(self._conn, up),
                          rewrite=self._rewrite_urls)
            try:
                self.bound[up.name] = await relay.start()
                return relay
            except OSError as exc:
                if port == 0:
                    raise UsageError(f"cannot listen on {addr} for {up.name} "
                                     f"({up.address}:{up.port}): {exc.strerror}"
                                     ) from None
        raise AssertionError("unreachable")

    def client_sylink(self) -> sylinks.Sylink:
        """The upstream sylink with every server replaced by its relay."""
        by_index = {(u.priority, u.index): self.bound[u.name] for u in self.servers
                    if u.role is Role.MANAGER}
        servers = tuple(replace(s, address=by_index[s.priority, s.index][0],
                                port=by_index[s.priority, s.index][1])
                        for s in self.upstream.servers)
        gup = None if self.upstream.gup is None else sylinks.Gup(*self.bound["gup"])
        return replace(self.upstream, servers=servers, gup=gup)

    async def serve(self, host: str, port: int) -> tuple[str, int]:
        """Serve the view over HTTP: ``/`` a page that reloads itself every second,
        ``/state`` the rows as JSON. Where it listens (port 0: an ephemeral one);
        ``host`` must be a loopback address (UsageError otherwise)."""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise UsageError(f"--web {host}: the page is served on loopback only")

        async def index(_: web.Request) -> web.Response:
            return web.Response(text=page(self.view()), content_type="text/html")

        async def state(_: web.Request) -> web.Response:
            return web.Response(body=msgspec.json.encode(self.view()),
                                content_type="application/json")

        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_get("/state", state)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise UsageError(f"--web: cannot listen on {host}:{port}: "
                             f"{exc.strerror}") from None
        self._web = runner
        bound = runner.addresses[0]
        return str(bound[0]), int(bound[1])

    def view(self) -> View:
        """What the monitor shows now: a row per client, a line per relay."""
        open_ = {u.name: 0 for u in self.servers}
        for name, _ in self._conns:
            open_[name] += 1
        relays = [RelayRow(u.name, u.role.value, f"{u.address}:{u.port}",
                           "{}:{}".format(*self.bound[u.name]), open_[u.name])
                  for u in self.servers if u.name in self.bound]
        return rows(self.live.clients(), self.seen, self.presumed, self.clock.now_ms(),
                    relays)

    async def stop(self) -> None:
        """Stop the web server and the relays (their open connections are closed and
        recorded)."""
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        for relay in self.relays:
            await relay.stop()
        self.recorder.close()
        if self.har is not None:
            doc = trace_to_har((msgspec.to_builtins(r) for r in self.recorder.records),
                               time_scale=self.time_scale)
            atomic_write(self.har, json.dumps(doc, indent=1).encode())

    # -- records --

    def _conn(self, up: Upstream, ev: ConnEvent) -> None:
        key = (up.name, ev.conn)
        if ev.kind == "open":
            self._conns[key] = _Conn(up, ev.conn, self.clock.now_ms(), ev.peer, ev.local)
            return
        conn = self._conns.pop(key, None)
        if conn is None or conn.client is None:  # never a request: nothing to judge
            return
        fields: dict[str, Any] = {"error": ev.error} if ev.error else {}
        self._emit(conn, Action.DISCONNECT, **fields)

    def _request(self, up: Upstream, ex: Exchange) -> None:
        conn = self._conns.get((up.name, ex.conn))
        if conn is None:
            return
        conn.requests += 1
        first = conn.requests == 1
        if conn.client is None:
            conn.client = _header(ex.headers, HEADER_CLIENT) or f"peer:{conn.peer[0]}"
            self._emit(conn, Action.CONNECT, t=conn.accepted)
        path = ex.target.split("?", 1)[0]
        route = route_for(up.role, ex.method, path)
        conn.routes[id(ex)] = (route, first)
        if route is None:  # answered 404 by a simulated server; a failure either way
            return
        fields: dict[str, Any] = {"method": ex.method, "path": path}
        serial = _header(ex.headers, HEADER_SERIAL)
        if route.action is Action.GET_INDEX and serial is not None:
            fields["serial"] = serial
        ids = log_ids(route, ex.body)
        if ids is not None:
            fields["ids"] = ids
        self._emit(conn, route.action, **fields)

    def _answer(self, up: Upstream, ex: Exchange) -> None:
        conn = self._conns.get((up.name, ex.conn))
        if conn is None or conn.client is None:
            return
        route, first = conn.routes.pop(id(ex), (None, conn.requests == 1))
        broken = server_finding(route, ex)
        if broken is not None:
            self.server_findings.append((up.name, broken))
            self.say(f"server {up.name} ({up.address}:{up.port}): SERVER FINDING: "
                     f"{broken} (client {conn.client})")
        fields: dict[str, Any] = {"method": ex.method,
                                  "path": ex.target.split("?", 1)[0]}
        if ex.status is not None:
            fields["status"] = ex.status
        if ex.error:
            fields["error"] = ex.error
        if route is None:
            self._emit(conn, failure_event(None, first_request=first), **fields)
            return
        gave_up = ex.status is None and ex.error in _CLIENT_ENDED
        if gave_up:
            fields["error"] = f"{ex.error}: {GAVE_UP}"
        body = json_object(ex.response_body)
        answer = answer_of(route, ex.status if ex.error is None else None, body,
                           request_serial=_header(ex.headers, HEADER_SERIAL),
                           first_request=first, gave_up=gave_up)
        if answer.changed is not None:
            fields["changed"] = answer.changed
        if answer.source is not None:
            fields["source"] = answer.source
        if answer.ids is not None:
            fields["ids"] = answer.ids
        dup = body.get("duplicates") if answer.event is Event.LOGS_ACKED else None
        if isinstance(dup, list):
            fields["duplicates"] = [str(d) for d in dup]
        self._emit(conn, answer.event, **fields)

    def _emit(self, conn: _Conn, name: Action | Event, *, t: int | None = None,
              **fields: Any) -> None:
        assert conn.client is not None
        self.recorder.emit(name, conn.client, t=t, by="server", server=conn.upstream.name,
                           role=conn.upstream.role, conn=conn.number,
                           addr=conn.local[0], port=conn.local[1], **fields)

    def _rewrite_urls(self, ex: Exchange) -> Callable[[bytes], bytes] | None:
        """For a ``GET /urls``: its answer's download URLs, pointed at the relays."""
        if ex.method != "GET" or ex.target.split("?", 1)[0] != URLS_PATH:
            return None

        def point(body: bytes) -> bytes:
            for up in self.servers:
                host, port = self.bound[up.name]
                body = re.sub(rb"//" + re.escape(f"{up.address}:{up.port}".encode())
                              + rb"(?=/)", f"//{host}:{port}".encode(), body)
            return body

        return point

    # -- judgement --

    def _judge(self, rec: Record) -> None:
        old = self.seen.get(rec.client)
        checkin = rec.t if rec.event in HEARTBEAT_STARTS and rec.role is \
            Role.MANAGER else old.checkin if old else None
        self.seen[rec.client] = Seen(rec.event, rec.t, checkin)
        found = self.live.feed(rec)
        if found is not None and found.requirement is not None:
            self._said.add((found.client, found.requirement))
            self.say(f"{found.client}: NON-CONFORMANT at t={found.t}: "
                     f"{found.requirement}: {found.reason or found.message}")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self.clock.now_ms()
            for client, requirement, message in self.live.overdue(now):
                if (client, requirement) not in self._said:
                    self._said.add((client, requirement))
                    self.presumed.setdefault(client, []).append((requirement, message))
                    self.say(f"{client}: presumptively NON-CONFORMANT at t={now}: "
                             f"{requirement}: {message}")


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers if k == name), None)



def run_monitor(upstream_path: str, client_sylink: Path, *, listen_base: str,
                interpretation: str, time_scale: float, trace: Path | None,
                tolerance_ms: int | None = None, duration_s: float | None = None,
                as_json: bool = False, web_at: tuple[str, int] | None = None,
                har: Path | None = None,
                say: Callable[[str], None] | None = None) -> int:
    """``sephb monitor``: relay and judge until SIGINT or SIGTERM (or ``duration_s``);
    print the summary ``sephb validate`` prints; its exit status. ``web_at``: serve
    the view there too. ``say``: where the lines go (None: standard output; on a
    terminal, above a table of the clients redrawn four times a second)."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from sephb.conformance.traces.validate import exit_code, render, write_json

    upstream = sylinks.load(upstream_path)  # a bad file: one ConfigError
    console = Console() if say is None and sys.stdout.isatty() else None

    def said(line: str) -> None:
        if console is not None:
            console.print(Text(line), soft_wrap=True)
        else:
            (say or print)(line)

    async def draw(monitor: Monitor, live: Live) -> None:
        while True:
            live.update(table(monitor.view()), refresh=True)
            await asyncio.sleep(DRAW_S)

    async def main() -> int:
        monitor = Monitor(upstream, listen_base=listen_base,
                          interpretation=interpretation, time_scale=time_scale,
                          trace=trace, tolerance_ms=tolerance_ms, har=har, say=said)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        live = None if console is None else Live(console=console, auto_refresh=False)
        drawing: asyncio.Task[None] | None = None
        try:
            sylinks.save(await monitor.start(), client_sylink)
            for up in monitor.servers:
                host, port = monitor.bound[up.name]
                said(f"{up.name} ({up.role.value}) {up.address}:{up.port} <- relay "
                     f"{host}:{port}")
            if web_at is not None:
                host, port = await monitor.serve(*web_at)
                said(f"web: http://{f'[{host}]' if ':' in host else host}:{port}/")
            said(f"clients: use {client_sylink}; Ctrl-C prints the summary")
            if live is not None:
                live.start()
                drawing = loop.create_task(draw(monitor, live))
            try:
                async with asyncio.timeout(duration_s):
                    await stop.wait()
            except TimeoutError:
                pass
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if drawing is not None:
                drawing.cancel()
                await asyncio.gather(drawing, return_exceptions=True)
            if live is not None and live.is_started:
                live.update(table(monitor.view()), refresh=True)
                live.stop()
            await monitor.stop()
        result = monitor.live.result()
        for server, message in monitor.server_findings:
            # Said apart: the servers are not under test, but a client that failed
            # on such an answer is not to blame (nor in the exit status).
            result.warnings.append(f"server finding ({server}): {message}")
        if as_json:
            write_json([result], sys.stdout)
        else:
            render([result], sys.stdout, timing=True, title="sephb monitor")
        return exit_code([result])

    return asyncio.run(main())
