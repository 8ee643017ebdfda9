"""The latency the monitor's relay adds to each request, against the same upstream
directly, in one run.

Run it as a script (it is not a pytest test and asserts nothing about time)::

    .venv/bin/python tests/benchmarks/bench_monitor.py
    .venv/bin/python tests/benchmarks/bench_monitor.py --requests 5000

Three processes, as in use: a small HTTP/1.1 upstream (an asyncio protocol answering
each request with 200 and a 64-byte body), a relay
(:class:`~sephb.conformance.monitor._relay.Relay`) in front of it (its callbacks keep
what they are given, as a monitor would), and this process as the client, with
blocking sockets and two keep-alive connections: one to the upstream, one through the
relay. Requests are sequential and paired: each round sends one request on each
connection (which goes first alternates) and times each from the ``send`` to the
answer's last byte with ``time.perf_counter``. The added latency of a round is relay
minus direct; the median and p99 of those are printed (ms), with the direct and
relayed latencies themselves. ``--warmup`` rounds are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

REQUEST = b"GET /sylink?id=1 HTTP/1.1\r\nHost: manager\r\nUser-Agent: bench\r\n\r\n"
BODY = b"x" * 64
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
          % len(BODY)) + BODY


class _Upstream(asyncio.Protocol):
    """Answers every request (no body) with ANSWER, keep-alive."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (i := self.buf.find(b"\r\n\r\n")) >= 0:
            self.buf = self.buf[i + 4:]
            assert self.transport is not None
            self.transport.write(ANSWER)


async def serve_upstream() -> None:
    server = await asyncio.get_running_loop().create_server(_Upstream, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


async def serve_relay(upstream_port: int) -> None:
    from sephb.conformance.monitor._relay import ConnEvent, Exchange, Relay

    requests: list[Exchange] = []
    exchanges: list[Exchange] = []
    conns: list[ConnEvent] = []
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", upstream_port),
                  on_request=requests.append, on_exchange=exchanges.append,
                  on_conn=conns.append)
    _, port = await relay.start()
    print(port, flush=True)
    await asyncio.Event().wait()


def spawn(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"{' '.join(args)} did not start")
    return proc, int(line)


def one(sock: socket.socket) -> float:
    """One request on ``sock``: seconds until the whole answer came."""
    t0 = time.perf_counter()
    sock.sendall(REQUEST)
    got = 0
    while got < len(ANSWER):
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the connection closed")
        got += len(chunk)
    return time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000,
                    help="timed rounds: one request direct, one relayed (default 2000)")
    ap.add_argument("--warmup", type=int, default=200, help="rounds not counted (200)")
    ap.add_argument("--role", choices=["upstream", "relay"], help=argparse.SUPPRESS)
    ap.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "upstream":
        asyncio.run(serve_upstream())
        return 0
    if args.role == "relay":
        asyncio.run(serve_relay(args.upstream_port))
        return 0

    upstream, up_port = spawn("--role", "upstream")
    relay, relay_port = spawn("--role", "relay", "--upstream-port", str(up_port))
    try:
        direct = socket.create_connection(("127.0.0.1", up_port))
        relayed = socket.create_connection(("127.0.0.1", relay_port))
        for s in (direct, relayed):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        d_times: list[float] = []
        r_times: list[float] = []
        for i in range(args.warmup + args.requests):
            if i % 2:
                d, r = one(direct), one(relayed)
            else:
                r, d = one(relayed), one(direct)
            if i >= args.warmup:
                d_times.append(d * 1000)
                r_times.append(r * 1000)
        direct.close()
        relayed.close()
    finally:
        for proc in (relay, upstream):
            proc.terminate()
            proc.wait()

    added = [r - d for r, d in zip(r_times, d_times, strict=True)]
    print(f"machine: {platform.platform()}, nproc {os.cpu_count()}, "
          f"Python {platform.python_version()}")
    print(f"{args.requests} sequential keep-alive requests each way "
          f"({len(REQUEST)} B request, {len(ANSWER)} B answer), paired rounds")
    print(f"{'':>18} {'median':>8} {'p99':>8}   (ms)")
    for name, values in (("direct", d_times), ("through the relay", r_times),
                         ("added by relay", added)):
        print(f"{name:>18} {statistics.median(values):8.3f} "
              f"{percentile(values, 0.99):8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
