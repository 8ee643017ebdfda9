"""Many reference clients against one simulated manager, over real sockets.

Runs `sephb manager` (one manager, no GUP) as its own process and N reference clients
in this process's event loop, at a time scale (default 0.01: the 300 s interval lasts
3 s, the 30,000 ms session limit 300 ms). Client starts are spread over one interval,
as sylink.xml's RandomizationRange spreads a real fleet. Prints check-ins per second
(those that got through step 6; failed ones apart), errors, log accounting (none
lost, none stored twice) and peak memory of both processes.

Not a test: figures go in the README. Run it with the project's venv:
    .venv/bin/python tests/benchmarks/bench_fleet.py --clients 500 --heartbeats 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import _manager
from _manager import fleet_toml

from sephb.conformance.client import ClientOptions, ReferenceClient
from sephb.conformance.client.store import ClientState
from sephb.conformance.traces.clock import Clock
from sephb.conformance.traces.sylink import Sylink
from sephb.conformance.traces.trace import Recorder
from sephb.model.interpretations import get

FAILURES = {"CONNECT_FAILED", "SESSION_TIMEOUT", "REQUEST_FAILED", "DOWNLOAD_FAILED",
            "CONNECTION_LOST"}


def start_manager(tmp: Path, address: str, scale: float) -> tuple[subprocess.Popen[str],
                                                                   str, int]:
    proc, control, ports = _manager.start_manager(tmp, fleet_toml([address]),
                                                  "--time-scale", str(scale))
    return proc, control, ports["m1"]


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def run_clients(args: argparse.Namespace, tmp: Path, address: str, port: int
                      ) -> tuple[list[ReferenceClient], Recorder, float]:
    recorder = Recorder(Clock(args.time_scale), keep=True)
    sy = Sylink.build([[(address, port)]], heartbeat_s=300)
    clients = [
        ReferenceClient(ClientOptions(
            sylink=sy, state_dir=tmp / f"c{i}", interpretation=get(args.interpretation),
            time_scale=args.time_scale, heartbeats=args.heartbeats, client_id=f"c{i}",
            log_bytes=args.log_bytes, seed=i, fsync=False), recorder)
        for i in range(args.clients)
    ]
    spread = 300 * args.time_scale  # one interval, wall seconds

    async def one(i: int, c: ReferenceClient) -> None:
        await asyncio.sleep(spread * i / len(clients))
        await c.run()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
    return clients, recorder, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--heartbeats", type=int, default=20)
    ap.add_argument("--time-scale", type=float, default=0.01)
    ap.add_argument("--log-bytes", type=int, default=2000,
                    help="log volume each client produces per heartbeat")
    ap.add_argument("--interpretation", default="seed")
    ap.add_argument("--address", default="127.0.9.2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        proc, control, port = start_manager(tmp, args.address, args.time_scale)
        try:
            clients, recorder, wall = asyncio.run(run_clients(args, tmp, args.address,
                                                              port))
            with urllib.request.urlopen(control + "/control/state", timeout=60) as r:
                state: dict[str, Any] = json.loads(r.read())
            mgr_peak = peak_rss_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        failures = sum(1 for r in recorder.records if r.event in FAILURES)
        # A check-in counts when it got through step 6 (the sensors acknowledged);
        # every check-in ends with DISCONNECT (pull) or HOLD (push), failed ones too.
        own = [r for r in recorder.records if r.by == "client"]
        checkins = sum(1 for r in own if r.event == "SENSORS_ACKED")
        failed = sum(1 for r in own if r.event in ("DISCONNECT", "HOLD")) - checkins
        # Stored twice: one log id under more than one client key of the site (a
        # site keeps one copy per client, so counting within a client finds none).
        keys = Counter(lg["id"] for v in state["clients"].values()
                       for lg in v.get("logs", []))
        twice = sum(n - 1 for n in keys.values())
        lost = 0
        for c in clients:
            cid = c.client_id
            got = [lg["id"] for lg in state["clients"].get(cid, {}).get("logs", [])]
            queue = ClientState(c.opts.state_dir, fsync=False).logs
            still = {e.id for e in queue.pending()}
            produced = len(set(got) | still)
            # every entry the client produced is either stored once or still queued
            expected = (args.heartbeats + 1) * -(-args.log_bytes // 8192)
            lost += max(0, expected - produced)
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    print(f"{args.clients} clients x {args.heartbeats} heartbeats, time scale "
          f"{args.time_scale}, {args.log_bytes} log bytes per heartbeat, "
          f"interpretation {args.interpretation}")
    print()
    print("| check-ins | failed check-ins | wall s | check-ins/s | failure events "
          "| logs lost | logs twice | peak RSS clients | peak RSS manager |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {checkins} | {failed} | {wall:.1f} | {checkins / wall:.0f} | {failures} "
          f"| {lost} | {twice} | {own_peak / 1024:.0f} MiB | {mgr_peak / 1024:.0f} MiB |")


if __name__ == "__main__":
    main()
