"""SIGKILL the reference client at random, again and again, under rotating faults:
are logs lost or stored twice?

Runs `sephb manager` (two managers and a GUP on loopback) as its own process, then
`sephb client` as configured by default (no --client-id; the Makefile's command:
sylink.xml, state dir, time scale, a --log-dir spool, plus --log-bytes so that it makes
logs of its own) again and again on one state directory. Each run is SIGKILLed:

* every other kill comes right after the client's trace says it sent a log upload
  (within a few ms): where the manager may have stored the logs but the client not
  yet removed them from its queue -- the window in which the attack run of issue 15
  found 58 of 212 logs stored twice (a new client id per process);
* the others at a random moment of its first seconds.

Before each run the bench writes 0-3 entries into the spool and sets the next fault
of a rotation on manager 1 (refuse, stall, reset, 503, garbage, on various steps,
or none) through the control API, and now and then publishes new content. After each
kill it reads the client's durable queue. At the end the faults are cleared and one
last run, not killed, delivers what is left.

Judged, for every log the bench wrote into the spool and every entry it saw in the
queue after a kill:

* **lost**: not stored by the site, and not still queued or spooled at the end;
* **stored twice**: stored under more than one client id (the site keeps one copy per
  client id, so a restart under a new id stores a re-sent log again);
* **wrong**: stored with other bytes than were queued.

All three must be 0, the client must never die by itself, and it must say nothing on
stderr. Exit status 1 otherwise. Run it with the project's venv:

    .venv/bin/python tests/benchmarks/bench_kill.py            # 200 kills, ~4 minutes
    .venv/bin/python tests/benchmarks/bench_kill.py --kills 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _manager
from _manager import fleet_toml

from sephb.conformance.client.store import LOGS_DIR, LogQueue
from sephb.conformance.traces import sylink
from sephb.conformance.traces.sylink import Sylink

#: Faults set on manager 1 before successive runs: (mode, path); "up" clears them.
ROTATION: list[tuple[str, str | None]] = [
    ("up", None), ("error", "/logs"), ("reset", "/logs"), ("stall", "/logs"),
    ("garbage", "/logs"), ("refuse", None), ("error", "/sensors"),
    ("reset", "/index.dat"), ("stall", "/content"), ("garbage", "/urls"),
]

#: Wall seconds to wait for a run's first log upload before killing it anyway (a
#: fault may keep it from ever getting there).
UPLOAD_WAIT_S = 3.0


@dataclass
class Figures:
    """What a run of the bench found."""

    kills: int = 0
    #: Kills that came right after a log upload was sent.
    at_upload: int = 0
    #: Runs that ended by themselves before the kill (a crash, unless the last).
    died: int = 0
    #: Log entries written into the spool, and the client's own seen in its queue.
    spooled: int = 0
    own: int = 0
    #: Distinct log ids the site stored, and under how many client ids.
    stored: int = 0
    client_ids: int = 0
    lost: int = 0
    twice: int = 0
    wrong: int = 0
    #: Still queued or spooled at the end (owed, not lost).
    left: int = 0
    #: Uploads the site recognised as re-sent (dropped by id), when it says so.
    resent: int | None = None
    #: What the clients said on stderr, and what the bench found damaged in the queue.
    complaints: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.twice or self.wrong or self.died
                    or self.complaints)


def _post(control: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(control + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _get(control: str, path: str) -> bytes:
    with urllib.request.urlopen(control + path, timeout=120) as r:
        data: bytes = r.read()
        return data


def start_manager(tmp: Path, addresses: list[str]) -> tuple[subprocess.Popen[str], str,
                                                               dict[str, int]]:
    """`sephb manager` with m1, m2 (priorities 1, 2) and a GUP on ``addresses``;
    the process, the control API's base URL, and each server's port."""
    m1, m2, gup = addresses
    proc, control, ports = _manager.start_manager(tmp, fleet_toml([m1, m2], gup))
    return proc, control + "/control", ports


def _spool(spool: Path, entry_id: str, text: str) -> None:
    """An entry as the conformance suite writes one (docs/adapters.md)."""
    tmp = spool / f".{entry_id}.tmp"
    tmp.write_text(json.dumps({"id": entry_id, "t": 0, "text": text}))
    tmp.rename(spool / f"{entry_id}.log")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _wait_for_upload(trace: Path, proc: subprocess.Popen[bytes], uploads: int) -> bool:
    """Poll the run's trace (flushed per record) until it holds ``uploads`` log
    uploads; False when the process ended or the wait ran out first."""
    deadline = time.monotonic() + UPLOAD_WAIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if trace.read_bytes().count(b'"UPLOAD_LOGS"') >= uploads:
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    return False


def run(kills: int, *, addresses: list[str], time_scale: float = 0.005, seed: int = 15,
        log_bytes: int = 3000, out: Any = None) -> Figures:
    """Kill a client ``kills`` times, then judge (see the module docstring)."""
    rnd = random.Random(seed)
    fig = Figures()
    expected: dict[str, str] = {}  # log id -> sha256 of the text it must be stored with
    spooled: set[str] = set()
    own: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="sephb-kill-") as tmpdir:
        tmp = Path(tmpdir)
        state, spool = tmp / "state", tmp / "spool"
        spool.mkdir()
        manager, control, ports = start_manager(tmp, addresses)
        try:
            sy = tmp / "sylink.xml"
            sylink.save(Sylink.build([[(addresses[0], ports["m1"])],
                                      [(addresses[1], ports["m2"])]],
                                     gup=addresses[2]), sy)

            def client(n: int, *extra: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
                trace, err = tmp / f"trace-{n}.ndjson", tmp / f"stderr-{n}.txt"
                with open(err, "wb") as stderr:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "sephb.conformance.cli", "client",
                         "--sylink", str(sy), "--state-dir", str(state),
                         "--time-scale", str(time_scale), "--log-dir", str(spool),
                         "--log-bytes", str(log_bytes), "--seed", str(n),
                         "--trace", str(trace), *extra],
                        stdout=subprocess.DEVNULL, stderr=stderr)
                return proc, trace, err

            def complaints(err: Path) -> None:
                fig.complaints += [f"run {n}: {line}" for line in
                                   err.read_text(errors="replace").splitlines()]

            for n in range(kills):
                mode, path = ROTATION[n % len(ROTATION)]
                _post(control, "/m1/fault", {"mode": "up"})  # clears every fault
                if mode != "up":
                    _post(control, "/m1/fault", {"mode": mode} | (
                        {"path": path} if path else {}))
                if n % 7 == 3:
                    _post(control, "/publish", {})
                for k in range(rnd.randint(0, 3)):
                    entry_id, text = f"kill-{n}-{k}", f"bench entry {n}.{k}\n" * (k + 1)
                    _spool(spool, entry_id, text)
                    expected[entry_id] = _sha(text)
                    spooled.add(entry_id)
                proc, trace, err = client(n)
                if n % 2 == 0:
                    fig.at_upload += _wait_for_upload(trace, proc, rnd.randint(1, 2))
                    time.sleep(rnd.uniform(0, 0.004))
                else:
                    time.sleep(rnd.uniform(0.3, 2.0))
                proc.send_signal(signal.SIGKILL)
                if proc.wait() != -signal.SIGKILL:
                    fig.died += 1
                fig.kills += 1
                complaints(err)
                queue = LogQueue(state / LOGS_DIR, fsync=False)
                for entry in queue.pending():
                    if entry.id not in spooled:
                        own.add(entry.id)
                    expected.setdefault(entry.id, _sha(entry.data))
                fig.complaints += [f"after kill {n}: {p}" for p in queue.problems]
                if out is not None and (n + 1) % 20 == 0:
                    print(f"  {n + 1} kills", file=out, flush=True)

            # The last run, not killed, with no fault: delivers what is left.
            _post(control, "/m1/fault", {"mode": "up"})
            proc, _, err = client(kills, "--heartbeats", "3")
            if proc.wait(timeout=300) != 0:
                fig.died += 1
            complaints(err)
            state_doc = json.loads(_get(control, "/state"))
            try:
                records = [json.loads(line) for line in
                           _get(control, "/trace").splitlines() if line.strip()]
                fig.resent = sum(len(r.get("duplicates") or []) for r in records
                                 if r.get("event") == "LOGS_ACKED"
                                 and r.get("by") == "server")
            except (OSError, ValueError):
                fig.resent = None  # the control API says nothing about it
        finally:
            manager.terminate()
            manager.wait(timeout=30)

        # -- judge --
        keys: Counter[str] = Counter()
        for logs in (v.get("logs", []) for v in state_doc["clients"].values()):
            for log in logs:
                keys[log["id"]] += 1
                sha = log.get("sha256") or _sha(log.get("data", ""))
                if log["id"] in expected and sha != expected[log["id"]]:
                    fig.wrong += 1
        left = {e.id for e in LogQueue(state / LOGS_DIR, fsync=False).pending()}
        left |= {p.name[:-len(".log")] for p in spool.glob("*.log")}
        fig.spooled, fig.own = len(spooled), len(own)
        fig.stored = len(keys)
        fig.client_ids = len(state_doc["clients"])
        fig.twice = sum(n - 1 for n in keys.values())
        fig.lost = len(set(expected) - set(keys) - left)
        fig.left = len(left)
    return fig


def report(fig: Figures, out: Any) -> None:
    print(f"{fig.kills} SIGKILLs ({fig.at_upload} right after a log upload was sent), "
          f"{fig.died} runs that died by themselves", file=out)
    print(f"logs: {fig.spooled} written to the spool, {fig.own} of the client's own "
          f"seen queued; {fig.stored} stored under {fig.client_ids} client id(s); "
          f"{fig.left} still owed at the end; "
          + ("re-sent and recognised: ?" if fig.resent is None
             else f"re-sent and recognised: {fig.resent}"), file=out)
    print(f"logs lost: {fig.lost}   logs stored twice: {fig.twice}   "
          f"stored with other bytes: {fig.wrong}", file=out)
    for line in fig.complaints[:20]:
        print(f"  {line}", file=out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--time-scale", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--log-bytes", type=int, default=3000,
                    help="the client's own log volume per heartbeat")
    ap.add_argument("--addresses", default="127.0.11.2,127.0.11.3,127.0.11.4",
                    help="loopback addresses of m1, m2 and the GUP")
    args = ap.parse_args()
    if args.kills < 1:
        ap.error("--kills must be at least 1")
    addresses = args.addresses.split(",")
    if len(addresses) != 3:
        ap.error("--addresses: three addresses, comma-separated")
    t0 = time.perf_counter()
    fig = run(args.kills, addresses=addresses, time_scale=args.time_scale,
              seed=args.seed, log_bytes=args.log_bytes, out=sys.stdout)
    report(fig, sys.stdout)
    print(f"wall: {time.perf_counter() - t0:.0f} s", file=sys.stdout)
    return 0 if fig.ok else 1


if __name__ == "__main__":
    sys.exit(main())
