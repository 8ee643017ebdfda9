"""Fuzzing the simulated managers, the GUP and the control API (issue 15): whatever
bytes a client sends -- any method, path, header or body; deep JSON, huge numbers,
bytes that are not UTF-8, a request cut off anywhere -- a running fleet answers
below 500, logs no traceback, records the request in its trace, and still serves a
well-formed check-in afterwards.

Each example is one connection over a real socket to a
:class:`~sephb.conformance.site.Fleet` running on a loop thread of its own (as the
wire suite runs it). The fleet's header and body timeouts are short (0.15 s) so that
a cut-off request ends quickly with its 408; a ``GET /push`` the manager holds is
released by a push, as a held request is the server's doing and never a hang.
``--hypothesis-show-statistics`` lists the answers the examples got.

The budget is a few seconds in ``make test``; ``SEPHB_FUZZ=long`` runs a hundred
times as many examples (minutes): see ``fuzzing.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fuzzing import fuzz
from hypothesis import event, given
from hypothesis import strategies as st
from netutil import addresses

from sephb.conformance.site import Fleet
from sephb.conformance.site.config import ControlSpec, FleetConfig
from sephb.conformance.traces import wire
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.trace import Record, read_trace

FUZZ = fuzz(150)
#: Only guards against a hang: every answer comes long before it.
GUARD_S = 20.0

T = TypeVar("T")


# --- a fleet on a thread of its own ---------------------------------------------------


class _Tracebacks(logging.Handler):
    """Every log record that carries a traceback, or is an error, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.bad.append(f"{record.name}: {record.getMessage()}\n"
                            f"{self.format(record) if record.exc_info else ''}")


class LiveFleet:
    """A manager, a GUP and the control API, served on a loop thread; what they
    record is mirrored here as it happens."""

    def __init__(self, trace: Path, tracebacks: _Tracebacks):
        self.tracebacks = tracebacks
        a = addresses(2)
        cfg = FleetConfig.loopback(a[:1], gup=a[1], control=ControlSpec("127.0.0.1", 0),
                                   header_timeout=0.15, body_timeout=0.15,
                                   idle_timeout=2.0, max_upload=64 * 1024)
        self.fleet = Fleet(cfg, clock=Clock(0.001), trace=str(trace))
        self.trace = trace
        self.seen: list[Record] = []
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="fuzz-fleet", daemon=True)
        self._thread.start()
        self.call(self.fleet.start())
        self.fleet.recorder.listen(self._heard)

    def _heard(self, rec: Record) -> None:
        with self._cond:
            self.seen.append(rec)
            self._cond.notify_all()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(GUARD_S)

    def do(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self.call(run())

    def wait_for(self, pred: Callable[[Record], bool], start: int) -> list[Record]:
        """The records from index ``start`` on, once one of them satisfies ``pred``."""
        with self._cond:
            ok = self._cond.wait_for(lambda: any(pred(r) for r in self.seen[start:]),
                                     GUARD_S)
            assert ok, f"no such record among {self.seen[start:]}"
            return self.seen[start:]

    def address(self, target: str) -> tuple[str, int]:
        if target == "control":
            ctl = self.fleet.control
            assert ctl is not None
            return ctl.address, ctl.port
        s = self.fleet[target]
        return s.address, s.port

    async def _reset(self) -> None:
        # A generated control request may have set a fault or a policy: undo it, so
        # that each example meets the same fleet.
        for s in self.fleet.servers.values():
            await s.set_fault("up")
            s.source, s.locations = s.spec.source, dict(s.spec.locations)

    def reset(self) -> None:
        self.call(self._reset())

    def close(self) -> None:
        try:
            self.call(self.fleet.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(GUARD_S)
            self._loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFleet]:
    tracebacks = _Tracebacks()
    root = logging.getLogger()
    quiet = {name: logging.getLogger(name).level for name in ("aiohttp", "asyncio")}
    root.addHandler(tracebacks)
    for name in quiet:  # aiohttp logs some tracebacks at DEBUG: let them through
        logging.getLogger(name).setLevel(logging.DEBUG)
    fleet = LiveFleet(tmp_path_factory.mktemp("fuzz") / "servers.ndjson", tracebacks)
    try:
        yield fleet
    finally:
        fleet.close()
        root.removeHandler(tracebacks)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


# --- requests -------------------------------------------------------------------------

_TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Header values: anything but CR and LF (those end a header; they come separately).
_VALUE = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                               max_size=4),
    max_leaves=20)

_huge = st.integers(1, 5000).map(lambda n: b"9" * n)

_logs_bodies = st.lists(st.tuples(st.text(max_size=20), st.text(max_size=200)),
                        max_size=5).map(lambda logs: _utf8(json.dumps(
                            {"logs": [{"id": i, "data": d} for i, d in logs]})))
_sensors_bodies = st.tuples(st.lists(_json_values, max_size=3),
                            st.lists(_json_values, max_size=3)).map(
    lambda s: _utf8(json.dumps({"lan_sensor": s[0], "learned_apps": s[1]})))
_bodies = st.one_of(
    st.just(b""),
    # the profile's bodies, and near misses
    _logs_bodies,
    _sensors_bodies,
    _json_values.map(lambda v: _utf8(json.dumps(v))),
    # deep JSON, in an unknown field and in the opaque sensor lists
    st.integers(1, 100_000).map(lambda n: b'{"logs": [], "x": ' + _deep(n) + b"}"),
    st.integers(1, 100_000).map(
        lambda n: b'{"lan_sensor": [' + _deep(n) + b'], "learned_apps": []}'),
    # huge numbers where the profile has strings, and where it has nothing
    _huge.map(lambda d: b'{"logs": [{"id": ' + d + b', "data": "x"}]}'),
    _huge.map(lambda d: b'{"logs": [], "n": ' + d + b"}"),
    _huge.map(lambda d: b'{"mode": "up", "path": ' + d + b"}"),
    # bytes that are not UTF-8 inside strings, and anything at all
    st.binary(max_size=40).map(lambda b: b'{"logs": [{"id": "' + b + b'", "data": ""}]}'),
    st.binary(max_size=300),
)

_profile_paths = st.sampled_from([
    wire.INDEX_PATH, wire.URLS_PATH, wire.LOGS_PATH, wire.SENSORS_PATH, wire.PUSH_PATH,
    "/content/1/avdefs.zip", "/content/0/avdefs.zip", "/content/99999999999999999999/a",
    "/content/1/../../etc/passwd", "/control/state", "/control/trace",
    "/control/trace?client=%ff", "/control/m1/fault", "/control/gup/fault",
    "/control/m1/policy", "/control/nobody/fault", "/control/publish", "/control/push",
    "/control/m1/drop", "/%ff%fe", "/index.dat?%00=1",
]).map(_utf8)
_paths = st.one_of(
    _profile_paths,
    st.sampled_from([b"*", b"http://x/index.dat", b"", b"index.dat"]),
    st.binary(max_size=40).map(lambda b: b"/" + b),
    st.text(max_size=30).map(lambda s: _utf8("/" + s)),
)

_methods = st.one_of(
    st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH",
                     b"TRACE", b"CONNECT", b"get"]),
    st.text(_TOKEN, min_size=1, max_size=12).map(_utf8),
    st.binary(min_size=1, max_size=8),
)

_hold = st.one_of(st.integers(0, 300).map(lambda n: str(n).encode()), _huge,
                  st.sampled_from([b"-5", b"1e3", b"5 ms", b"\xc2\xb2", b"\xd9\xa1", b""]))

#: Headers a client of the profile might send, values not always what it should.
_tame_headers = st.lists(st.one_of(
    st.tuples(st.just(wire.HEADER_CLIENT.encode()), st.one_of(
        st.sampled_from([b"c1", b"c2", b"victim", b""]), st.text(max_size=20).map(_utf8),
        _VALUE)),
    st.tuples(st.just(wire.HEADER_SERIAL.encode()), st.one_of(
        st.text(max_size=30).map(_utf8), _VALUE)),
    st.tuples(st.just(wire.HEADER_LOCATION.encode()), st.one_of(
        st.sampled_from([b"Office", b"Branch"]), st.text(max_size=20).map(_utf8), _VALUE)),
    st.tuples(st.just(wire.HEADER_HOLD_MS.encode()), _hold),
    st.tuples(st.sampled_from([b"Content-Type", b"Expect", b"Origin", b"Upgrade",
                               b"Accept-Encoding", b"Content-Encoding",
                               b"Sec-Fetch-Site"]), st.text(max_size=20).map(_utf8)),
), max_size=5)
#: ...and anything that fits in a header line.
_headers = st.lists(st.one_of(
    _tame_headers.map(lambda hs: hs[0] if hs else (b"X-Empty", b"")),
    st.tuples(st.text(_TOKEN, min_size=1, max_size=16).map(_utf8), _VALUE),
    st.tuples(st.binary(min_size=1, max_size=10), _VALUE),  # not a header name
), max_size=6)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, bool]:
    """(target, the request's bytes, whether it was cut off). Most requests follow the
    profile's shape, with values gone wrong, so that they reach the handlers; one in
    four is wild from its first byte."""
    target = draw(st.sampled_from(["m1", "m1", "gup", "control"]))
    wild = draw(st.integers(0, 3)) == 0
    method = draw(_methods if wild else st.sampled_from([b"GET", b"POST"]))
    path = draw(_paths if wild else _profile_paths)
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"HTTP/1.1 x"])
                   if wild else st.just(b"HTTP/1.1"))
    body = draw(_bodies)
    if not wild and draw(st.booleans()):  # a request of the profile, to reach its answers
        method, path, body = draw(st.sampled_from([
            (b"GET", b"/index.dat", st.just(b"")), (b"GET", b"/urls", st.just(b"")),
            (b"POST", b"/logs", _logs_bodies), (b"POST", b"/sensors", _sensors_bodies),
            (b"GET", b"/push", st.just(b"")), (b"GET", b"/content/1/avdefs.zip",
                                               st.just(b"")),
        ]).flatmap(lambda mpb: st.tuples(st.just(mpb[0]), st.just(mpb[1]), mpb[2])))
    framing = draw(st.sampled_from(["length", "length", "chunked", "wrong", "none"]))
    host = draw(st.sampled_from(["own", "own", "own", "other", "none"]))
    lines = [method + b" " + path + b" " + version]
    if host != "none":
        lines.append(b"Host: " + (b"{host}" if host == "own" else b"evil.example"))
    lines += [name + b": " + value for name, value in draw(
        _headers if wild else _tame_headers)]
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "wrong":
        lines.append(b"Content-Length: " + draw(st.one_of(
            st.integers(0, 2 * len(body) + 10).map(lambda n: str(n).encode()),
            st.sampled_from([b"-1", b"x", b"1, 2", b"99999999999999999999999"]))))
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        if draw(st.booleans()):
            body = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    # One request per connection, so that every one can be found in the trace.
    lines.append(b"Connection: close")
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + body
    cut = draw(st.one_of(st.none(), st.none(), st.none(),
                         st.integers(1, max(1, len(raw) - 1))))
    return target, raw if cut is None else raw[:cut], cut is not None


# --- one exchange ---------------------------------------------------------------------

_STATUS = re.compile(rb"HTTP/1\.[01] ([0-9]{3}) ")


def exchange(live: LiveFleet, target: str, raw: bytes) -> bytes:
    """Send ``raw``, and read until the server closes. A request the manager holds
    (``GET /push``) is released with a push: holding is the server's doing."""
    address, port = live.address(target)
    raw = raw.replace(b"{host}", f"{address}:{port}".encode())
    got = bytearray()
    with socket.create_connection((address, port), timeout=GUARD_S) as sock:
        # (a server may answer, and close, before the whole request is sent)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        pushed = False
        deadline = time.monotonic() + GUARD_S
        while True:
            assert time.monotonic() < deadline, f"no answer, no close: {got[:200]!r}"
            readable, _, _ = select.select([sock], [], [], 0.05)
            if not readable:
                if not pushed and target == "m1" and live.do(lambda: live.fleet["m1"].held):
                    live.do(lambda: live.fleet.push())
                    pushed = True
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    return bytes(got)


@FUZZ
@given(requests())
def test_any_request_is_answered_below_500_and_recorded(
        live: LiveFleet, request: tuple[str, bytes, bool]) -> None:
    target, raw, cut = request
    start = len(live.seen)
    got = exchange(live, target, raw)
    m = _STATUS.match(got)
    assert m is not None, f"not an HTTP answer: {got[:200]!r}"
    status = int(m.group(1))
    event(f"{target} {status}{' (cut off)' if cut else ''}")  # --hypothesis-show-statistics
    assert status < 500, got[:500]
    assert not live.tracebacks.bad, live.tracebacks.bad
    if target == "control":
        live.reset()
    else:
        # The request is in the trace: its connection's records hold a record with
        # the answer's status, between the connection's CONNECT and DISCONNECT.
        recs = live.wait_for(lambda r: r.server == target and r.event == "DISCONNECT",
                             start)
        conn = next(r.conn for r in recs if r.server == target)
        mine = [r for r in recs if r.server == target and r.conn == conn]
        assert mine[0].event == "CONNECT" and mine[-1].event == "DISCONNECT", mine
        assert any(r.status == status for r in mine), (status, mine)
    # ...and the servers still serve a well-formed request.
    start = len(live.seen)
    ok = exchange(live, "m1", b"GET /index.dat HTTP/1.1\r\nHost: x\r\nX-Sephb-Client: "
                              b"health\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 "), ok[:200]
    live.wait_for(lambda r: r.client == "health" and r.event == "DISCONNECT", start)


def test_the_fuzzed_trace_reads_back(live: LiveFleet) -> None:
    """Run after the fuzzer (file order), on the same fleet: the GUP still serves, and
    every record the servers wrote to the trace file, whatever bytes the requests
    held, reads back as the records they kept."""
    start = len(live.seen)
    got = exchange(live, "gup", b"GET /content/1/avdefs.zip HTTP/1.1\r\nHost: x\r\n"
                                b"Connection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 ")
    live.wait_for(lambda r: r.server == "gup" and r.event == "DISCONNECT", start)
    kept = live.do(lambda: live.fleet.records)
    assert list(read_trace(live.trace)) == kept
    assert [r.event for r in kept[-4:]] == ["CONNECT", "DOWNLOAD_GUP", "CONTENT_RECEIVED",
                                            "DISCONNECT"]
