"""Heartbeat sizes on the wire: the reference client against a simulated manager.

Measures the bytes of one check-in (both directions, headers included) with no new
logs and no content (the seed's idle heartbeat, 3-5 KB) and with maximum logging
(256,000 bytes of logs; the seed's 200-300 KB), and prints them for the README.
    .venv/bin/python tests/benchmarks/bench_sizes.py
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from sephb.conformance.client import ClientOptions, ReferenceClient
from sephb.conformance.site import Fleet
from sephb.conformance.site.config import FleetConfig
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.sylink import Sylink
from sephb.model.interpretations import get
from sephb.model.protocol import FULL_HEARTBEAT_BYTES, IDLE_HEARTBEAT_BYTES


async def measure(log_bytes: int, address: str) -> tuple[int, int]:
    async with Fleet(FleetConfig.loopback([address]), clock=Clock(0.001)) as fleet:
        with tempfile.TemporaryDirectory() as tmp:
            sy = Sylink.build([[(address, fleet["m1"].port)]])
            sizes = []
            for logs in (0, log_bytes):  # the first check-in also fetches content
                opts = ClientOptions(sylink=sy, state_dir=Path(tmp), time_scale=0.001,
                                     interpretation=get("seed"), heartbeats=1,
                                     client_id="client-0001", log_bytes=logs, fsync=False)
                await ReferenceClient(opts, fleet.recorder).run()
                last = [r for r in fleet.records
                        if r.by == "client" and r.event == "DISCONNECT"][-1]
                sizes.append(((last.bytes_out or 0), (last.bytes_in or 0)))
            return sizes[1]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    print("| heartbeat | client -> manager | manager -> client | total | seed's range |")
    print("|---|---:|---:|---:|---:|")
    for name, logs, (lo, hi), addr in (
        ("idle (no logs, no content)", 0, IDLE_HEARTBEAT_BYTES, "127.0.9.3"),
        ("full logging (256,000 B of logs)", 256_000, FULL_HEARTBEAT_BYTES, "127.0.9.4"),
    ):
        out, inn = asyncio.run(measure(logs, addr))
        total = out + inn
        print(f"| {name} | {out:,} B | {inn:,} B | {total:,} B ({total / 1024:.1f} KiB)"
              f" | {lo // 1024}-{hi // 1024} KiB |")


if __name__ == "__main__":
    main()
