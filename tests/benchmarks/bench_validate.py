# ruff: noqa: E501 -- the record templates are single trace lines
"""Benchmark of `sephb validate`: events/s end to end from an NDJSON file on one core,
the transitions-machine oracle (model/oracle.py) on the same events, --jobs 2 vs 1,
and peak RSS at 1M and 10M events. Prints machine info and a Markdown table.

    .venv/bin/python tests/benchmarks/bench_validate.py [--events N] [--big N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import msgspec

# Server-side records of one pull check-in with content, then an idle one, as the
# simulated manager writes them (fields trimmed to the common shape).
_SERVER = [
    b'{"t":%d,"client":"%s","event":"CONNECT","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014}',
    b'{"t":%d,"client":"%s","event":"GET_INDEX","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"GET","path":"/index.dat","bytes_in":135,"serial":""}',
    b'{"t":%d,"client":"%s","event":"INDEX_RECEIVED","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"GET","path":"/index.dat","status":200,"bytes_out":216,"serial":"A3AF-11/26/2026 23:50:54 284","content":1,"changed":true,"source":"manager"}',
    b'{"t":%d,"client":"%s","event":"GET_URLS","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"GET","path":"/urls","bytes_in":112}',
    b'{"t":%d,"client":"%s","event":"URLS_RECEIVED","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"GET","path":"/urls","status":200,"bytes_out":220,"source":"manager","urls":["http://127.0.0.2:8014/content/1/avdefs.zip"]}',
    b'{"t":%d,"client":"%s","event":"DOWNLOAD_MANAGER","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"GET","path":"/content/1/avdefs.zip","bytes_in":128}',
    b'{"t":%d,"client":"%s","event":"CONTENT_RECEIVED","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"GET","path":"/content/1/avdefs.zip","status":200,"bytes_out":65691}',
    b'{"t":%d,"client":"%s","event":"UPLOAD_LOGS","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"POST","path":"/logs","bytes_in":1257}',
    b'{"t":%d,"client":"%s","event":"LOGS_ACKED","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"POST","path":"/logs","status":200,"bytes_out":187}',
    b'{"t":%d,"client":"%s","event":"UPLOAD_SENSORS","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"POST","path":"/sensors","bytes_in":3000}',
    b'{"t":%d,"client":"%s","event":"SENSORS_ACKED","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"method":"POST","path":"/sensors","status":200,"bytes_out":160}',
    b'{"t":%d,"client":"%s","event":"DISCONNECT","by":"server","server":"m1","role":"manager","conn":1,"addr":"127.0.0.2","port":8014,"bytes_in":4632,"bytes_out":66474}',
]
# The client's own view of the same check-in (what `sephb client --trace` writes).
_CLIENT = [
    b'{"t":%d,"client":"%s","event":"HEARTBEAT_DUE","by":"client"}',
    b'{"t":%d,"client":"%s","event":"CONNECT","by":"client","addr":"127.0.0.2","port":8014}',
    b'{"t":%d,"client":"%s","event":"CONNECTED","by":"client"}',
    b'{"t":%d,"client":"%s","event":"GET_INDEX","by":"client","addr":"127.0.0.2","port":8014}',
    b'{"t":%d,"client":"%s","event":"INDEX_RECEIVED","by":"client","content":1,"changed":true,"source":"manager"}',
    b'{"t":%d,"client":"%s","event":"GET_URLS","by":"client","addr":"127.0.0.2","port":8014}',
    b'{"t":%d,"client":"%s","event":"URLS_RECEIVED","by":"client","source":"manager"}',
    b'{"t":%d,"client":"%s","event":"DOWNLOAD_MANAGER","by":"client","addr":"127.0.0.2","port":8014}',
    b'{"t":%d,"client":"%s","event":"CONTENT_RECEIVED","by":"client"}',
    b'{"t":%d,"client":"%s","event":"UPLOAD_LOGS","by":"client","addr":"127.0.0.2","port":8014}',
    b'{"t":%d,"client":"%s","event":"LOGS_ACKED","by":"client"}',
    b'{"t":%d,"client":"%s","event":"UPLOAD_SENSORS","by":"client","addr":"127.0.0.2","port":8014}',
    b'{"t":%d,"client":"%s","event":"SENSORS_ACKED","by":"client"}',
    b'{"t":%d,"client":"%s","event":"DISCONNECT","by":"client","addr":"127.0.0.2","port":8014}',
]


def write_trace(to: str | os.PathLike[str] | IO[bytes], events: int, clients: int = 1000,
                side: str = "server") -> None:
    """A conformant trace of ``events`` records, ``clients`` clients interleaved
    round robin, streamed to a path or an open binary stream (flat memory)."""
    if not isinstance(to, (str, os.PathLike)):
        _write(to, events, clients, side)
        return
    with open(to, "wb", buffering=1 << 20) as f:
        _write(f, events, clients, side)


def _write(f: IO[bytes], events: int, clients: int, side: str) -> None:
    cycle = _SERVER if side == "server" else _CLIENT
    names = [f"c{i}".encode() for i in range(clients)]
    written, step = 0, 0
    while written < events:
        t = step * 1000
        tmpl = cycle[step % len(cycle)]
        n = min(clients, events - written)
        f.write(b"\n".join([tmpl % (t, c) for c in names[:n]]) + b"\n")
        written += n
        step += 1


def _events_per_s(path: str, events: int, runs: int, data: bool = False) -> float:
    """Median events/s of ``sephb validate``'s function on the file, end to end
    (``data``: with ``--data``)."""
    from sephb.conformance.traces.validate import validate_file

    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        res = validate_file(path, data=data)
        dt = time.perf_counter() - t0
        assert res.events == events and not res.problems, res.problems
        assert all(c.conformant for c in res.clients)
        rates.append(events / dt)
    return statistics.median(rates)


def _decode_per_s(path: str, decoder: Any, runs: int) -> float:
    """Median lines/s of decoding alone (the file already in memory, 1 MiB blocks):
    the ceiling the end-to-end figure approaches."""
    data = Path(path).read_bytes()
    blocks, at = [], 0
    while at < len(data):
        cut = data.find(b"\n", at + (1 << 20))
        cut = len(data) if cut < 0 else cut + 1
        blocks.append(data[at:cut])
        at = cut
    lines = data.count(b"\n")
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for b in blocks:
            decoder.decode_lines(b)
        rates.append(lines / (time.perf_counter() - t0))
    return statistics.median(rates)


def _oracle_per_s(path: str, n: int) -> float:
    """The oracle on the first n records of the same file (decoded beforehand: only
    the checking is timed, which flatters the oracle)."""
    from sephb.conformance.traces.properties import HIDDEN
    from sephb.conformance.traces.trace import read_trace
    from sephb.model import oracle

    recs = []
    for i, r in enumerate(read_trace(path)):
        if i >= n:
            break
        recs.append((r.client, r.event, r.t, r.changed,
                     r.source.value if r.source else None))
    hidden = HIDDEN if path.endswith("server.ndjson") else frozenset()
    t0 = time.perf_counter()
    out = oracle.check_stream(recs, "seed", hidden=hidden)
    dt = time.perf_counter() - t0
    assert all(v is None for v in out.values())
    return n / dt


class _Nothing(msgspec.Struct):
    """A record of no fields: decoding into it parses the JSON and makes no value."""


def _processes(paths: list[str], *, at_once: bool) -> None:
    """Validate each path in a process of its own, one after the other or at once."""
    code = "import sys\nfrom sephb.conformance.traces.validate import validate_file\n" \
           "validate_file(sys.argv[1])"
    procs = []
    for p in paths:
        proc = subprocess.Popen([sys.executable, "-c", code, p])
        if not at_once:
            proc.wait()
        procs.append(proc)
    for p, proc in zip(paths, procs, strict=True):
        if proc.wait():
            raise SystemExit(f"validating {p} failed")


def _rss(path: str) -> float:
    """Peak RSS (MiB) of a fresh process validating ``path``."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so the child
    # of this (big) process would report the parent's peak.
    code = ("import re,sys\nfrom sephb.conformance.traces.validate import validate_file\n"
            "r=validate_file(sys.argv[1]); assert not r.problems\n"
            "print(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read())[1])")
    out = subprocess.run([sys.executable, "-c", code, path], check=True,
                         capture_output=True, text=True).stdout
    return int(out) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000,
                    help="events of the speed traces (default 2,000,000)")
    ap.add_argument("--runs", type=int, default=5,
                    help="runs of each speed measure; the median is printed (default 5)")
    ap.add_argument("--oracle-events", type=int, default=20_000,
                    help="oracle subset, extrapolated (default 20,000)")
    ap.add_argument("--big", type=int, default=10_000_000,
                    help="events of the memory trace (default 10,000,000)")
    args = ap.parse_args()
    from sephb.conformance.traces._engine import _FAST
    from sephb.conformance.traces.trace import Record
    from sephb.conformance.traces.validate import validate_files

    print(f"machine: {platform.machine()} {platform.processor() or ''}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"medians of {args.runs} runs")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in ("client", "server"):
            p = str(Path(tmp) / f"{side}.ndjson")
            write_trace(p, args.events, side=side)
            size = os.path.getsize(p) / args.events
            fast = _events_per_s(p, args.events, args.runs)
            deep = _events_per_s(p, args.events, args.runs, data=True)
            lean = _decode_per_s(p, _FAST, args.runs)
            full = _decode_per_s(p, msgspec.json.Decoder(Record), args.runs)
            # No field at all: what parsing the JSON costs msgspec before any value is
            # made (the floor under every decoder of these lines).
            syntax = _decode_per_s(p, msgspec.json.Decoder(_Nothing), args.runs)
            slow = _oracle_per_s(p, args.oracle_events)
            rows.append((f"{side}-view records, {size:.0f} B/line", fast, deep, lean,
                         full, syntax, slow))
        print("\n| trace (1,000 clients) | validate events/s | with --data | decoding "
              "alone (the checker's fields) | decoding alone (whole `Record`) | JSON "
              "syntax alone (no field) | oracle events/s | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, fast, deep, lean, full, syntax, slow in rows:
            print(f"| {name} | {fast:,.0f} | {deep:,.0f} | {lean:,.0f} | {full:,.0f} | "
                  f"{syntax:,.0f} | {slow:,.0f} | {fast / slow:,.0f}x |")

        one = str(Path(tmp) / "one.ndjson")
        write_trace(one, args.events, clients=1, side="client")
        print(f"\none client, {args.events:,} client-view events (its history cut back "
              f"to a window as it grows): "
              f"{_events_per_s(one, args.events, args.runs):,.0f} events/s")
        os.unlink(one)

        a, b = str(Path(tmp) / "a.ndjson"), str(Path(tmp) / "b.ndjson")
        write_trace(a, args.events, side="client")
        write_trace(b, args.events, side="client")
        times: dict[str, list[float]] = {"1": [], "2": [], "apart": [], "together": []}
        for _ in range(max(1, args.runs // 2)):
            for jobs in (1, 2):
                t0 = time.perf_counter()
                validate_files([a, b], jobs=jobs)
                times[str(jobs)].append(time.perf_counter() - t0)
            # The machine's own ceiling: two independent processes, one after the
            # other and then at once (shared caches and memory, a busy host).
            for how in ("apart", "together"):
                t0 = time.perf_counter()
                _processes([a, b], at_once=how == "together")
                times[how].append(time.perf_counter() - t0)
        wall = {j: statistics.median(t) for j, t in times.items()}
        print(f"\n| two files of {args.events:,} events | wall |\n|---|---:|")
        print(f"| --jobs 1 | {wall['1']:.2f} s |")
        print(f"| --jobs 2 | {wall['2']:.2f} s |")
        print(f"| speed-up | {wall['1'] / wall['2']:.2f}x |")
        print(f"| the machine's ceiling: two separate processes at once vs one after "
              f"the other | {wall['apart'] / wall['together']:.2f}x |")

        print("\n| events (client-view, 1000 clients) | peak RSS |\n|---:|---:|")
        for n in (1_000_000, args.big):
            p = str(Path(tmp) / "big.ndjson")
            write_trace(p, n, side="client")
            print(f"| {n:,} | {_rss(p):.0f} MiB |")
            os.unlink(p)


if __name__ == "__main__":
    main()
