"""A transparent TCP relay that watches the HTTP/1.1 exchanges going through it.

`sephb monitor` puts one :class:`Relay` in front of each real server: the client under
test connects to the relay's loopback address instead of the server's, and the relay
connects to the server (the *upstream*) at once, then copies bytes both ways. It is a
TCP relay, not an HTTP proxy: nothing is parsed before it is forwarded and nothing is
re-encoded, so the client and the server see the same bytes, in the same segments as
far as the kernel allows, as they would without the relay -- chunk sizes, header
casing, pipelined requests, garbage and all. The only thing the relay adds is one
pass through the event loop (``transport.write`` from ``data_received``; asyncio
sets TCP_NODELAY), which is why it is built on asyncio *protocols*, not streams: no
task wake-up, no extra copy, no buffering on the way.

The ends of a connection are relayed too, with the same meaning:

* a FIN (graceful close) from one side is passed on as a FIN (``write_eof``): the
  connection is half-closed as it was by the peer, and closed once both sides are
  done. An upstream that never reacts to the client's FIN keeps its connection, as it
  would without the relay;
* a reset (the peer aborted with RST, or writing to it failed) is passed on as a
  reset: the other side's socket gets ``SO_LINGER`` on with a zero timeout and is
  aborted, so its ``close`` sends an RST. A client behind the relay then fails
  exactly as it would directly (``ECONNRESET``), not with a clean end of stream;
* an upstream that refuses the connection (the relay connects when the client does)
  makes the relay reset the client's connection at once: the nearest thing to a
  refused connect the client can still see once its connect succeeded;
* back-pressure: when one side's send buffer fills up, the relay stops reading the
  other side until it drains, as a direct connection would.

One exception, asked for by the caller: ``rewrite(exchange)``, called when a request
is complete, may return a transform of its answer's body. That answer is then held
back until it is complete and sent as ``HTTP/1.1 status``, its headers, the new
``Content-Length`` and the transformed body (its framing -- chunked or not -- and its
reason phrase are not kept); an answer that does not come whole is sent as it came.
``sephb monitor`` uses it for one answer only: the download URLs of ``GET /urls``.

Observation is passive and comes second: each chunk is first written to the other
side, then fed to an `h11 <https://h11.readthedocs.io>`_ parser. Two
:class:`h11.Connection` objects are used, one per direction: a server-role one reads
the client's bytes (requests) and a client-role one reads the upstream's bytes
(responses). h11 is a state machine of *both* peers, so each parser is also told
what the other direction did (the parsed requests are "sent" through the response
parser, the responses through the request parser; the bytes h11 would write are
dropped). That is what lets it know that an answer to HEAD has no body, when a
keep-alive cycle ends, and to hold pipelined requests until the previous answer is
complete. A parse error (or anything else going wrong while observing) only stops
observing that connection -- it is reported once, as an :class:`Exchange` with
``error="parse error: ..."`` -- and forwarding goes on untouched.

Reports go through three callbacks, run in the event loop's thread (keep them
cheap: they run between two chunks of the relayed traffic):

* ``on_request(exchange)`` once the request is complete, before its answer: a live
  judge needs the client's action at once;
* ``on_exchange(exchange)`` once the answer is complete, or once no answer can come
  (``error`` says why: "upstream reset", "upstream closed", "client closed",
  "client reset", "relay stopped", "parse error: ...", "answer without a request").
  It is called exactly once per exchange; ``on_request`` is called before it, or not
  at all (the request never completed, or the answer came before the request's end);
* ``on_conn(event)`` when a client connects and when its relayed connection is over.

Both callbacks get the same :class:`Exchange` object. Timestamps are
``time.monotonic()`` of the chunk that carried the byte concerned (a pipelined request
parsed after the previous answer still gets the time its bytes came). A client's FIN
while a request is outstanding is reported at once as "client closed": HTTP/1.1
clients do not half-close to wait for an answer, a FIN there means the client gave up.
After the upstream closed, requests the client still sends are reported with "upstream
closed" (a keep-alive race a judge may want to see). Bodies are kept up to
:data:`BODY_CAP` bytes each (the rest is forwarded, not kept); a request whose head
never completed is not reported.

Why this module is long: a relayed connection's two legs, its passive observer and
its one rewrite share one state (who ended it and how, which answer is held, where
each message starts in the byte stream), and every end of a connection -- FIN, RST,
a refused upstream, ``stop()`` -- must reach both the forwarding and the observing
in one order; split in two modules, that order would be a contract between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal, cast

import h11

__all__ = ["BODY_CAP", "ConnEvent", "Exchange", "Relay"]

#: The most of a request or response body an :class:`Exchange` keeps (1 MiB).
BODY_CAP = 1 << 20

#: The largest request or response head the parsers accept (h11's default is 16 KiB).
_MAX_HEAD = 1 << 20

#: ``SO_LINGER`` on with a zero timeout: ``close()`` sends RST instead of FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)

log = logging.getLogger(__name__)

Side = Literal["client", "upstream"]
By = Literal["client", "upstream", "relay"]


@dataclass
class Exchange:
    """One request and its answer (if any) on a relayed connection."""

    conn: int  # connection number, unique within the Relay (1, 2, ...)
    peer: tuple[str, int]  # the client's address
    local: tuple[str, int]  # the relay endpoint the client connected to
    method: str
    target: str  # the request target as sent (path + query)
    headers: list[tuple[str, str]]  # request headers, names lower-cased, in order
    body: bytes  # the request body, its first BODY_CAP bytes
    started: float  # time.monotonic() when the request head's first byte came
    sent: float | None  # when the request was complete (None: it never was)
    status: int | None = None  # the answer's status (None: no answer)
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""  # the answer's body, its first BODY_CAP bytes
    answered: float | None = None  # when the answer was complete
    #: Why there was no (complete) answer: "upstream reset", "upstream closed",
    #: "client closed", "client reset", "relay stopped", "parse error: ...";
    #: "answer without a request" (method and target are then empty).
    error: str | None = None


@dataclass
class ConnEvent:
    """A client connected to the relay, or its relayed connection is over."""

    conn: int
    peer: tuple[str, int]
    local: tuple[str, int]
    kind: Literal["open", "close"]
    #: time.monotonic(): when the client connected (open); when the first side ended
    #: the connection, the one ``by`` names (close)
    t: float
    by: Literal["client", "upstream", "relay"] | None = None  # who ended it (close)
    #: None: a graceful close (FIN); "reset"; "upstream refused";
    #: "upstream unreachable: ..."; "error: ..." (another socket error)
    error: str | None = None


def _call(callback: Callable[[Exchange], None] | Callable[[ConnEvent], None],
          arg: Exchange | ConnEvent) -> None:
    """A callback's exception is logged: it must not end the relayed connection."""
    try:
        callback(arg)  # type: ignore[arg-type]
    except Exception:
        log.exception("sephb monitor: a relay callback failed")


def _why(by: By, error: str | None) -> str:
    """An exchange's error from what ended its connection."""
    if by == "relay":
        return "relay stopped"
    if error is None:
        return f"{by} closed"
    return error if error.startswith(by) else f"{by} {error}"


def _headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]


def _mirror_request(ev: h11.Request) -> h11.Request:
    """The request as the response parser is told it was sent (h11 only sends 1.1)."""
    if ev.http_version == b"1.1":
        return ev
    headers = list(ev.headers)
    if not any(n == b"host" for n, _ in headers):
        headers.append((b"host", b"_"))  # mandatory in 1.1; the copy is never written
    return h11.Request(method=ev.method, target=ev.target, headers=headers,
                       http_version=b"1.1")


def _mirror_response(ev: h11.Response | h11.InformationalResponse
                     ) -> h11.Response | h11.InformationalResponse:
    if ev.http_version == b"1.1":
        return ev
    return type(ev)(status_code=ev.status_code, headers=list(ev.headers),
                    reason=ev.reason, http_version=b"1.1")


class _Times:
    """When the bytes of one direction came: the end offset and time of each chunk
    not yet looked up, so that an event parsed later (pipelining) gets the time of
    the chunk that carried it."""

    __slots__ = ("fed", "marks")

    def __init__(self) -> None:
        self.fed = 0
        self.marks: deque[tuple[int, float]] = deque()

    def add(self, n: int, t: float) -> None:
        self.fed += n
        self.marks.append((self.fed, t))

    def at(self, offset: int) -> float:
        """The time of the chunk holding byte ``offset`` (offsets asked for never
        decrease; the chunks before are dropped)."""
        marks = self.marks
        while len(marks) > 1 and marks[0][0] <= offset:
            marks.popleft()
        return marks[0][1] if marks else time.monotonic()


def _request_parser() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)


class _Observer:
    """The passive HTTP/1.1 view of one relayed connection (see the module's doc)."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.req = _request_parser()  # reads the client's bytes
        self.resp = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self.req_times = _Times()
        self.resp_times = _Times()
        self.next_start = 0  # offset of the next request's first byte
        self.resp_start = 0  # and of the next answer's
        self.current: Exchange | None = None
        self.reported = True  # the current exchange went to on_exchange
        self.req_body = bytearray()
        self.resp_body = bytearray()
        #: No answer can come any more, and why: requests are still read (after the
        #: upstream closed) and reported with this error.
        self.no_answer: str | None = None
        self.active = True
        self.eof_t: float | None = None  # set while the upstream's FIN is handled
        #: Offsets (in the upstream's bytes) of the current answer's start and end.
        self.answer_at: int | None = None
        self.answer_end: int | None = None

    # -- input ----------------------------------------------------------------

    def feed_request(self, data: bytes, t: float) -> None:
        if not self.active:
            return
        self.req_times.add(len(data), t)
        try:
            self.req.receive_data(data)
            self._pump()
        except Exception as exc:  # anything: forwarding must go on
            self._fail("request", exc)

    def feed_response(self, data: bytes, t: float) -> None:
        if not self.active or self.no_answer is not None:
            return
        self.resp_times.add(len(data), t)
        try:
            self.resp.receive_data(data)
            self._pump()
        except Exception as exc:
            self._fail("response", exc)

    def upstream_eof(self, t: float) -> None:
        """The upstream sent FIN: an answer delimited by the close is complete; any
        other is not, nor will it be."""
        if not self.active:
            return
        if self.no_answer is None:
            self.eof_t = t
            try:
                self.resp.receive_data(b"")
                self._pump()
            except h11.RemoteProtocolError:
                pass  # an answer cut short: reported below as "upstream closed"
            except Exception as exc:
                self._fail("response", exc)
                return
            finally:
                self.eof_t = None
        self.no_more_answers("upstream closed", final=False)

    def no_more_answers(self, error: str, final: bool) -> None:
        """No answer can come any more (the first such ``error`` is the one reported).
        ``final``: nor any request: report the partial one too and stop."""
        if not self.active:
            return
        if self.no_answer is None:
            self.no_answer = error
        try:
            self._report(self.no_answer)
            if self.req.their_state not in (h11.IDLE, h11.SEND_BODY):
                self._renew_requests()
            self._pump_requests()  # requests already here (pipelined)
        except Exception as exc:
            self._fail("request", exc)
            return
        if final:
            self._report(self.no_answer)
            self.active = False

    # -- parsing ----------------------------------------------------------------

    def _pump(self) -> None:
        # Alternate: an answer completed lets the next pipelined request through,
        # which lets its (already buffered) answer through.
        while self.active and (self._pump_requests() | self._pump_responses()):
            pass

    def _pump_requests(self) -> bool:
        progressed = False
        while self.active:
            ev = self.req.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return progressed
            if isinstance(ev, h11.ConnectionClosed):
                return progressed
            progressed = True
            mirror = self.no_answer is None
            if isinstance(ev, h11.Request):
                conn = self.conn
                self.current = Exchange(
                    conn.n, conn.peer, conn.local, ev.method.decode("latin-1"),
                    ev.target.decode("latin-1"), _headers(ev.headers), b"",
                    self.req_times.at(self.next_start), None)
                self.reported = False
                self.req_body = bytearray()
                if mirror:
                    self.resp.send(_mirror_request(ev))
            elif isinstance(ev, h11.Data):
                room = BODY_CAP - len(self.req_body)
                if room > 0 and not self.reported:
                    self.req_body += ev.data[:room]
                if mirror:
                    self.resp.send_with_data_passthrough(ev)
            elif isinstance(ev, h11.EndOfMessage):
                end = self.req_times.fed - len(self.req.trailing_data[0])
                self.next_start = end
                if mirror:
                    self.resp.send(ev)
                ex = self.current
                if ex is not None and not self.reported:
                    ex.body = bytes(self.req_body)
                    ex.sent = self.req_times.at(end - 1)
                    _call(self.conn.relay._on_request, ex)
                    self.conn.holding(ex)
                    if self.no_answer is not None:
                        self._report(self.no_answer)
                if mirror:
                    self._cycle()
                else:
                    self._renew_requests()
        return progressed

    def _pump_responses(self) -> bool:
        if self.no_answer is not None:
            return False
        progressed = False
        while self.active:
            if self.resp.our_state is h11.IDLE and self.req.trailing_data[0]:
                # h11 would read an answer before any request (a 408 on an idle
                # connection); here its request is still being read: wait for it.
                return progressed
            ev = self.resp.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return progressed
            if isinstance(ev, h11.ConnectionClosed):
                return progressed
            progressed = True
            ex = None if self.reported else self.current
            if isinstance(ev, h11.InformationalResponse | h11.Response):
                if isinstance(ev, h11.Response):
                    self.resp_body = bytearray()
                    self.answer_at = self.resp_start
                    if self.resp.our_state is h11.IDLE:
                        # An answer to no request (a 408 on an idle connection):
                        # reported on its own, with method and target empty.
                        conn = self.conn
                        ex = self.current = Exchange(
                            conn.n, conn.peer, conn.local, "", "", [], b"",
                            self.resp_times.at(self.resp_start), None)
                        self.reported = False
                    if ex is not None:
                        ex.status = ev.status_code
                        ex.response_headers = _headers(ev.headers)
                if self.resp.their_state is h11.SWITCHED_PROTOCOL:
                    # 101, or CONNECT's 2xx: what follows is not HTTP any more.
                    if ex is not None:
                        ex.status = ev.status_code
                        ex.response_headers = _headers(ev.headers)
                        ex.answered = self.resp_times.at(
                            self.resp_times.fed - len(self.resp.trailing_data[0]) - 1)
                        self._report(None)
                    self.active = False
                    return progressed
                self.req.send(_mirror_response(ev))
            elif isinstance(ev, h11.Data):
                room = BODY_CAP - len(self.resp_body)
                if room > 0:
                    self.resp_body += ev.data[:room]
                self.req.send_with_data_passthrough(ev)
            elif isinstance(ev, h11.EndOfMessage):
                self.req.send(ev)
                end = self.resp_times.fed - len(self.resp.trailing_data[0])
                self.resp_start = end
                if ex is not None:
                    if self.eof_t is not None and end == self.resp_times.fed:
                        ex.answered = self.eof_t  # delimited by the upstream's close
                    else:
                        ex.answered = self.resp_times.at(end - 1)
                    self.answer_end = end
                    self._report(None if ex.method else "answer without a request")
                self._cycle()
                return True  # the next request first: its answer may be buffered
        return progressed

    def _cycle(self) -> None:
        """Both messages are complete: on to the next exchange (keep-alive)."""
        req, resp = self.req, self.resp
        if (req.our_state is h11.DONE and req.their_state is h11.DONE
                and resp.our_state is h11.DONE and resp.their_state is h11.DONE):
            req.start_next_cycle()
            resp.start_next_cycle()

    def _renew_requests(self) -> None:
        """A fresh request parser holding the bytes not parsed yet: once no answer
        can come, requests are read on their own, without waiting for answers."""
        data, _ = self.req.trailing_data
        self.req = _request_parser()
        if data:
            self.req.receive_data(data)

    # -- reports ----------------------------------------------------------------

    def _report(self, error: str | None) -> None:
        ex = self.current
        if ex is None or self.reported:
            return
        self.reported = True
        if ex.sent is None:
            ex.body = bytes(self.req_body)
        ex.response_body = bytes(self.resp_body) if ex.status is not None else b""
        ex.error = error
        _call(self.conn.relay._on_exchange, ex)
        end, self.answer_end = self.answer_end, None
        self.conn.release(ex, self.answer_at, end)

    def _fail(self, direction: str, exc: Exception) -> None:
        """Stop observing the connection, saying why once."""
        if not isinstance(exc, h11.ProtocolError):
            log.exception("sephb monitor: observing connection %d failed", self.conn.n)
        error = f"parse error: {direction}: {exc}"
        self.active = False
        if self.current is not None and not self.reported:
            self._report(error)
        else:
            conn = self.conn
            _call(conn.relay._on_exchange,
                  Exchange(conn.n, conn.peer, conn.local, "", "", [], b"",
                           time.monotonic(), None, error=error))


class _Leg(asyncio.Protocol):
    """One side's socket of a relayed connection: what it reads goes to the other."""

    def __init__(self, conn: _Conn, side: Side) -> None:
        self.conn = conn
        self.side: Side = side
        self.other: _Leg = self
        self.transport: asyncio.Transport | None = None
        self.eof = False  # it sent FIN
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.side == "client":
            self.conn.accepted()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if self.side == "upstream" and conn.hold is not None:
            conn.held += data  # an answer to rewrite: kept until it is complete
        else:
            out = self.other.transport
            if out is not None and not out.is_closing():
                out.write(data)  # first: observing must not delay the bytes
        conn.observe(self, data)

    def eof_received(self) -> bool:
        if not self.eof:
            self.eof = True
            self.conn.ended(self)
        return True  # keep the transport: the other direction may still carry bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.conn.lost(self, exc)

    def pause_writing(self) -> None:
        src = self.other.transport
        if src is not None and not self.other.eof:
            src.pause_reading()

    def resume_writing(self) -> None:
        src = self.other.transport
        if src is not None and not self.other.eof:
            src.resume_reading()


def _call_rewrite(rewrite: Callable[[Exchange], Callable[[bytes], bytes] | None],
                  ex: Exchange) -> Callable[[bytes], bytes] | None:
    try:
        return rewrite(ex)
    except Exception:
        log.exception("sephb monitor: the rewrite callback failed")
        return None


def _rewritten(ex: Exchange, body: bytes) -> bytes:
    """An answer with ``body``, its length said by Content-Length (the framing of the
    answer as it came -- chunked or not -- is replaced, its other headers kept)."""
    assert ex.status is not None
    try:
        reason = HTTPStatus(ex.status).phrase
    except ValueError:  # a status the standard does not name: none
        reason = ""
    head = [f"HTTP/1.1 {ex.status} {reason}"]
    head += [f"{k}: {v}" for k, v in ex.response_headers
             if k not in ("content-length", "transfer-encoding")]
    head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body



def _reset(leg: _Leg) -> None:
    """Abort ``leg``'s connection with an RST (SO_LINGER on, zero timeout)."""
    tr = leg.transport
    if tr is None or leg.lost:
        return
    sock = tr.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    tr.abort()


def _address(addr: object) -> tuple[str, int]:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return (str(addr[0]), int(addr[1]))
    return ("", 0)


class _Conn:
    """A relayed connection: the client's leg, the upstream's leg, the observer."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.n = next(relay._ids)
        self.client = _Leg(self, "client")
        self.upstream = _Leg(self, "upstream")
        self.client.other = self.upstream
        self.upstream.other = self.client
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.observer = _Observer(self)
        #: The exchange whose answer is held back to be rewritten, the transform, and
        #: where in the upstream's byte stream holding began; the bytes held.
        self.hold: tuple[Exchange, Callable[[bytes], bytes], int] | None = None
        self.held = bytearray()
        #: who ended the connection first, how (None: FIN) and when
        self.cause: tuple[By, str | None, float] | None = None
        self.task: asyncio.Task[None] | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done = False

    def accepted(self) -> None:
        tr = self.client.transport
        assert tr is not None
        self.peer = _address(tr.get_extra_info("peername"))
        self.local = _address(tr.get_extra_info("sockname"))
        relay = self.relay
        relay._conns.add(self)
        _call(relay._on_conn, ConnEvent(self.n, self.peer, self.local, "open",
                                        time.monotonic()))
        if relay._stopping:
            self.set_cause("relay", None)
            _reset(self.client)
            return
        tr.pause_reading()  # until the upstream is connected
        self.task = asyncio.get_running_loop().create_task(self._connect())
        self.task.add_done_callback(lambda _: self.check_done())

    async def _connect(self) -> None:
        host, port = self.relay.upstream
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self.upstream, host, port)
        except OSError as exc:
            error = ("upstream refused" if isinstance(exc, ConnectionRefusedError)
                     else f"upstream unreachable: {exc.strerror or exc}")
            self.set_cause("upstream", error)
            _reset(self.client)
            return
        tr = self.client.transport
        if self.relay._stopping or self.client.lost or tr is None or tr.is_closing():
            self.set_cause("relay" if self.relay._stopping else "client", None)
            _reset(self.upstream)
            return
        tr.resume_reading()

    def holding(self, ex: Exchange) -> None:
        """``ex``'s request is complete: hold its answer back if it is to be
        rewritten (only when nothing of any answer is in flight: the answers so far
        are complete)."""
        rewrite = self.relay._rewrite
        obs = self.observer
        if rewrite is None or self.hold is not None \
                or obs.resp_start != obs.resp_times.fed:
            return
        transform = _call_rewrite(rewrite, ex)
        if transform is not None:
            self.hold = (ex, transform, obs.resp_times.fed)

    def release(self, ex: Exchange, start: int | None, end: int | None) -> None:
        """``ex`` was reported: send what was held, its answer rewritten when it came
        whole (``start``/``end``: the answer's offsets in the upstream's bytes)."""
        if self.hold is None or self.hold[0] is not ex:
            return
        _, transform, base = self.hold
        data, self.hold, self.held = bytes(self.held), None, bytearray()
        if ex.error is None and ex.status is not None and start is not None \
                and end is not None and len(ex.response_body) < BODY_CAP:
            try:
                data = (data[:start - base]
                        + _rewritten(ex, transform(ex.response_body))
                        + data[end - base:])
            except Exception:  # a transform that fails: the answer as it came
                log.exception("sephb monitor: rewriting an answer failed")
        out = self.client.transport
        if data and out is not None and not out.is_closing():
            out.write(data)

    def set_cause(self, by: By, error: str | None) -> None:
        if self.cause is None:
            self.cause = (by, error, time.monotonic())

    def observe(self, leg: _Leg, data: bytes) -> None:
        if not self.observer.active:
            return
        if leg.side == "client":
            self.observer.feed_request(data, time.monotonic())
        else:
            self.observer.feed_response(data, time.monotonic())

    def ended(self, leg: _Leg) -> None:
        """``leg``'s peer sent FIN: pass it on; close once both sides are done."""
        self.set_cause(leg.side, None)
        if leg.side == "upstream":
            self.observer.upstream_eof(time.monotonic())
        else:
            self.observer.no_more_answers("client closed", final=True)
        other = leg.other
        out = other.transport
        if out is None or other.lost:
            return
        if other.eof:
            assert leg.transport is not None
            leg.transport.close()
            out.close()
        elif not out.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                out.write_eof()

    def lost(self, leg: _Leg, exc: Exception | None) -> None:
        if exc is not None:
            kind = "reset" if isinstance(exc, ConnectionError) else f"error: {exc}"
            self.set_cause(leg.side, kind)
            self.observer.no_more_answers(_why(leg.side, kind), final=True)
            _reset(leg.other)
        else:
            # Closed by the relay: both sides ended, the other was reset, or stop().
            self.set_cause(leg.side, None)
            out = leg.other.transport
            if out is not None and not leg.other.lost and not out.is_closing():
                out.close()
        self.check_done()

    def abort(self) -> None:
        """stop(): end the connection now."""
        self.set_cause("relay", None)
        self.observer.no_more_answers("relay stopped", final=True)
        if self.task is not None:
            self.task.cancel()
        for leg in (self.client, self.upstream):
            if leg.transport is not None and not leg.lost:
                leg.transport.abort()
        self.check_done()

    def check_done(self) -> None:
        if self.done or not self.client.lost:
            return
        if self.upstream.transport is not None and not self.upstream.lost:
            return
        if self.task is not None and not self.task.done():
            return
        self.done = True
        by, error, t = self.cause or ("relay", None, time.monotonic())
        self.observer.no_more_answers(_why(by, error), final=True)
        relay = self.relay
        relay._conns.discard(self)
        _call(relay._on_conn, ConnEvent(self.n, self.peer, self.local, "close", t,
                                        by=by, error=error))
        if not self.finished.done():
            self.finished.set_result(None)


class Relay:
    """Listen on ``listen``, relay each connection to ``upstream`` byte for byte and
    report the HTTP/1.1 exchanges seen on the way (see the module's doc)."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], *,
                 on_request: Callable[[Exchange], None],
                 on_exchange: Callable[[Exchange], None],
                 on_conn: Callable[[ConnEvent], None],
                 rewrite: Callable[[Exchange], Callable[[bytes], bytes] | None]
                 | None = None) -> None:
        self.listen = listen
        self.upstream = upstream
        self._rewrite = rewrite
        self._on_request = on_request
        self._on_exchange = on_exchange
        self._on_conn = on_conn
        self._ids = itertools.count(1)
        self._conns: set[_Conn] = set()
        self._server: asyncio.Server | None = None
        self._stopping = False

    async def start(self) -> tuple[str, int]:
        """Bind (port 0: an ephemeral one) and accept; the bound address."""
        if self._server is not None:
            raise RuntimeError("the relay is started already")
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._server = await loop.create_server(
            lambda: _Conn(self).client, self.listen[0], self.listen[1],
            reuse_address=True)
        return _address(self._server.sockets[0].getsockname())

    async def stop(self) -> None:
        """Close the listener and abort every relayed connection (bytes not sent yet
        are dropped); returns once no socket and no task of the relay is left."""
        self._stopping = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        while self._conns:
            conns = list(self._conns)
            for conn in conns:
                conn.abort()
            await asyncio.gather(*(c.finished for c in conns))
            tasks = [c.task for c in conns if c.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    @property
    def connections(self) -> int:
        """Relayed connections open now."""
        return len(self._conns)
