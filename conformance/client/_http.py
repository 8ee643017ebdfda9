"""A minimal HTTP/1.1 client connection: asyncio streams framed by h11.

Why not aiohttp's client here: the heartbeat needs connection-level control that a
pooled client hides -- the TCP connect is its own protocol step (CONNECTED), push
mode keeps one connection and holds a request on it, and the seed's heartbeat sizes
are measured in bytes on the wire. h11 does the HTTP framing (sans-IO, well kept);
this module only moves bytes and counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import h11

_READ = 65536


class HttpError(Exception):
    """The peer broke the exchange: closed, reset, or sent something not HTTP."""


@dataclass
class Response:
    status: int
    body: bytes


class HttpConnection:
    """One TCP connection carrying sequential HTTP/1.1 requests (keep-alive)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self._reader, self._writer, self.host = reader, writer, host
        self._h11 = h11.Connection(our_role=h11.CLIENT)
        #: Bytes sent and received on this connection, headers included.
        self.bytes_out = 0
        self.bytes_in = 0

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        """Open the TCP connection (raises OSError when refused or unreachable, and
        HttpError for an address the resolver cannot even take)."""
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except (UnicodeError, ValueError, TypeError) as exc:
            # sylink.xml's reader refuses such addresses, but one may still come from
            # elsewhere (a download URL of the manager's): socket.getaddrinfo raises
            # UnicodeError for a name IDNA cannot encode ("a..b"), ValueError for one
            # with a NUL in it. A connect that raises is a failed connect, not a crash.
            raise HttpError(f"cannot connect to {host!r:.100}:{port}: "
                            f"{type(exc).__name__}: {exc}") from None
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Send one request and read its whole answer; HttpError on any breakage."""
        hdrs = [("Host", self._host_header()), ("Content-Length", str(len(body)))]
        hdrs += list((headers or {}).items())
        try:
            if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
                self._h11.start_next_cycle()
            data = self._h11.send(h11.Request(method=method, target=target, headers=hdrs))
            if body:
                data = (data or b"") + (self._h11.send(h11.Data(data=body)) or b"")
            data = (data or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
            self._writer.write(data)
            self.bytes_out += len(data)
            await self._writer.drain()
            return await self._read_response()
        except h11.ProtocolError as exc:
            raise HttpError(f"{self.host}: not HTTP: {exc}") from None
        except (ConnectionError, OSError) as exc:
            raise HttpError(f"{self.host}: {type(exc).__name__}: {exc}") from None

    def _host_header(self) -> str:
        # As the wire carries it: IDNA for a name (h11 takes ASCII only), brackets
        # around an IPv6 literal.
        host, _, port = self.host.rpartition(":")
        if ":" in host:
            return f"[{host}]:{port}"
        try:
            return f"{host.encode('idna').decode('ascii')}:{port}"
        except UnicodeError:  # open() connected, so the name encodes; never here
            return self.host.encode("ascii", "replace").decode("ascii")

    async def _read_response(self) -> Response:
        status = 0
        chunks: list[bytes] = []
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                data = await self._reader.read(_READ)
                self.bytes_in += len(data)
                self._h11.receive_data(data)  # b"" tells h11 the peer closed
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError(f"{self.host}: connection closed before the answer")

    def close(self) -> None:
        """Close the connection (the pull-mode disconnect of step 7)."""
        if not self._writer.is_closing():
            self._writer.close()

    async def wait_closed(self) -> None:
        # Already broken: closing it is all that was asked.
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
