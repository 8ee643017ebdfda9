"""Benchmark of `sephb validate`'s memory on hostile inputs (issue 15, item 4): peak
RSS of the command, run as a subprocess, on a file of bad lines, on a file of many
distinct clients (each one short, valid check-in), and the wall time and peak RSS on
a file of many clients that each break the model once. Prints machine info, a
Markdown table and each run's verdict line (events, clients, violating, problems,
exit status), so that verdicts can be compared between versions.

    .venv/bin/python tests/benchmarks/bench_validate_memory.py \\
        [--lines 3000000] [--clients 2000000] [--violating 100000] [--keep DIR]

The inputs are generated into a temporary directory (removed at the end, unless
``--keep DIR`` names where to write them). The 2,000,000-client file is about
1 GB; ``--clients 20000`` and the like run it small.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

#: A short valid check-in in the client's own view (pull, index unchanged): ten
#: records, as `sephb client --trace` writes them, fields trimmed.
CHECK_IN = [
    b'{"t":%d,"client":"%s","event":"HEARTBEAT_DUE"}',
    b'{"t":%d,"client":"%s","event":"CONNECT"}',
    b'{"t":%d,"client":"%s","event":"CONNECTED"}',
    b'{"t":%d,"client":"%s","event":"GET_INDEX"}',
    b'{"t":%d,"client":"%s","event":"INDEX_RECEIVED","changed":false}',
    b'{"t":%d,"client":"%s","event":"UPLOAD_LOGS"}',
    b'{"t":%d,"client":"%s","event":"LOGS_ACKED"}',
    b'{"t":%d,"client":"%s","event":"UPLOAD_SENSORS"}',
    b'{"t":%d,"client":"%s","event":"SENSORS_ACKED"}',
    b'{"t":%d,"client":"%s","event":"DISCONNECT"}',
]
#: Lines that cannot be read, of several kinds (each message is different).
BAD = [
    b"{bad",
    b'{"t":1,"client":"x","event":"FETCH"}',
    b'{"client":"x","event":"CONNECT"}',
    b'{"t":"1","client":"x","event":"CONNECT"}',
    b"[1,2]",
]
#: Clients interleaved at a time (round robin), as a fleet's manager sees them.
BATCH = 1000


def write_bad(f: IO[bytes], lines: int) -> None:
    """``lines`` bad lines (cycling through :data:`BAD`) after one good record."""
    f.write(CHECK_IN[0] % (0, b"ok") + b"\n")
    chunk = b"\n".join(BAD[i % len(BAD)] for i in range(100_000)) + b"\n"
    left = lines
    while left >= 100_000:
        f.write(chunk)
        left -= 100_000
    f.write(b"".join(BAD[i % len(BAD)] + b"\n" for i in range(left)))


def write_clients(f: IO[bytes], clients: int, violating: bool = False) -> None:
    """``clients`` distinct clients, each one check-in (or, ``violating``: a
    heartbeat and then a request the model does not allow in that state),
    :data:`BATCH` interleaved at a time."""
    cycle = [CHECK_IN[0], CHECK_IN[1], CHECK_IN[3]] if violating else CHECK_IN
    for base in range(0, clients, BATCH):
        names = [b"c%d" % i for i in range(base, min(base + BATCH, clients))]
        for step, tmpl in enumerate(cycle):
            f.write(b"\n".join([tmpl % (1000 * step, c) for c in names]) + b"\n")


#: Runs a command and prints its peak RSS (KiB): the measuring process is small,
#: and ru_maxrss of its children is the command's own peak.
_MEASURE = ("import resource, subprocess, sys\n"
            "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
            "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak(path: str) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, exit status) of ``sephb validate path``."""
    cmd = [sys.executable, "-m", "sephb.conformance.cli", "validate", path]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], check=True,
                         capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    rc, kib = out.split()
    return int(kib) / 1024, wall, int(rc)


def verdicts(path: str) -> str:
    """The totals of ``sephb validate --json``: what must not change between
    versions (run on the small inputs only: the JSON lists every client)."""
    out = subprocess.run([sys.executable, "-m", "sephb.conformance.cli", "validate",
                          path, "--json"], capture_output=True, text=True).stdout
    doc = json.loads(out)
    return ", ".join(f"{k} {doc[k]}" for k in ("events", "clients", "violations",
                                                "problems", "exit"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=3_000_000,
                    help="bad lines of the first file (default 3,000,000)")
    ap.add_argument("--clients", type=int, default=2_000_000,
                    help="distinct clients of the second (default 2,000,000)")
    ap.add_argument("--violating", type=int, default=100_000,
                    help="clients of the third, each breaking the model once "
                         "(default 100,000)")
    ap.add_argument("--json-totals", action="store_true",
                    help="also print the --json totals of each file (slow on big "
                         "files: the JSON lists every client)")
    ap.add_argument("--keep", metavar="DIR",
                    help="write the inputs here and keep them (default: a temporary "
                         "directory)")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(args.keep or tmp)
        where.mkdir(parents=True, exist_ok=True)
        cases: list[tuple[str, str, Callable[[IO[bytes]], None]]] = [
            (f"{args.lines:,} bad lines", "bad.ndjson",
             lambda f: write_bad(f, args.lines)),
            (f"{args.clients:,} distinct clients, one check-in each", "clients.ndjson",
             lambda f: write_clients(f, args.clients)),
            (f"{args.violating:,} clients, each breaking the model", "violating.ndjson",
             lambda f: write_clients(f, args.violating, violating=True)),
        ]
        print("\n| input | size | peak RSS | wall | exit |\n|---|---:|---:|---:|---:|")
        totals = []
        for what, name, write in cases:
            path = str(where / name)
            with open(path, "wb", buffering=1 << 20) as f:
                write(f)
            rss, wall, rc = peak(path)
            size = os.path.getsize(path) / (1 << 20)
            print(f"| {what} | {size:,.0f} MiB | {rss:,.0f} MiB | {wall:.1f} s | {rc} |",
                  flush=True)
            if args.json_totals:
                totals.append(f"{what}: {verdicts(path)}")
            if not args.keep:
                os.unlink(path)
        for line in totals:
            print(line)


if __name__ == "__main__":
    main()
