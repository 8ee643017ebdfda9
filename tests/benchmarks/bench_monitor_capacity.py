"""How many reference clients one `sephb monitor` process holds at a time scale (default
0.01) with no false finding.

Run it as a script (it is not a pytest test and asserts nothing about time)::

    .venv/bin/python tests/benchmarks/bench_monitor_capacity.py
    .venv/bin/python tests/benchmarks/bench_monitor_capacity.py --max-clients 16

For N in a doubling series (1, 2, 4, ... up to ``--max-clients``, stopping at the
first N that fails), each round starts its own processes on fresh 127.x addresses:
`sephb manager` (one manager and a GUP, pull mode), `sephb monitor` in front of it
(``--trace``), then N reference clients at once (`sephb client --heartbeats K`, each
with its own ``--client-id``, state directory and ``--trace``). When every client has
exited the monitor gets SIGINT and prints the `sephb validate` summary. The reference
client conforms, so every violating client and every "presumptively NON-CONFORMANT"
line is a false finding.

A row per round: the monitor's exit status; the violating clients of its summary
(false findings); its presumptive lines; whether `sephb validate TRACE --data --sylink
MINE --json` offline agrees with the live summary (exit status and violating
clients); the monitor's CPU seconds (``wait4``'s rusage of the process, so the
summary is in) and its busiest 1 s of CPU (a share of one core: the monitor is one
asyncio thread, near 100 % it is saturated); the round's wall time (first client
started to last client exited); the machine's load (mean and peak run queue,
``procs_running`` of /proc/stat sampled every 0.25 s, on ``os.cpu_count()`` cores);
the clients that failed (exit status not 0) and those whose own trace (the client's
view, ``sephb validate --data``) is not conformant: late clients.

A failing round is said to be the machine's when the clients' own traces show them
late too (the run queue was past the cores, everyone was slow), the monitor's when the
clients were on time by their own clocks but the monitor's view was not.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _manager

from sephb.conformance.traces.sylink import Sylink, save
from sephb.model.protocol import Action, Mode

SEPHB = [sys.executable, "-m", "sephb.conformance.cli"]
TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
SUMMARY = re.compile(r"(\d+) events?, (\d+) clients?, (\d+) violating")

#: Every process this script started and has not reaped yet (killed on the way out).
LIVE: list[subprocess.Popen[Any]] = []


@dataclass
class Row:
    n: int
    run: int
    exit: int | None = None
    violating: int | None = None
    summary: str = ""
    presumptive: list[str] = field(default_factory=list)
    #: next-heartbeat deadlines said after the client had exited (it stopped after
    #: --heartbeats; the monitor cannot know): not false findings, shown apart
    after_exit: list[str] = field(default_factory=list)
    offline_exit: int | None = None
    offline_violating: int | None = None
    agree: bool = False
    cpu_s: float = 0.0
    peak_core: float = 0.0
    wall_s: float = 0.0
    runq_mean: float = 0.0
    runq_max: int = 0
    loadavg1: float = 0.0
    clients_failed: int = 0
    clients_late: int = 0
    client_walls: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.exit == 0 and self.violating == 0 and not self.presumptive
                and self.agree and self.clients_failed == 0)

    def blame(self) -> str:
        if self.ok:
            return "-"
        if self.clients_failed or self.clients_late:
            return "machine (clients late by their own traces)"
        if self.peak_core >= 0.8:
            return "monitor (saturated: near a whole core; clients on time by their " \
                   "own traces)"
        if self.runq_mean > CORES:
            return (f"machine (clients on time by their own traces, the monitor far "
                    f"from a core, but {self.runq_mean:.1f} runnable on {CORES} cores: "
                    f"a process waits for a core between the monitor and the client; "
                    f"see the gap lines)")
        return "monitor (clients on time, the machine not overloaded)"


# -- the machine ---------------------------------------------------------------

def procs_running() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("procs_running"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` (clock ticks); 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Sampler:
    """Every ``period`` s: the run queue and the monitor's CPU ticks, in a thread."""

    def __init__(self, pid: int, period: float = 0.25) -> None:
        self.pid, self.period = pid, period
        self.runq: list[int] = []
        self.cpu: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            # this sampler is itself running when it reads: not counted
            self.runq.append(max(0, procs_running() - 1))
            self.cpu.append((time.monotonic(), cpu_ticks(self.pid)))
            self._stop.wait(self.period)

    def peak_core(self, window: float = 1.0) -> float:
        """The monitor's busiest ``window`` s of CPU, as a share of one core."""
        best = 0.0
        j = 0
        for i, (t, ticks) in enumerate(self.cpu):
            while j < i and t - self.cpu[j][0] > window + 1e-6:
                j += 1
            t0, k0 = self.cpu[j]
            if t - t0 >= window * 0.75:
                best = max(best, (ticks - k0) / TICK / (t - t0))
        return best


# -- processes -------------------------------------------------------------------

def spawn(cmd: list[str], **kw: Any) -> subprocess.Popen[Any]:
    proc = subprocess.Popen(cmd, **kw)
    LIVE.append(proc)
    return proc


def reap(proc: subprocess.Popen[Any], guard_s: float) -> tuple[int, float]:
    """Wait for ``proc`` (``guard_s`` at most, then kill it): its exit status and its
    CPU seconds (user + system, from ``wait4``)."""
    if proc.returncode is not None:  # reaped already (Popen.poll): no rusage left
        LIVE.remove(proc)
        return proc.returncode, 0.0
    end = time.monotonic() + guard_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > end:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    LIVE.remove(proc)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def cleanup() -> None:
    for proc in list(LIVE):
        if proc.poll() is None:
            proc.kill()
    for proc in list(LIVE):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        LIVE.remove(proc)


class Drain:
    """A process's stdout lines as they come, with their wall time (a thread)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.seen = threading.Condition()
        assert proc.stdout is not None
        out = proc.stdout

        def read() -> None:
            for line in out:
                with self.seen:
                    self.lines.append((time.monotonic(), line.rstrip("\n")))
                    self.seen.notify_all()
            with self.seen:
                self.lines.append((time.monotonic(), "<eof>"))
                self.seen.notify_all()

        self.thread = threading.Thread(target=read, daemon=True)
        self.thread.start()

    def wait_for(self, text: str, guard_s: float = 60) -> None:
        end = time.monotonic() + guard_s
        with self.seen:
            while not any(text in ln for _, ln in self.lines):
                if any(ln == "<eof>" for _, ln in self.lines) or time.monotonic() > end:
                    raise SystemExit(f"the monitor did not say {text!r}: "
                                     f"{[ln for _, ln in self.lines]}")
                self.seen.wait(0.5)

    def text(self) -> list[str]:
        return [ln for _, ln in self.lines if ln != "<eof>"]


def validate(trace: Path, sy: Path) -> tuple[int, dict[str, Any]]:
    res = subprocess.run([*SEPHB, "validate", str(trace), "--data", "--sylink", str(sy),
                          "--json"], capture_output=True, text=True, timeout=300)
    try:
        doc = json.loads(res.stdout)
    except json.JSONDecodeError:
        doc = {"error": res.stdout[-500:] + res.stderr[-500:]}
    return res.returncode, doc


def violating_clients(doc: Any) -> set[str]:
    """The clients a `validate --json` document says are not conformant."""
    return {str(c["client"]) for f in doc.get("files", [])
            for c in f.get("clients", []) if not c.get("conformant", True)}


def _records(path: Path, cid: str, monitor: bool) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines()[1:]:
        r = json.loads(line)
        if r.get("client") != cid:
            continue
        if monitor and r.get("role") == "gup" and r["event"] in ("CONNECT",
                                                                  "DISCONNECT"):
            continue  # a GUP download's own connection: the client records none
        out.append(r)
    return out


def split_gap(tmp: Path, cid: str, scale: float) -> str:
    """Where the longest answer -> next action gap of ``cid`` in the monitor's view
    went, by the client's own trace: the k-th record of each name in both traces is
    one exchange; the clocks (each process's own start) are aligned by the fastest
    request (the smallest monitor - client time of an action: the request seen at
    once). ``read`` is the answer forwarded by the relay to the client reading it,
    ``client`` the client's own answer -> action, ``seen`` the client acting to the
    monitor stamping it (wall ms)."""
    mon = _records(tmp / "monitor.ndjson", cid, True)
    own = _records(tmp / f"{cid}.ndjson", cid, False)
    actions = {a.value for a in Action}
    pos: dict[str, int] = {}
    own_by: dict[tuple[str, int], int] = {}
    for r in own:
        k = pos.get(r["event"], 0)
        pos[r["event"]] = k + 1
        own_by[r["event"], k] = r["t"]
    pos.clear()
    pairs: list[tuple[str, int, int]] = []  # event, monitor t, client t
    for r in mon:
        k = pos.get(r["event"], 0)
        pos[r["event"]] = k + 1
        if (r["event"], k) in own_by:
            pairs.append((r["event"], r["t"], own_by[r["event"], k]))
    sent = [m - c for e, m, c in pairs if e in actions]
    if not sent or len(pairs) < 2:
        return f"{cid}: no exchanges to align"
    off = min(sent)
    best: tuple[int, int, int] | None = None
    for a, b in itertools.pairwise(pairs):
        if a[0] not in actions and b[0] in actions:
            gap = b[1] - a[1]
            if best is None or gap > best[0]:
                best = (gap, pairs.index(a), pairs.index(b))
    if best is None:
        return f"{cid}: no answer -> action pair"
    gap, i, j = best
    (ea, ma, ca), (eb, mb, cb) = pairs[i], pairs[j]
    ms = scale  # model ms -> wall ms: x * scale
    return (f"{cid}: {ea} -> {eb} took {gap * ms:.1f} ms wall in the monitor's view: "
            f"read {(ca + off - ma) * ms:.1f} ms (relay forwarded -> client read), "
            f"client {(cb - ca) * ms:.1f} ms (its own trace), seen "
            f"{(mb - cb - off) * ms:.1f} ms (client acted -> monitor stamped)")


# -- one round -------------------------------------------------------------------

def one_round(args: argparse.Namespace, tmp: Path, n: int, run: int, k: int) -> Row:
    row = Row(n, run)
    second = 30 + os.getpid() % 200
    m1, gup = f"127.{second}.{k}.2", f"127.{second}.{k}.3"
    listen = f"127.{second}.{100 + k}.0"
    mgr, _control, _ports = _manager.start_manager(
        tmp, _manager.fleet_toml([m1], gup=gup), "--time-scale", str(args.time_scale))
    LIVE.append(mgr)
    Drain(mgr)  # its pipe must not fill
    upstream, mine, trace = tmp / "upstream.xml", tmp / "client-sylink.xml", \
        tmp / "monitor.ndjson"
    save(Sylink.build([[m1]], mode=Mode.PULL, heartbeat_s=300, gup=gup), upstream)
    mon = spawn([*SEPHB, "monitor", "--upstream", str(upstream), "--client-sylink",
                 str(mine), "--listen-base", listen, "--trace", str(trace),
                 "--time-scale", str(args.time_scale)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Drain(mon)
    out.wait_for("clients: use")
    clients: list[tuple[str, subprocess.Popen[bytes], float]] = []
    with Sampler(mon.pid) as sampler:
        t0 = time.monotonic()
        for i in range(n):
            cid = f"c{i + 1}"
            log = open(tmp / f"{cid}.out", "wb")  # noqa: SIM115 - closed below
            proc = spawn([*SEPHB, "client", "--sylink", str(mine), "--state-dir",
                          str(tmp / f"state-{cid}"), "--time-scale",
                          str(args.time_scale), "--trace", str(tmp / f"{cid}.ndjson"),
                          "--client-id", cid, "--heartbeats", str(args.heartbeats),
                          "-q"], stdout=log, stderr=subprocess.STDOUT)
            log.close()
            clients.append((cid, proc, time.monotonic()))
        exited: dict[str, float] = {}
        for cid, proc, started in clients:
            code, _cpu = reap(proc, args.guard)
            exited[cid] = time.monotonic()
            row.client_walls.append(exited[cid] - started)
            if code != 0:
                row.clients_failed += 1
                row.notes.append(f"{cid} exit {code}: "
                                 + (tmp / f"{cid}.out").read_text()[-300:].strip())
        row.wall_s = time.monotonic() - t0
        last_exit = time.monotonic()
        os.kill(mon.pid, signal.SIGINT)  # not send_signal: its poll() may reap
        row.exit, row.cpu_s = reap(mon, 120)
    out.thread.join(timeout=10)
    row.runq_mean = statistics.mean(sampler.runq) if sampler.runq else 0.0
    row.runq_max = max(sampler.runq, default=0)
    row.peak_core = sampler.peak_core()
    row.loadavg1 = os.getloadavg()[0]
    os.kill(mgr.pid, signal.SIGTERM)
    reap(mgr, 20)

    lines = out.text()
    for when, ln in out.lines:
        if "presumptively NON-CONFORMANT" in ln:
            cid = ln.split(":", 1)[0]
            after = when - exited.get(cid, last_exit)
            if after > 0 and "REQ-7" in ln:
                row.after_exit.append(f"{ln}  [said {after:.2f} s after {cid} exited]")
            else:
                row.presumptive.append(ln + (f"  [said {after:.2f} s after {cid} "
                                             "exited]" if after > 0 else ""))
    m = next((SUMMARY.search(ln) for ln in reversed(lines) if SUMMARY.search(ln)), None)
    row.summary = m.group(0) if m else "(no summary) " + " | ".join(lines[-3:])
    row.violating = int(m.group(3)) if m else None
    # the summary's `violation FILE:LINE: client 'cN' ...` lines name the client
    live_bad = {mm.group(1) for ln in lines if ln.startswith("violation")
                and (mm := re.search(r"client '([^']+)'", ln))}
    row.offline_exit, doc = validate(trace, mine)
    off_bad = violating_clients(doc)
    row.offline_violating = len(off_bad)
    row.agree = row.offline_exit == row.exit and (off_bad == live_bad or (
        row.violating is not None and len(off_bad) == row.violating))
    if "error" in doc:
        row.notes.append(f"offline validate: {doc['error']}")
    if not row.agree:
        row.notes.append(f"offline exit {row.offline_exit} violating {sorted(off_bad)}; "
                         f"live exit {row.exit} violating {sorted(live_bad)}")
    # the clients' own view: were they late by their own clocks?
    for cid, _proc, _t in clients:
        code, cdoc = validate(tmp / f"{cid}.ndjson", mine)
        if code != 0:
            row.clients_late += 1
            row.notes.append(f"{cid}'s own trace: validate exit {code}, violating "
                             f"{sorted(violating_clients(cdoc))}")
    flagged: set[str] = set(live_bad) | off_bad
    for ln in lines:
        if "NON-CONFORMANT" in ln and "presumptively" not in ln:
            row.notes.append("live: " + ln)
            flagged.add(ln.split(":", 1)[0])
    flagged |= {ln.split(":", 1)[0] for ln in row.presumptive}
    for cid in sorted(flagged):
        try:
            row.notes.append("gap " + split_gap(tmp, cid, args.time_scale))
        except (OSError, ValueError, KeyError) as exc:
            row.notes.append(f"gap {cid}: cannot align ({exc})")
    return row


# -- main ------------------------------------------------------------------------

def fmt(row: Row) -> str:
    cw = (f"{statistics.median(row.client_walls):.1f}/{max(row.client_walls):.1f}"
          if row.client_walls else "-")
    return (f"| {row.n} | {row.run} | {row.exit} | {row.violating} "
            f"| {len(row.presumptive)} ({len(row.after_exit)}) "
            f"| {'yes' if row.agree else 'NO'} "
            f"| {row.cpu_s:.2f} | {row.peak_core * 100:.0f} % | {row.wall_s:.1f} | {cw} "
            f"| {row.runq_mean:.1f} / {row.runq_max} | {row.loadavg1:.2f} "
            f"| {row.clients_failed} / {row.clients_late} "
            f"| {'ok' if row.ok else 'FAIL: ' + row.blame()} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-clients", type=int, default=32,
                    help="the largest N tried (default 32)")
    ap.add_argument("--start", type=int, default=1, help="the first N (default 1)")
    ap.add_argument("--heartbeats", type=int, default=3,
                    help="check-ins per client (default 3)")
    ap.add_argument("--time-scale", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds per N; an N fails if any of its rounds does")
    ap.add_argument("--guard", type=float, default=300,
                    help="wall seconds a client may take before it is killed")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (traces, client output)")
    args = ap.parse_args()

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops the benchmark, also when started where SIGINT is ignored (a
    # background job of a script)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"# {platform.node() or 'machine'}: {os.cpu_count()} cores, "
          f"{platform.system()} {platform.release()}, Python "
          f"{platform.python_version()}; time scale {args.time_scale} "
          f"(interval 300 s = {300 * args.time_scale:g} s wall), {args.heartbeats} "
          f"heartbeats per client, pull mode, one manager + GUP; load before: "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    print()
    print("| N | run | exit | violating | presumptive (after exit) | offline agrees "
          "| monitor CPU s | monitor peak 1 s | wall s | client wall med/max s "
          "| run queue mean / max | loadavg 1 min | clients failed / late | |")
    print("|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|:---|",
          flush=True)
    rows: list[Row] = []
    held = 0
    failed: Row | None = None
    work = Path(tempfile.mkdtemp(prefix="bench-monitor-capacity-"))
    k = 0
    try:
        n = args.start
        while n <= args.max_clients and failed is None:
            for run in range(1, args.repeats + 1):
                tmp = work / f"n{n}-r{run}"
                tmp.mkdir()
                row = one_round(args, tmp, n, run, k)
                k += 1
                rows.append(row)
                print(fmt(row), flush=True)
                if not row.ok:
                    failed = row
                    break
            if failed is None:
                held = n
            n *= 2
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process", flush=True)
        return 130
    finally:
        cleanup()
        if args.keep:
            print(f"\nwork directory kept: {work}")
        else:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
    print()
    for row in rows:
        for ln in row.presumptive + row.after_exit + row.notes:
            print(f"  N={row.n} run {row.run}: {ln}")
    if held:
        print(f"verdict: one monitor holds {held} client(s) with no false finding "
              f"(time scale {args.time_scale}, {os.cpu_count()} cores)"
              + ("" if failed else f"; the cap --max-clients {args.max_clients} was "
                                   "reached without a failure"))
    else:
        print("verdict: no N held")
    if failed is not None:
        print(f"first failure at N={failed.n}: {failed.blame()}; run queue mean "
              f"{failed.runq_mean:.1f} (peak {failed.runq_max}) on {os.cpu_count()} "
              f"cores, monitor's busiest second {failed.peak_core * 100:.0f} % of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
