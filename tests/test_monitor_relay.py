"""The monitor's relay over real sockets on 127.0.0.1 (ephemeral ports): the bytes a
client and its upstream exchange through the relay are the ones they exchange
directly, every way a connection can end is passed on as it happened (a reset as a
reset), and what the relay reports of each exchange and connection.

The upstreams are raw asyncio servers written here, so that their bytes are exact and
their misbehaviour is under control. No test sleeps to wait for something (but the
held answer, which is the point); time only bounds hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from netutil import run

from sephb.conformance.monitor import _relay
from sephb.conformance.monitor._relay import ConnEvent, Exchange, Relay
from sephb.conformance.site._server import GARBAGE

Address = tuple[str, int]
#: (request head, body, reader, writer) -> keep the connection for another request
Handler = Callable[[bytes, bytes, asyncio.StreamReader, asyncio.StreamWriter],
                   Awaitable[bool]]


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Upstream:
    """A minimal HTTP/1.1 server (Content-Length request bodies only) that records
    the bytes each connection brought and lets ``handler`` answer."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[bytearray] = []
        self.ends: list[str] = []  # per connection: "eof", "reset" or "done"
        self.server: asyncio.Server | None = None

    async def start(self) -> Address:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        return (host, port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        got = bytearray()
        self.received.append(got)
        end = "done"
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    got += exc.partial
                    raise
                got += head
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                got += body
                if not await self.handler(head, body, reader, writer):
                    break
        except asyncio.IncompleteReadError:
            end = "eof"
        except ConnectionResetError:
            end = "reset"
        finally:
            self.ends.append(end)
            writer.close()


async def until(pred: Callable[[], bool]) -> None:
    """Wait for ``pred`` (the test's guard bounds a hang)."""
    while not pred():
        await asyncio.sleep(0.005)


class Seen:
    """What the relay reported, in order."""

    def __init__(self) -> None:
        self.requests: list[Exchange] = []
        self.exchanges: list[Exchange] = []
        self.conns: list[ConnEvent] = []
        self.order: list[str] = []
        self.status_at_request: list[int | None] = []

    def on_request(self, ex: Exchange) -> None:
        self.requests.append(ex)
        self.status_at_request.append(ex.status)
        self.order.append(f"request {ex.target}")

    def on_exchange(self, ex: Exchange) -> None:
        self.exchanges.append(ex)
        self.order.append(f"exchange {ex.target}")

    def on_conn(self, ev: ConnEvent) -> None:
        self.conns.append(ev)

    def relay(self, upstream: Address) -> Relay:
        return Relay(("127.0.0.1", 0), upstream, on_request=self.on_request,
                     on_exchange=self.on_exchange, on_conn=self.on_conn)

    def closes(self) -> list[ConnEvent]:
        return [c for c in self.conns if c.kind == "close"]


async def read_to_end(reader: asyncio.StreamReader) -> tuple[bytes, BaseException | None]:
    """Everything until the end of the stream: (bytes, None) for a clean close,
    (bytes, the exception) for a failed one."""
    data = bytearray()
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except (ConnectionError, OSError) as exc:
        return bytes(data), exc
    return bytes(data), None


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


# -- byte for byte ------------------------------------------------------------------

REQUESTS = [
    b"GET /chunked?x=1&y=%20 HTTP/1.1\r\nHost: up\r\nX-Case:  Mixed \r\n\r\n",
    b"POST /post HTTP/1.1\r\nHost: up\r\nContent-Length: 6\r\n"
    b"Content-Type: text/plain\r\n\r\nping=1",
    b"HEAD /head HTTP/1.1\r\nHost: up\r\n\r\n",
    b"GET /cl HTTP/1.1\r\nhost: up\r\n\r\n",
]
#: The chunked answer, in the pieces the upstream writes (a chunk cut in two).
CHUNKED = [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Odd:  spaced \r\n\r\n"
    b"5;ext=1\r\nhel",
    b"lo\r\n7\r\n, world\r\n",
    b"0\r\nX-Trailer: t\r\n\r\n",
]
ANSWERS = {
    b"/chunked?x=1&y=%20": b"".join(CHUNKED),
    b"/post": b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    b"/head": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
    b"/cl": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX-A: 1\r\n\r\nabcde",
}


def target(head: bytes) -> bytes:
    return head.split(b" ", 2)[1]


async def canned(head: bytes, body: bytes, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> bool:
    t = target(head)
    if t.startswith(b"/chunked"):
        for piece in CHUNKED:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)  # separate segments
    else:
        writer.write(ANSWERS[t])
        await writer.drain()
    return True


async def converse(addr: Address, requests: Sequence[bytes], pipelined: bool) -> bytes:
    """Send ``requests`` on one keep-alive connection (one at a time, each after the
    previous answer, or all at once) and return every byte received."""
    reader, writer = await asyncio.open_connection(*addr)
    got = bytearray()
    if pipelined:
        writer.write(b"".join(requests))
    for req in requests:
        if not pipelined:
            writer.write(req)
        got += await reader.readexactly(len(ANSWERS[target(req)]))
    await close(writer)
    return bytes(got)


def test_bytes_identical_directly_and_through_the_relay() -> None:
    async def main() -> None:
        up = Upstream(canned)
        up_addr = await up.start()
        seen = Seen()
        relay = seen.relay(up_addr)
        addr = await relay.start()
        expected = b"".join(ANSWERS[target(r)] for r in REQUESTS)
        for pipelined in (False, True):
            direct = await converse(up_addr, REQUESTS, pipelined)
            relayed = await converse(addr, REQUESTS, pipelined)
            assert direct == expected
            assert relayed == direct
        await until(lambda: len(seen.closes()) == 2)
        # What the upstream received, connection by connection: direct, relayed, ...
        assert len(up.received) == 4
        assert all(bytes(got) == b"".join(REQUESTS) for got in up.received)

        # What the relay reported: 4 exchanges on each of its 2 connections.
        assert [(e.conn, e.method, e.target) for e in seen.exchanges] == [
            (conn, m, t) for conn in (1, 2) for m, t in (
                ("GET", "/chunked?x=1&y=%20"), ("POST", "/post"), ("HEAD", "/head"),
                ("GET", "/cl"))]
        assert seen.requests == seen.exchanges
        for conn in (0, 4):
            chunked, post, head, cl = seen.exchanges[conn:conn + 4]
            assert chunked.headers == [("host", "up"), ("x-case", "Mixed")]
            assert (chunked.status, chunked.response_body) == (200, b"hello, world")
            assert ("x-odd", "spaced") in chunked.response_headers
            assert (post.body, post.status, post.response_body) == (b"ping=1", 201, b"ok")
            assert ("content-type", "text/plain") in post.headers
            assert (head.status, head.response_body) == (200, b"")
            assert ("content-length", "10") in head.response_headers
            assert cl.response_headers == [("content-length", "5"), ("x-a", "1")]
            assert cl.response_body == b"abcde"
            for e in (chunked, post, head, cl):
                assert e.error is None
                assert e.sent is not None and e.answered is not None
                assert e.started <= e.sent <= e.answered
                assert e.peer[0] == "127.0.0.1" and e.local == addr
        # Pipelined: a request parsed after the previous answer keeps its own times.
        first_answered = seen.exchanges[4].answered
        assert first_answered is not None
        assert seen.exchanges[5].started < first_answered
        assert [(c.conn, c.kind, c.by, c.error) for c in seen.conns] == [
            (1, "open", None, None), (1, "close", "client", None),
            (2, "open", None, None), (2, "close", "client", None)]
        await relay.stop()
        await up.stop()

    run(main(), timeout=30)


# -- held, stalled ----------------------------------------------------------------


HELD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate"


def test_a_held_request_is_answered_through_the_relay() -> None:
    async def held(head: bytes, body: bytes, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(1.0)
        writer.write(HELD)
        return True

    async def main() -> None:
        up = Upstream(held)
        seen = Seen()
        relay = seen.relay(await up.start())
        addr = await relay.start()
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"GET /held HTTP/1.1\r\nHost: up\r\n\r\n")
        answer = await reader.readexactly(len(HELD))
        assert answer == HELD
        await until(lambda: len(seen.exchanges) == 1)
        (ex,) = seen.exchanges
        assert (ex.status, ex.response_body, ex.error) == (200, b"late", None)
        await close(writer)
        await relay.stop()
        await up.stop()

    run(main(), timeout=30)


async def wait_for_eof(head: bytes, body: bytes, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> bool:
    """Never answer; end when the client does (as the simulated managers' stall)."""
    rest = await reader.read()
    raise asyncio.IncompleteReadError(rest, None)


def test_a_stalled_request_ends_when_the_client_gives_up() -> None:
    async def main() -> None:
        up = Upstream(wait_for_eof)
        seen = Seen()
        relay = seen.relay(await up.start())
        addr = await relay.start()
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"POST /stall HTTP/1.1\r\nHost: up\r\nContent-Length: 1\r\n\r\nx")
        await until(lambda: len(seen.requests) == 1)
        try:
            await asyncio.wait_for(reader.read(1), 0.3)
            raise AssertionError("a stalled request was answered")
        except TimeoutError:
            pass  # the client's own timeout
        await close(writer)
        await until(lambda: len(seen.closes()) == 1)
        (ex,) = seen.exchanges
        assert (ex.method, ex.target, ex.body) == ("POST", "/stall", b"x")
        assert ex.sent is not None and ex.status is None and ex.answered is None
        assert ex.error == "client closed"
        (end,) = seen.closes()
        assert (end.by, end.error) == ("client", None)
        assert up.ends == ["eof"]  # the client's FIN reached the upstream as a FIN
        assert relay.connections == 0
        await relay.stop()
        await up.stop()

    run(main(), timeout=30)


# -- resets, closes, refusals ---------------------------------------------------------


async def reset_mid_answer(head: bytes, body: bytes, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
    await writer.drain()
    await asyncio.sleep(0.05)
    abort_with_rst(writer)
    return False


def test_an_upstream_reset_reaches_the_client_as_a_reset() -> None:
    async def fetch(addr: Address) -> tuple[bytes, BaseException | None]:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"GET /reset HTTP/1.1\r\nHost: up\r\n\r\n")
        got = await read_to_end(reader)
        await close(writer)
        return got

    async def main() -> None:
        up = Upstream(reset_mid_answer)
        up_addr = await up.start()
        seen = Seen()
        relay = seen.relay(up_addr)
        addr = await relay.start()
        _, direct = await fetch(up_addr)
        assert isinstance(direct, ConnectionResetError)  # the upstream does reset
        _, relayed = await fetch(addr)
        assert isinstance(relayed, ConnectionResetError), relayed  # not a clean close
        await until(lambda: len(seen.closes()) == 1)
        (ex,) = seen.exchanges
        assert (ex.status, ex.error, ex.answered) == (200, "upstream reset", None)
        assert ex.response_body == b"0123456789"
        (end,) = seen.closes()
        assert (end.by, end.error) == ("upstream", "reset")
        await relay.stop()
        await up.stop()

    run(main(), timeout=30)


def test_an_upstream_close_reaches_the_client_as_a_close() -> None:
    async def close_unanswered(head: bytes, body: bytes, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> bool:
        return False

    async def main() -> None:
        up = Upstream(close_unanswered)
        seen = Seen()
        relay = seen.relay(await up.start())
        addr = await relay.start()
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"GET /gone HTTP/1.1\r\nHost: up\r\n\r\n")
        assert await read_to_end(reader) == (b"", None)
        await close(writer)
        await until(lambda: len(seen.closes()) == 1)
        (ex,) = seen.exchanges
        assert (ex.status, ex.error) == (None, "upstream closed")
        (end,) = seen.closes()
        assert (end.by, end.error) == ("upstream", None)
        await relay.stop()
        await up.stop()

    run(main(), timeout=30)


def test_a_client_reset_reaches_the_upstream_as_a_reset() -> None:
    async def main() -> None:
        up = Upstream(wait_for_eof)
        seen = Seen()
        relay = seen.relay(await up.start())
        addr = await relay.start()
        _, writer = await asyncio.open_connection(*addr)
        writer.write(b"GET /held HTTP/1.1\r\nHost: up\r\n\r\n")
        await until(lambda: len(seen.requests) == 1)
        abort_with_rst(writer)
        await until(lambda: len(seen.closes()) == 1 and len(up.ends) == 1)
        assert up.ends == ["reset"]
        (ex,) = seen.exchanges
        assert ex.error == "client reset"
        (end,) = seen.closes()
        assert (end.by, end.error) == ("client", "reset")
        await relay.stop()
        await up.stop()

    run(main(), timeout=30)


def test_a_refused_upstream_resets_the_client() -> None:
    async def main() -> None:
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            up_addr: Address = s.getsockname()
            try:
                await asyncio.open_connection(*up_addr)
                raise AssertionError("the port is not refused")
            except ConnectionRefusedError:
                pass
            seen = Seen()
            relay = seen.relay(up_addr)
            addr = await relay.start()
            reader, writer = await asyncio.open_connection(*addr)
            _, failure = await read_to_end(reader)
            assert isinstance(failure, ConnectionResetError), failure
            await close(writer)
            await until(lambda: len(seen.closes()) == 1)
            assert [(c.kind, c.by, c.error) for c in seen.conns] == [
                ("open", None, None), ("close", "upstream", "upstream refused")]
            assert seen.exchanges == [] and seen.requests == []
            await relay.stop()

    run(main(), timeout=30)


# -- what is reported when ----------------------------------------------------------


NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


def test_on_request_comes_before_the_answer() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def after_on_request(head: bytes, body: bytes, reader: asyncio.StreamReader,
                                   writer: asyncio.StreamWriter) -> bool:
            await gate.wait()  # only on_request opens it
            writer.write(NO_CONTENT)
            return True

        up = Upstream(after_on_request)
        seen = Seen()

        def on_request(ex: Exchange) -> None:
            seen.on_request(ex)
            gate.set()

        relay = Relay(("127.0.0.1", 0), await up.start(), on_request=on_request,
                      on_exchange=seen.on_exchange, on_conn=seen.on_conn)
        addr = await relay.start()
        reader, writer = await asyncio.open_connection(*addr)
        for path in ("/a", "/b"):
            gate.clear()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: up\r\n\r\n".encode())
            assert await reader.readexactly(len(NO_CONTENT)) == NO_CONTENT
        await until(lambda: len(seen.exchanges) == 2)
        assert seen.order == ["request /a", "exchange /a", "request /b", "exchange /b"]
        assert seen.status_at_request == [None, None]
        assert [e.status for e in seen.exchanges] == [204, 204]
        await close(writer)
        await relay.stop()
        await up.stop()

    run(main(), timeout=20)


def test_a_parse_error_is_reported_once_and_forwarding_goes_on() -> None:
    async def garbage(head: bytes, body: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        writer.write(GARBAGE)
        await writer.drain()
        writer.write(b"more bytes after the garbage")
        return False

    async def fetch(addr: Address) -> bytes:
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(b"GET /g HTTP/1.1\r\nHost: up\r\n\r\n")
        got, failure = await read_to_end(reader)
        assert failure is None
        await close(writer)
        return got

    async def main() -> None:
        up = Upstream(garbage)
        up_addr = await up.start()
        seen = Seen()
        relay = seen.relay(up_addr)
        addr = await relay.start()
        direct = await fetch(up_addr)
        assert direct == GARBAGE + b"more bytes after the garbage"
        assert await fetch(addr) == direct
        await until(lambda: len(seen.closes()) == 1)
        (ex,) = seen.exchanges
        assert ex.target == "/g" and ex.status is None
        assert ex.error is not None and ex.error.startswith("parse error: response: ")
        await relay.stop()
        await up.stop()

    run(main(), timeout=20)


# -- stop ------------------------------------------------------------------------------


def own_tcp_sockets() -> list[tuple[int, int]]:
    """(local port, remote port) of each IPv4 TCP socket this process has open."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    with open("/proc/self/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                out.append((int(fields[1].split(":")[1], 16),
                            int(fields[2].split(":")[1], 16)))
    return out


def relay_tasks() -> list[asyncio.Task[Any]]:
    """The pending tasks running the relay's code."""
    out = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if not task.done() and code is not None and code.co_filename == _relay.__file__:
            out.append(task)
    return out


def test_stop_leaves_no_socket_and_no_task() -> None:
    async def main() -> None:
        up = Upstream(wait_for_eof)
        up_addr = await up.start()
        # An upstream whose accept queue is full: a connect to it never completes.
        full = socket.socket()
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        filler = socket.create_connection(full.getsockname())
        seen = Seen()
        relay = seen.relay(up_addr)
        stuck = seen.relay(full.getsockname())
        addr, stuck_addr = await relay.start(), await stuck.start()

        def relay_sockets() -> list[tuple[int, int]]:
            return [s for s in own_tcp_sockets() if s[0] != filler.getsockname()[1] and (
                s[0] in (addr[1], stuck_addr[1])
                or s[1] in (up_addr[1], full.getsockname()[1]))]

        clients = [await asyncio.open_connection(*addr) for _ in range(3)]
        clients[0][1].write(b"GET /waiting HTTP/1.1\r\nHost: up\r\n\r\n")
        clients[1][1].write(
            b"POST /partial HTTP/1.1\r\nHost: up\r\nContent-Length: 9\r\n\r\nabc")
        clients.append(await asyncio.open_connection(*stuck_addr))
        await until(lambda: len(seen.requests) == 1 and len(seen.conns) == 4 and any(
            got.startswith(b"POST /partial") for got in up.received))
        assert relay.connections == 3 and stuck.connections == 1
        assert len(relay_sockets()) == 2 + 2 * 3 + 1 + 1  # listeners, 3 relayed, stuck
        assert relay_tasks()  # the stuck connect

        await relay.stop()
        await stuck.stop()
        assert relay.connections == 0 and stuck.connections == 0
        assert relay_sockets() == []
        assert relay_tasks() == []
        assert sorted((c.conn, c.by) for c in seen.closes()) == [
            (1, "relay"), (1, "relay"), (2, "relay"), (3, "relay")]
        assert sorted((e.target, e.error, e.sent is None) for e in seen.exchanges) == [
            ("/partial", "relay stopped", True), ("/waiting", "relay stopped", False)]
        for reader, writer in clients:
            await read_to_end(reader)  # the relay is gone: ends, somehow
            await close(writer)
        filler.close()
        full.close()
        await up.stop()

    run(main(), timeout=30)


# -- the one rewrite ----------------------------------------------------------------


def test_an_answer_asked_to_be_rewritten_is_held_and_sent_whole() -> None:
    # The chunked answer to /chunked is rewritten (and framed by Content-Length);
    # the other answers on the same keep-alive connection pass byte for byte.
    async def main() -> None:
        up = Upstream(canned)
        up_addr = await up.start()
        seen = Seen()

        def rewrite(ex: Exchange) -> Callable[[bytes], bytes] | None:
            if ex.target.startswith("/chunked"):
                return lambda body: body.replace(b"world", b"relayed world")
            return None

        relay = Relay(("127.0.0.1", 0), up_addr, on_request=seen.on_request,
                      on_exchange=seen.on_exchange, on_conn=seen.on_conn,
                      rewrite=rewrite)
        addr = await relay.start()
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(REQUESTS[0])
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-length: 20\r\n" in head and b"chunked" not in head.lower()
        assert b"x-odd: spaced\r\n" in head  # its other headers kept
        assert await reader.readexactly(20) == b"hello, relayed world"
        writer.write(REQUESTS[3])  # then an answer nobody asked to rewrite
        assert await reader.readexactly(len(ANSWERS[b"/cl"])) == ANSWERS[b"/cl"]
        await close(writer)
        await until(lambda: len(seen.closes()) == 1)
        # What was observed is the upstream's answer, not the rewritten one.
        assert seen.exchanges[0].response_body == b"hello, world"
        await relay.stop()
        await up.stop()

    run(main(), timeout=30)
