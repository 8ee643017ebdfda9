"""Server findings: what an upstream answer breaks of the wire profile."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from netutil import run

from sephb.conformance.monitor._relay import BODY_CAP, Exchange
from sephb.conformance.monitor._upstream import server_finding
from sephb.conformance.traces.wire import Role, route_for

#: The relays' addresses: a /24 no other test uses.
BASE = f"127.{20 + os.getpid() % 200}.252.0"


def exchange(method: str, path: str, status: int | None, body: bytes,
             error: str | None = None) -> Exchange:
    return Exchange(1, ("127.0.0.1", 5), ("127.0.9.1", 8014), method, path, [], b"",
                    0.0, 0.0, status=status, response_body=body, error=error)


@pytest.mark.parametrize(("method", "path", "status", "body", "finding"), [
    # the profile's own answers: nothing to say
    ("GET", "/index.dat", 200, b'{"serial": "A3AF-11/26/2026 23:50:54 284", '
                                b'"content": 1}', None),
    ("GET", "/urls", 200, b'{"source": "none", "urls": []}', None),
    ("GET", "/push", 204, b"", None),
    ("GET", "/content/1/avdefs.zip", 200, b"\x00\x01", None),
    # failures are the client's to take, not findings
    ("GET", "/urls", 503, b"busy", None),
    ("GET", "/urls", None, b"", None),
    # broken answers
    ("GET", "/index.dat", 200, b'{"serial": "x"}',
     "GET /index.dat answered 200 with a body that is not a IndexAnswer: Object "
     "missing required field `content`"),
    ("GET", "/urls", 200, b"not json",
     "GET /urls answered 200 with a body that is not a UrlsAnswer: JSON is malformed"),
    ("POST", "/logs", 200, b'{"acked": "one"}',
     "POST /logs answered 200 with a body that is not a LogsAck: Expected `array`, "
     "got `str` - at `$.acked`"),
    ("GET", "/urls", 204, b"",
     "GET /urls answered 204: 204 (no body) answers only a held GET /push"),
    ("GET", "/index.dat", 201, b"{}", "GET /index.dat answered 201: the wire profile "
                                      "answers 200"),
])
def test_an_answer_is_judged_against_the_wire_profile(
        method: str, path: str, status: int | None, body: bytes,
        finding: str | None) -> None:
    route = route_for(Role.MANAGER, method, path)
    got = server_finding(route, exchange(method, path, status, body,
                                         None if status else "upstream reset"))
    if finding is None:
        assert got is None
    else:
        assert got is not None and got.startswith(finding), got


def test_a_request_not_in_the_profile_that_succeeds_is_a_finding() -> None:
    got = server_finding(None, exchange("GET", "/admin", 200, b"ok"))
    assert got == "GET /admin answered 200: the wire profile has no such request"


def test_a_body_the_relay_did_not_keep_whole_is_not_judged() -> None:
    route = route_for(Role.MANAGER, "GET", "/urls")
    assert server_finding(route, exchange("GET", "/urls", 200, b"x" * BODY_CAP)) is None


def test_the_monitor_says_a_broken_answer_apart_from_the_clients(tmp_path: Path) -> None:
    # A real relay in front of an upstream whose /index.dat answer lacks a field: the
    # monitor says a server finding, and the client's own records stand as they are.
    from aiohttp import web

    from sephb.conformance.monitor.monitor import Monitor
    from sephb.conformance.traces.sylink import Sylink

    async def main() -> None:
        async def index(_: web.Request) -> web.Response:
            return web.json_response({"serial": "A3AF-11/26/2026 23:50:54 284"})

        app = web.Application()
        app.router.add_get("/index.dat", index)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        said: list[str] = []
        mon = Monitor(Sylink.build([[("127.0.0.1", port)]]), listen_base=BASE,
                      time_scale=0.01, say=said.append)
        mine = await mon.start()
        relay = mine.servers[0]
        reader, writer = await asyncio.open_connection(relay.address, relay.port)
        writer.write(b"GET /index.dat HTTP/1.1\r\nHost: m\r\nX-Sephb-Client: c9\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
        for _ in range(200):
            if mon.server_findings:
                break
            await asyncio.sleep(0.01)
        await mon.stop()
        await runner.cleanup()
        assert mon.server_findings == [("m1", "GET /index.dat answered 200 with a body "
                                        "that is not a IndexAnswer: Object missing "
                                        "required field `content`")]
        assert any("SERVER FINDING" in line and "(client c9)" in line for line in said)

    run(main(), timeout=30)


@pytest.mark.parametrize(("path", "first", "gave_up", "event"), [
    # a request the client gave up is its timer, as the table says per state
    ("/index.dat", True, True, "SESSION_TIMEOUT"),
    ("/urls", False, True, "REQUEST_FAILED"),
    # a request the server failed: the session never came, or the request failed
    ("/index.dat", True, False, "CONNECT_FAILED"),
    ("/urls", False, False, "REQUEST_FAILED"),
])
def test_a_request_given_up_by_the_client_is_its_timer(path: str, first: bool,
                                                       gave_up: bool, event: str) -> None:
    from sephb.conformance.traces.exchanges import answer_of

    route = route_for(Role.MANAGER, "GET", path)
    assert route is not None
    answer = answer_of(route, None, {}, request_serial=None, first_request=first,
                       gave_up=gave_up)
    assert answer.event.value == event
